//go:build !linux

package bench

import "syscall"

// childProcAttr has no way to tie the servers' lifetime to ours outside Linux.
func childProcAttr() *syscall.SysProcAttr { return nil }
