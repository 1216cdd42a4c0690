//go:build unix

package backend

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) this process has used: the
// work a benchmark does, whatever share of the machine it got.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
