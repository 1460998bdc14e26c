//go:build !linux

package testbin

import "syscall"

// childProcAttr has no way to tie a child's lifetime to ours outside Linux.
func childProcAttr() *syscall.SysProcAttr { return nil }
