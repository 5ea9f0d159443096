package gpu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// shellLocal is a local backend whose worker is a shell script; the script sees the
// appended "--server URL --run ID" as "$@".
func shellLocal(t *testing.T, script string, env ...string) (*Local, string) {
	t.Helper()
	dir := t.TempDir()
	l, err := NewLocal(LocalConfig{
		Command:   []string{"/bin/sh", "-c", script, "sh"},
		LogDir:    filepath.Join(dir, "logs"),
		Env:       append([]string{"OUT=" + dir}, env...),
		KillAfter: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l, dir
}

// waitFile waits for the script to create a file (it renames into place when the
// content matters).
func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker script did not create %s", path)
		}
	}
}

// waitState polls Status until the job reaches state.
func waitState(t *testing.T, b Backend, jobID, state string) JobStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := b.Status(context.Background(), jobID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %+v, want %s", jobID, st, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLocalPassesTokenInEnvNotArgv(t *testing.T) {
	t.Setenv("TUNELAB_SECRET_KEY", "server-secret")
	l, dir := shellLocal(t, `echo "$@" > "$OUT/argv"; echo "$TUNELAB_RUN_TOKEN" > "$OUT/token"; `+
		`echo "secret=$TUNELAB_SECRET_KEY" > "$OUT/secret"; echo hello from the worker; echo oops >&2; exit 3`)
	ctx := context.Background()
	const token = "0123456789abcdef0123456789abcdef"
	id, err := l.Submit(ctx, Job{RunID: 7, ServerURL: "http://127.0.0.1:8080", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	st := waitState(t, l, id, JobExited)
	if st.Detail != "exit status 3" {
		t.Fatalf("detail %q", st.Detail)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := read("argv"); got != "--server http://127.0.0.1:8080 --run 7" {
		t.Fatalf("argv %q", got)
	}
	if got := read("token"); got != token {
		t.Fatalf("token in env %q", got)
	}
	if got := read("secret"); got != "secret=" {
		t.Fatalf("the worker inherited the server's secret: %q", got)
	}
	// The end line is appended just after the job is marked exited.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(read("logs/run-7.log"), "worker ended"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no end line in the worker log")
		}
	}
	log := read("logs/run-7.log")
	for _, want := range []string{"hello from the worker", "oops", "worker ended: exit status 3"} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, token) {
		t.Fatal("the token was written to the log")
	}
	if info, err := os.Stat(filepath.Join(dir, "logs/run-7.log")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("log mode %v (%v)", info.Mode(), err)
	}
}

func TestLocalCancelTerminatesTheProcessGroup(t *testing.T) {
	l, dir := shellLocal(t, `sleep 30 & echo $! > "$OUT/child.tmp"; mv "$OUT/child.tmp" "$OUT/child"; wait`)
	ctx := context.Background()
	id, err := l.Submit(ctx, Job{RunID: 1, ServerURL: "http://x", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := l.Status(ctx, id); st.State != JobRunning {
		t.Fatalf("state %+v", st)
	}
	childFile := filepath.Join(dir, "child")
	waitFile(t, childFile)
	if err := l.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := l.Cancel(ctx, id); err != nil { // idempotent
		t.Fatal(err)
	}
	st := waitState(t, l, id, JobExited)
	if st.Detail != "signal: terminated" {
		t.Fatalf("detail %q", st.Detail)
	}
	// The grandchild shared the process group, so it went too.
	b, _ := os.ReadFile(childFile)
	child := "/proc/" + strings.TrimSpace(string(b))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		stat, err := os.ReadFile(child + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker's child survived the cancel")
		}
	}
	if err := l.Cancel(ctx, id); err != nil { // after the end: still fine
		t.Fatal(err)
	}
}

func TestLocalCancelKillsAWorkerIgnoringTerm(t *testing.T) {
	l, dir := shellLocal(t, `trap "" TERM; touch "$OUT/ready"; while :; do sleep 0.05; done`)
	ctx := context.Background()
	id, err := l.Submit(ctx, Job{RunID: 2, ServerURL: "http://x", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dir, "ready"))
	start := time.Now()
	if err := l.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Fatal("Cancel blocked")
	}
	st := waitState(t, l, id, JobExited)
	if st.Detail != "signal: killed" {
		t.Fatalf("detail %q", st.Detail)
	}
	if time.Since(start) < 250*time.Millisecond {
		t.Fatal("killed before KillAfter")
	}
}

