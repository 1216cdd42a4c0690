//go:build !linux

package dut

import (
	"testing"
	"time"
)

// ptyRoundTrips measures the pty floor on Linux only (ptyfloor_linux_test.go).
func ptyRoundTrips(tb testing.TB, n int) []time.Duration { return nil }
