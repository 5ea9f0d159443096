package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestWorkerCommandRefusesBadArguments(t *testing.T) {
	const token = "00112233445566778899aabbccddeeff"
	tokenEnv := map[string]string{"TUNELAB_RUN_TOKEN": token}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no flags", nil, tokenEnv, "--server and --run are required"},
		{"no run", []string{"--server", "http://127.0.0.1:8080"}, tokenEnv, "--server and --run are required"},
		{"unknown flag", []string{"--port", "1"}, tokenEnv, "flag provided but not defined: -port"},
		{"stray argument", []string{"--server", "http://h", "--run", "1", "extra"}, tokenEnv, `unexpected argument "extra"`},
		{"server without scheme", []string{"--server", "tunelab.example.com", "--run", "1"}, tokenEnv, "not an http:// or https:// URL"},
		{"run not a number", []string{"--server", "http://h", "--run", "twelve"}, tokenEnv, `--run "twelve" is not a run id`},
		{"run not positive", []string{"--server", "http://h", "--run", "0"}, tokenEnv, "is not a run id"},
		{"no token", []string{"--server", "http://h", "--run", "1"}, nil, "TUNELAB_RUN_TOKEN is not set"},
		{"malformed token", []string{"--server", "http://h", "--run", "1"}, map[string]string{"TUNELAB_RUN_TOKEN": "secret-but-wrong"}, "TUNELAB_RUN_TOKEN is malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			// Through run, as the command line reaches it.
			err := run(context.Background(), append([]string{"worker"}, tc.args...), envMap(tc.env), strings.NewReader(""), &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if v := tc.env["TUNELAB_RUN_TOKEN"]; v != "" && strings.Contains(err.Error()+out.String(), v) {
				t.Error("the token was printed")
			}
		})
	}
}
