package testbin

import "syscall"

// childProcAttr makes the kernel kill a started process when its parent
// dies.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
