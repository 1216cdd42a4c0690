package scenarios

import (
	"testing"

	"github.com/spdlab/spdlab/rigs/optical"
)

// TestOpticalPlanMeetsEveryKind: however many images of a format a case
// shows, every fault of every degraded level is met, every image meets
// one at least, and none meets the same fault twice; with five images or
// more, each meets a different kind at each level.
func TestOpticalPlanMeetsEveryKind(t *testing.T) {
	for n := 1; n <= 8; n++ {
		kinds := make([]map[optical.FaultKind]bool, n)
		for j := range kinds {
			kinds[j] = map[optical.FaultKind]bool{}
		}
		for level := 1; level < len(opticalLevels); level++ {
			plan := opticalPlan(n, level)
			if len(plan) != n {
				t.Fatalf("%d images, level %d: a plan for %d", n, level, len(plan))
			}
			met := map[optical.Fault]int{}
			for j, faults := range plan {
				if len(faults) == 0 {
					t.Errorf("%d images, level %d: image %d meets no fault", n, level, j)
				}
				seen := map[optical.Fault]bool{}
				for _, f := range faults {
					if seen[f] {
						t.Errorf("%d images, level %d: image %d meets %v twice", n, level, j, f)
					}
					seen[f] = true
					met[f]++
					if n >= 5 && kinds[j][f.Kind] {
						t.Errorf("%d images: image %d meets %v at two levels", n, j, f.Kind)
					}
					kinds[j][f.Kind] = true
				}
			}
			for _, f := range opticalLevels[level] {
				if met[f] == 0 {
					t.Errorf("%d images, level %d: nobody meets %v", n, level, f)
				}
			}
		}
	}
}
