package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"tunelab/billing/stripemock"
)

// workerBinary builds tunelab once per test process, without the race detector, for the
// local backend to start as its worker: the CPU trainer under -race is about 60 times
// slower, and the worker code has its own race-checked tests in trainer/.
func workerBinary(t testing.TB) string {
	t.Helper()
	buildWorker.Do(func() {
		dir, err := os.MkdirTemp("", "tunelab-worker-")
		if err != nil {
			buildWorker.err = err
			return
		}
		buildWorker.path = filepath.Join(dir, "tunelab")
		out, err := exec.Command("go", "build", "-o", buildWorker.path, ".").CombinedOutput()
		if err != nil {
			buildWorker.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildWorker.err != nil {
		t.Fatalf("build the worker: %v", buildWorker.err)
	}
	return buildWorker.path
}

var buildWorker struct {
	sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	if os.Getenv("TUNELAB_TEST_BARE_SSE") == "1" {
		serveBareSSE() // the baseline server of BenchmarkViewerMemory, in its own process
		return
	}
	code := m.Run()
	stripemock.Stop()
	stopSlurm()
	if buildWorker.path != "" {
		os.RemoveAll(filepath.Dir(buildWorker.path))
	}
	os.Exit(code)
}

// startServer runs the app's serve on a free port of 127.0.0.1 with a fresh data directory
// and returns its base URL, such as "http://127.0.0.1:41234".
func startServer(t testing.TB) string {
	addr, _ := startServerWith(t, nil, t.TempDir())
	return "http://" + addr
}

// startServerWith runs serve with the given environment and data directory on a free port
// and returns its address and a stop function that waits for the graceful shutdown and
// returns serve's result. Cleanup stops it if the test did not; the log goes to t.Log.
func startServerWith(t testing.TB, env map[string]string, dataDir string) (string, func() error) {
	t.Helper()
	return startServerAt(t, env, dataDir, "127.0.0.1:0")
}

// startServerAt is startServerWith on a given address (a restart reuses the old one, so
// workers find the server again).
func startServerAt(t testing.TB, env map[string]string, dataDir, addr string) (string, func() error) {
	t.Helper()
	return startServerWithin(t, env, dataDir, addr, 15*time.Second)
}

// startServerWithin is startServerAt waiting up to ready for the server (the Python
// worker's start-up probe imports torch, which takes longer on a busy machine).
func startServerWithin(t testing.TB, env map[string]string, dataDir, addr string, readyWithin time.Duration) (string, func() error) {
	t.Helper()
	cfg, err := loadConfig("serve", []string{"--addr", addr, "--data", dataDir}, envMap(env))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logw := &testLogWriter{t: t, prefix: "server: "}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, logw, ready) }()

	var result error
	stopped := false
	stop := func() error {
		if stopped {
			return result
		}
		stopped = true
		cancel()
		select {
		case result = <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not return within 20s of its context ending")
		}
		logw.close() // nothing may reach t.Log once the test is over
		return result
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve returned an error at shutdown: %v", err)
		}
	})

	select {
	case addr := <-ready:
		return addr, stop
	case err := <-done:
		t.Fatalf("serve stopped before it was ready: %v", err)
	case <-time.After(readyWithin):
		t.Fatalf("serve was not ready within %s", readyWithin)
	}
	return "", nil
}
