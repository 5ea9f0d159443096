package gpu

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

// slurmCall is one Slurm command a test's fake runner saw.
type slurmCall struct {
	env   []string
	stdin string
	name  string
	args  []string
}

func fakeSlurm(t *testing.T, answer func(c slurmCall) (string, error)) (*Slurm, *[]slurmCall) {
	t.Helper()
	s, err := NewSlurm(SlurmConfig{Partition: "gpu", GPUTypes: []SlurmGPU{{ID: "a100", Gres: "a100"}, {ID: "big", Gres: "h100"}},
		GPUsPerJob: 2, TimeLimit: 90 * time.Minute, Command: []string{"/opt/tunelab/bin/tunelab", "worker"}, LogDir: t.TempDir(),
		Conf: "/etc/slurm-test/slurm.conf"})
	if err != nil {
		t.Fatal(err)
	}
	var calls []slurmCall
	s.run = func(ctx context.Context, env []string, stdin, name string, args ...string) (string, error) {
		c := slurmCall{env: env, stdin: stdin, name: name, args: args}
		calls = append(calls, c)
		return answer(c)
	}
	return s, &calls
}

func TestSlurmSubmitPutsTheTokenInTheEnvironmentOnly(t *testing.T) {
	t.Setenv("TUNELAB_SECRET_KEY", "server-secret")
	s, calls := fakeSlurm(t, func(slurmCall) (string, error) { return "4242;cluster\n", nil })
	token := "0123456789abcdef0123456789abcdef"
	id, err := s.Submit(context.Background(), Job{RunID: 9, ServerURL: "http://10.0.0.5:8080", Token: token, Config: store.RunConfig{GPUType: "big"}})
	if err != nil || id != "4242" {
		t.Fatalf("id %q err %v", id, err)
	}
	c := (*calls)[0]
	for _, want := range []string{"--parsable", "--job-name=tunelab-run-9", "--gres=gpu:h100:2", "--time=90", "--partition=gpu", "--export=ALL", "--no-requeue"} {
		if !slices.Contains(c.args, want) {
			t.Errorf("sbatch %v lacks %s", c.args, want)
		}
	}
	if !strings.Contains(c.stdin, "exec '/opt/tunelab/bin/tunelab' 'worker' '--server' 'http://10.0.0.5:8080' '--run' '9'") {
		t.Errorf("script:\n%s", c.stdin)
	}
	if strings.Contains(strings.Join(c.args, " ")+c.stdin, token) {
		t.Fatal("the run token is on sbatch's command line or in the job script")
	}
	if !slices.Contains(c.env, RunTokenEnv+"="+token) || !slices.Contains(c.env, "SLURM_CONF=/etc/slurm-test/slurm.conf") {
		t.Fatalf("sbatch's environment lacks the token or SLURM_CONF")
	}
	if slices.ContainsFunc(c.env, func(kv string) bool { return strings.HasPrefix(kv, "TUNELAB_SECRET_KEY=") }) {
		t.Fatal("the server's secrets reach the job")
	}
	if _, err := s.Submit(context.Background(), Job{RunID: 10, Config: store.RunConfig{GPUType: "cpu"}}); err == nil {
		t.Fatal("a GPU type the backend lacks was submitted")
	}
}

func TestSlurmStatusKeepsSlurmsReason(t *testing.T) {
	answers := map[string]string{
		"1": "JobId=1 JobName=tunelab-run-1 UserId=root(0) JobState=PENDING Reason=Resources Dependency=(null) ExitCode=0:0",
		"2": "JobId=2 JobName=tunelab-run-2 JobState=RUNNING Reason=None ExitCode=0:0",
		"3": "JobId=3 JobName=tunelab-run-3 JobState=TIMEOUT Reason=TimeLimit Dependency=(null) ExitCode=0:15",
		"4": "JobId=4 JobState=CANCELLED Reason=None ExitCode=0:15",
		"5": "JobId=5 JobState=NODE_FAIL Reason=NodeDown ExitCode=0:0",
	}
	s, _ := fakeSlurm(t, func(c slurmCall) (string, error) {
		id := c.args[len(c.args)-1]
		if c.name == "sacct" {
			id = c.args[slices.Index(c.args, "-j")+1]
			if id == "6" {
				return "OUT_OF_MEMORY|0:125\n", nil
			}
			return "", errors.New("sacct: Slurm accounting storage is disabled")
		}
		if a, ok := answers[id]; ok {
			return a + "\n", nil
		}
		return "", errors.New("scontrol: slurm_load_jobs error: Invalid job id specified")
	})
	cases := map[string]JobStatus{
		"1": {State: JobPending},
		"2": {State: JobRunning},
		"3": {State: JobExited, Detail: "Slurm job 3 ended TIMEOUT, reason TimeLimit, exit code 0:15"},
		"4": {State: JobExited, Detail: "Slurm job 4 ended CANCELLED, exit code 0:15"},
		"5": {State: JobExited, Detail: "Slurm job 5 ended NODE_FAIL, reason NodeDown"},
		"6": {State: JobExited, Detail: "Slurm job 6 ended OUT_OF_MEMORY, exit code 0:125"}, // from accounting
		"7": {State: JobUnknown},
	}
	for id, want := range cases {
		if got, err := s.Status(context.Background(), id); err != nil || got != want {
			t.Errorf("job %s: %+v (%v), want %+v", id, got, err, want)
		}
	}
}

func TestSlurmOfferCountsFreeGPUsFromSinfo(t *testing.T) {
	s, calls := fakeSlurm(t, func(slurmCall) (string, error) {
		return "n1|gpu:a100:4(S:0-1)|gpu:a100:3(IDX:0-2)|mix|\n" +
			"n2|gpu:a100:4(S:0-1),gpu:h100:2|gpu:a100:0(IDX:N/A),gpu:h100:0(IDX:N/A)|idle|\n" +
			"n3|gpu:h100:8|gpu:h100:0(IDX:N/A)|down*|\n", nil
	})
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := (*calls)[0]; c.name != "sinfo" || !slices.Contains(c.args, "gpu") {
		t.Fatalf("sinfo call %+v", c)
	}
	o := s.Offer()
	if len(o.GPUTypes) != 2 || !strings.Contains(o.GPUTypes[0].About, "5 of 8 free") || !strings.Contains(o.GPUTypes[1].About, "2 of 2 free") {
		t.Fatalf("offer %+v", o.GPUTypes)
	}
	if o.Slots != 4+1 { // 8 A100s and 2 H100s (the down node's do not count), 2 a job
		t.Fatalf("slots %d", o.Slots)
	}

	missing, _ := fakeSlurm(t, func(slurmCall) (string, error) { return "n1|gpu:a100:4|gpu:a100:0|idle|\n", nil })
	if err := missing.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "gpu:h100") {
		t.Fatalf("err %v", err)
	}
}

func TestSlurmCancelOfAJobSlurmForgotIsNotAnError(t *testing.T) {
	s, calls := fakeSlurm(t, func(c slurmCall) (string, error) {
		return "", errors.New("scancel: error: Kill job error on job id 77: Invalid job id specified")
	})
	if err := s.Cancel(context.Background(), "77"); err != nil || (*calls)[0].name != "scancel" {
		t.Fatalf("err %v calls %+v", err, *calls)
	}
}
