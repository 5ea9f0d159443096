package stripemock

import (
	"os/exec"
	"syscall"
)

// setDeathSignal kills stripe-mock when the test binary dies without calling Stop.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
