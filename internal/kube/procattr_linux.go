package kube

import "syscall"

// sysProcAttr makes the kernel kill a component when the test process dies,
// so a crashed or interrupted `go test` leaves no control plane behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
