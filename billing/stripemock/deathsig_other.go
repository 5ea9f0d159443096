//go:build !linux

package stripemock

import "os/exec"

func setDeathSignal(*exec.Cmd) {}
