//go:build !linux

package kube

import "syscall"

// sysProcAttr has no parent-death signal to ask for outside Linux; a killed
// test process may leave components running there.
func sysProcAttr() *syscall.SysProcAttr { return nil }
