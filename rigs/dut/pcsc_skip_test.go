package dut

import (
	"testing"

	"github.com/spdlab/spdlab/emulator/sim/simtest"
)

// skipWithoutPCSC makes sure pcscd runs with vpcd (through .ci/pcscd), or
// skips with the reason; with CI set it fails instead.
func skipWithoutPCSC(t *testing.T) {
	t.Helper()
	simtest.EnsurePCSCD(t)
}
