package pgtest

import "syscall"

// procAttr runs postgres as cred, and has the kernel stop it (SIGQUIT:
// immediate shutdown) if the test binary dies without calling Stop.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
