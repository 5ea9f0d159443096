package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"tunelab/trainer"
)

// runTokenEnv is where a backend puts the run's token: the environment, never
// argv, which other users of the machine can read.
const runTokenEnv = "TUNELAB_RUN_TOKEN"

const workerUsage = "usage: TUNELAB_RUN_TOKEN=<token> tunelab worker --server URL --run ID"

// runWorker trains one run with the built-in CPU trainer (docs/worker-api.md).
// Progress lines go to stdout. It returns nil when the run succeeded or was
// cancelled from the server, and an error otherwise.
func runWorker(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	server := fs.String("server", "", "the tunelab server's base URL")
	runArg := fs.String("run", "", "the id of the run to train")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("worker: %w (%s)", err, workerUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("worker: unexpected argument %q (%s)", fs.Arg(0), workerUsage)
	}
	if *server == "" || *runArg == "" {
		return errors.New("worker: --server and --run are required (" + workerUsage + ")")
	}
	if u, err := url.Parse(*server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("worker: --server %q is not an http:// or https:// URL", *server)
	}
	runID, err := strconv.ParseInt(*runArg, 10, 64)
	if err != nil || runID <= 0 {
		return fmt.Errorf("worker: --run %q is not a run id (a positive whole number)", *runArg)
	}
	token := getenv(runTokenEnv)
	if token == "" {
		return errors.New("worker: " + runTokenEnv + " is not set; the backend that starts a worker passes the run's token there")
	}
	if !isRunToken(token) {
		// Say nothing about the value itself: it is a secret.
		return errors.New("worker: " + runTokenEnv + " is malformed; a run token is 32 hex digits")
	}

	fmt.Fprintf(stdout, "tunelab worker: run %d on %s\n", runID, *server)
	err = trainer.RunWorker(ctx, trainer.WorkerOptions{Server: *server, RunID: runID, Token: token, Log: stdout})
	if errors.Is(err, trainer.ErrRunCancelled) {
		fmt.Fprintf(stdout, "tunelab worker: run %d was cancelled\n", runID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	fmt.Fprintf(stdout, "tunelab worker: run %d succeeded\n", runID)
	return nil
}

// isRunToken checks the shape the server hands out: 128 bits, hex-encoded.
func isRunToken(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
