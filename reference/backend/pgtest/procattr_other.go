//go:build !linux

package pgtest

import "syscall"

// procAttr runs postgres as cred.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
