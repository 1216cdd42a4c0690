package reports

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// barHeights reads the height of each case's bar in a duration plot.
func barHeights(t *testing.T, svg string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range regexp.MustCompile(`height="([0-9.]+)" fill="[^"]*"><title>(\S+) `).FindAllStringSubmatch(svg, -1) {
		h, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		out[m[2]] = h
	}
	return out
}

// A run whose optical cases take seconds and the rest micro- to
// milliseconds is drawn on a logarithmic axis, so that every bar can be
// compared with another; durations of one order stay on a linear one.
func TestDurationPlotScale(t *testing.T) {
	run := func(ds ...time.Duration) []Case {
		var cs []Case
		for i, d := range ds {
			cs = append(cs, Case{ID: "TC-PAY-00" + strconv.Itoa(i+1), Verdict: Passed, Duration: d})
		}
		return cs
	}
	wide := string(durationPlot(run(10*time.Microsecond, 200*time.Microsecond, time.Millisecond, 4*time.Second)))
	if !strings.Contains(wide, "log scale") {
		t.Error("durations from 10 µs to 4 s are not drawn on a log scale")
	}
	h := barHeights(t, wide)
	if len(h) != 4 {
		t.Fatalf("bars %v", h)
	}
	// 10 µs to 10 s is six decades of the 220-pixel plot: 1 ms stands two
	// of them high, 4 s almost six.
	if h["TC-PAY-003"] < 70 || h["TC-PAY-003"] > 76 || h["TC-PAY-004"] < 200 || h["TC-PAY-001"] > 2 {
		t.Errorf("bar heights on the log scale: %v", h)
	}
	narrow := string(durationPlot(run(10*time.Millisecond, 20*time.Millisecond, 40*time.Millisecond)))
	if strings.Contains(narrow, "log scale") {
		t.Error("durations within one order are drawn on a log scale")
	}
	if h := barHeights(t, narrow); h["TC-PAY-001"]*4 < h["TC-PAY-003"]-1 || h["TC-PAY-001"]*4 > h["TC-PAY-003"]+1 {
		t.Errorf("bar heights on the linear scale are not proportional: %v", h)
	}
}
