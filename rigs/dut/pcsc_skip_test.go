package dut

import "testing"

// skipWithoutPCSC is replaced once the pcsc-emu DUT exists.
func skipWithoutPCSC(t *testing.T) { t.Helper() }
