package bench

import "syscall"

// childProcAttr makes the kernel kill a server if the benchmark dies without
// stopping it, so no server outlives a crashed or interrupted run.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
