package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

// TestOpenAISDKAgainstADeployment trains a short run, deploys its snapshot and runs
// scripts/openai_sdk_check.py (the official openai Python SDK) against the server, with
// TUNELAB_OPENAI_PYTHON or else the venv scripts/openai-env.sh makes.
func TestOpenAISDKAgainstADeployment(t *testing.T) {
	py := os.Getenv("TUNELAB_OPENAI_PYTHON")
	if py == "" {
		// The test brings its own SDK: scripts/openai-env.sh makes (once) a small venv with
		// the pinned openai package. Without Python or PyPI it skips loudly, except in CI.
		out, err := exec.Command("scripts/openai-env.sh").Output()
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("scripts/openai-env.sh: %v", err)
			}
			t.Skipf("SKIPPED LOUDLY: no openai SDK (scripts/openai-env.sh: %v); set TUNELAB_OPENAI_PYTHON to run the official SDK against the server", err)
		}
		py = filepath.Join(strings.TrimSpace(string(out)), "bin", "python")
	}
	dir, env := t.TempDir(), runEnv(t)
	addr, _ := startServerWith(t, env, dir)
	app := newAppClient(t, "http://"+addr)
	st := openStore(t, dir)
	id := app.startRun(app.signUpWithSample("sdk@example.com"), "lora", 2)
	if run := waitRun(t, st, id, "success", 4*time.Minute, func(r store.Run) bool { return r.Final() }); run.Status != store.RunSucceeded {
		t.Fatalf("run ended %s: %s", run.Status, run.Reason)
	}
	_, page, _ := app.get(fmt.Sprintf("/runs/%d", id))
	deploy := regexp.MustCompile(`action="(/runs/\d+/snapshots/\d+/deploy)"`).FindSubmatch(page)
	if deploy == nil {
		t.Fatal("no Deploy button")
	}
	if st, _ := app.post(string(deploy[1]), nil); st != 303 {
		t.Fatalf("deploy: %d", st)
	}
	_, list, _ := app.get("/deployments")
	model := regexp.MustCompile(`data-testid="deployment-model">(tl-\d+-\d+)<`).FindSubmatch(list)
	if st, _ := app.post("/settings/api-keys", map[string][]string{"name": {"sdk"}, "expires": {""}}); st != 303 || model == nil {
		t.Fatalf("api key: %d, model %q", st, model)
	}
	_, keys, _ := app.get("/settings/api-keys")
	key := regexp.MustCompile(`data-testid="api-key">(tl_[0-9A-Za-z]{32})<`).FindSubmatch(keys)
	if key == nil {
		t.Fatal("no key shown")
	}
	cmd := exec.Command(py, "scripts/openai_sdk_check.py", string(model[1]))
	cmd.Env = append(os.Environ(), "OPENAI_BASE_URL=http://"+addr+"/v1", "OPENAI_API_KEY="+string(key[1]))
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("the openai SDK check failed: %v", err)
	}
}