func TestLocalFollowsAWorkerOfAnEarlierServer(t *testing.T) {
	before, dir := shellLocal(t, `trap "" TERM; touch "$OUT/ready"; while :; do sleep 0.05; done`)
	ctx := context.Background()
	id, err := before.Submit(ctx, Job{RunID: 3, ServerURL: "http://x", Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dir, "ready"))
	if !strings.Contains(id, ":") {
		t.Skip("no /proc here: jobs of an earlier server cannot be followed")
	}
	// A restarted server has a fresh backend that never started this job.
	after, _ := shellLocal(t, "exit 0")
	if st, err := after.Status(ctx, id); err != nil || st.State != JobRunning {
		t.Fatalf("status %+v, %v", st, err)
	}
	pid, _, _ := parseLocalJobID(id)
	for _, stranger := range []string{"bogus", "12", strings.Split(id, ":")[0], strings.Split(id, ":")[0] + ":1"} {
		if st, _ := after.Status(ctx, stranger); st.State != JobUnknown {
			t.Fatalf("job id %q (pid %d) is %+v, want unknown", stranger, pid, st)
		}
		if err := after.Cancel(ctx, stranger); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := before.Status(ctx, id); st.State != JobRunning {
		t.Fatal("cancelling a stranger's id stopped the worker")
	}
	// Cancel from the new backend: TERM is ignored, so it takes the KILL.
	if err := after.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if st := waitState(t, before, id, JobExited); st.Detail != "signal: killed" {
		t.Fatalf("detail %q", st.Detail)
	}
	waitState(t, after, id, JobUnknown)
}

func TestLocalOffer(t *testing.T) {
	models := []Model{{ID: "tunelab/byte-mlp-small", Name: "Byte MLP small", About: "quick"}}
	want := Defaults{Epochs: 60, LearningRate: 3e-3, BatchSize: 16, LoRARank: 16, LoRAAlpha: 32, MaxSeqLen: 512, Seed: 42, ValidationSplit: 10}
	l, err := NewLocal(LocalConfig{Slots: 3, Models: models, Defaults: want})
	if err != nil {
		t.Fatal(err)
	}
	models[0].Name = "changed by the caller later"
	o := l.Offer()
	if l.Name() != "local" || o.Slots != 3 || len(o.Models) != 1 || o.Models[0].Name != "Byte MLP small" {
		t.Fatalf("offer %+v", o)
	}
	if orList(o.Methods) != "lora, dpo or full" {
		t.Fatalf("methods %v", o.Methods)
	}
	if len(o.GPUTypes) != 1 || o.GPUTypes[0].ID != "cpu" || !strings.Contains(o.GPUTypes[0].About, "no GPU") {
		t.Fatalf("gpu types %+v", o.GPUTypes)
	}
	if o.Defaults != want {
		t.Fatalf("defaults %+v, want %+v", o.Defaults, want)
	}
	if len(l.cfg.Command) != 2 || l.cfg.Command[1] != "worker" {
		t.Fatalf("default command %q", l.cfg.Command)
	}
}

func TestLocalSubmitErrorIsReported(t *testing.T) {
	l, err := NewLocal(LocalConfig{Command: []string{filepath.Join(t.TempDir(), "missing")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Submit(context.Background(), Job{RunID: 1, ServerURL: "http://x", Token: "t"}); err == nil {
		t.Fatal("started a missing command")
	}
}
