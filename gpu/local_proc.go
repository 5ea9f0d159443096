package gpu

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// A local job id is "<pid>:<start>", start being the process's start time in clock ticks
// since boot (/proc/<pid>/stat). A pid alone can be reused by an unrelated process once
// the worker is gone; pid and start time together name one process, so after a server
// restart the backend can tell its old worker from a stranger before reporting or
// signalling it.

func localJobID(pid int) string {
	start, err := procStart(pid)
	if err != nil {
		return strconv.Itoa(pid) // no /proc: only jobs this process started can be followed
	}
	return fmt.Sprintf("%d:%d", pid, start)
}

func parseLocalJobID(id string) (pid int, start uint64, ok bool) {
	p, s, found := strings.Cut(id, ":")
	if !found {
		return 0, 0, false
	}
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 1 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(s, 10, 64)
	return pid, start, err == nil
}

// sameLiveProcess says whether the job id still names a live (not zombie) process.
func sameLiveProcess(id string) (pid int, ok bool) {
	pid, start, ok := parseLocalJobID(id)
	if !ok {
		return 0, false
	}
	st, state, err := procStat(pid)
	if err != nil || st != start || state == 'Z' || state == 'X' {
		return 0, false
	}
	return pid, true
}

func procStart(pid int) (uint64, error) {
	start, _, err := procStat(pid)
	return start, err
}

// procStat reads a process's start time and state from /proc/<pid>/stat.
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or ')', so
	// count fields from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0][0], err
}

// signalGroup signals the process group a worker leads (it was started with Setpgid).
func signalGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig) // ESRCH: already gone, which is what we wanted
}

// workerEnv is the environment of a worker: the server's own, without the server's
// settings and secrets (TUNELAB_*, STRIPE_*), plus the configured extras and the run token.
func workerEnv(base, extra []string, token string) []string {
	env := make([]string, 0, len(base)+len(extra)+1)
	for _, kv := range base {
		if strings.HasPrefix(kv, "TUNELAB_") || strings.HasPrefix(kv, "STRIPE_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, extra...)
	return append(env, RunTokenEnv+"="+token)
}
