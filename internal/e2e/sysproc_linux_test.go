package e2e

import "syscall"

// childAttrs makes the kernel kill a server when the test process dies, so an
// interrupted run leaves no servers behind on a shared machine.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
