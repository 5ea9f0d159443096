package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestOpenAINodeSDK runs scripts/openai_node_check.cjs (the official openai Node SDK, from
// the folder scripts/openai-node-env.sh installs once outside the checkout) against a real
// server: files, fine-tuning jobs, their events and checkpoints, and a streamed chat
// completion. Without npm or its registry it skips loudly, except under CI=true, where it
// fails.
func TestOpenAINodeSDK(t *testing.T) {
	out, err := exec.Command("scripts/openai-node-env.sh").Output()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("scripts/openai-node-env.sh: %v", err)
		}
		t.Skipf("SKIPPED LOUDLY: no openai Node SDK (scripts/openai-node-env.sh: %v)", err)
	}
	modules := filepath.Join(strings.TrimSpace(string(out)), "node_modules")
	addr, _ := startServerWith(t, runEnv(t), t.TempDir())
	app := newAppClient(t, "http://"+addr)
	app.signUpWithSample("node-sdk@example.com")
	if st, _ := app.post("/settings/api-keys", map[string][]string{"name": {"node"}, "expires": {""}}); st != 303 {
		t.Fatalf("api key: %d", st)
	}
	_, keys, _ := app.get("/settings/api-keys")
	key := regexp.MustCompile(`data-testid="api-key">(tl_[0-9A-Za-z]{32})<`).FindSubmatch(keys)
	if key == nil {
		t.Fatal("no key shown")
	}
	cmd := exec.Command("node", "scripts/openai_node_check.cjs")
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "OPENAI_BASE_URL=http://"+addr+"/v1", "OPENAI_API_KEY="+string(key[1]))
	res, err := cmd.CombinedOutput()
	t.Logf("%s", res)
	if err != nil {
		t.Fatalf("the openai Node SDK check failed: %v", err)
	}
}
