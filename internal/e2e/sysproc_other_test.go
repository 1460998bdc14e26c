//go:build !linux

package e2e

import "syscall"

// childAttrs is a no-op where the kernel cannot tie a child's life to ours.
func childAttrs() *syscall.SysProcAttr { return nil }
