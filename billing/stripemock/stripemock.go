// Package stripemock starts a real stripe-mock (github.com/stripe/stripe-mock, pinned in
// go.mod as a tool) for tests: on free loopback ports, once per test binary, stopped by
// Stop. Only tests import it.
package stripemock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is one running stripe-mock.
type Server struct {
	URL  string // http://127.0.0.1:PORT, for TUNELAB_STRIPE_API_URL
	cmd  *exec.Cmd
	done chan struct{}
}

var (
	once      sync.Once
	shared    *Server
	sharedErr error
)

// Shared returns the stripe-mock of this test binary, starting it on first use. Where it
// cannot be built or started the test fails under CI=true and is skipped, loudly,
// elsewhere. Call Stop from TestMain after m.Run.
func Shared(t testing.TB) *Server {
	t.Helper()
	once.Do(func() { shared, sharedErr = Start() })
	if sharedErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("stripe-mock is required under CI=true: %v", sharedErr)
		}
		t.Skipf("SKIPPED: stripe-mock is not available (%v); run ./scripts/test-deps.sh", sharedErr)
	}
	return shared
}

// Stop ends the shared stripe-mock, if one was started.
func Stop() {
	if shared != nil {
		shared.Close()
	}
}

// Binary finds the stripe-mock executable: $TUNELAB_STRIPE_MOCK, or the pinned tool that
// `go tool -n stripe-mock` builds (cached after the first build).
func Binary() (string, error) {
	if p := os.Getenv("TUNELAB_STRIPE_MOCK"); p != "" {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "-n", "stripe-mock").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go tool -n stripe-mock: %v: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("go tool -n stripe-mock: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

var listening = regexp.MustCompile(`Listening for HTTP at address: (\S+)`)

// Start builds (if needed) and starts a stripe-mock on 127.0.0.1 with system-chosen ports
// and waits until it listens.
func Start() (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	setDeathSignal(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start stripe-mock: %w", err)
	}
	s := &Server{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { cmd.Wait(); close(s.done) }()
	select {
	case a := <-addr:
		s.URL = "http://" + a
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("stripe-mock exited before listening: %v", cmd.ProcessState)
	case <-time.After(30 * time.Second):
		s.Close()
		return nil, errors.New("stripe-mock did not start listening within 30s")
	}
}

// Close stops the stripe-mock and waits for it to exit.
func (s *Server) Close() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	<-s.done
}
