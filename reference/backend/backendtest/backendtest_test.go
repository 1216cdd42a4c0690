package backendtest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/clock"
)

// backend is an HTTP server on 127.0.0.1 that counts the requests it acts on.
type backend struct {
	mu   sync.Mutex
	hits map[string]int
	url  string
}

func newBackend(t *testing.T) *backend {
	b := &backend{hits: map[string]int{}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.hits[r.URL.Path]++
		b.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hs.Close)
	b.url = hs.URL
	return b
}

func (b *backend) acted(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits[path]
}

func TestNetworkFaults(t *testing.T) {
	const timeout = 500 * time.Millisecond
	for _, tc := range []struct {
		fault  Fault
		status int  // answer status; 0 = an error
		acted  bool // the backend saw the request
		took   time.Duration
	}{
		{Pass, http.StatusNoContent, true, 0},
		{Unreachable, 0, false, 0},
		{Unavailable, http.StatusServiceUnavailable, false, 0},
		{LostAnswer, 0, true, 0},
		{Slow, 0, true, timeout},
	} {
		t.Run(tc.fault.String(), func(t *testing.T) {
			b := newBackend(t)
			clk := clock.NewSimulated(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
			n := NewNetwork(nil, clk)
			c := &http.Client{Transport: n}
			n.At("/v1/settlements", tc.fault)
			ctx, cancel := clk.WithTimeout(context.Background(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"/v1/settlements/42", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			switch {
			case tc.status == 0 && err == nil:
				resp.Body.Close()
				t.Fatalf("answer %s, want an error", resp.Status)
			case tc.status != 0 && err != nil:
				t.Fatalf("error %v, want status %d", err, tc.status)
			case tc.status != 0:
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
				}
			}
			if tc.fault == Slow && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("slow answer: error %v, want the requester's deadline", err)
			}
			if got := b.acted("/v1/settlements/42") == 1; got != tc.acted {
				t.Errorf("backend acted: %v, want %v", got, tc.acted)
			}
			as := n.Attempts("/v1/settlements")
			if len(as) != 1 || as[0].Fault != tc.fault || as[0].End.Sub(as[0].Start) != tc.took {
				t.Fatalf("attempts %+v, want one %v taking %v", as, tc.fault, tc.took)
			}
			if as := n.Attempts(""); len(as) != 0 {
				t.Errorf("log not forgotten: %+v", as)
			}
		})
	}
}

func TestNetworkPlanAndDown(t *testing.T) {
	b := newBackend(t)
	n := NewNetwork(nil, nil)
	c := &http.Client{Transport: n}
	get := func(path string) error {
		resp, err := c.Get(b.url + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				return errors.New(resp.Status)
			}
		}
		return err
	}
	n.At("/v1/tokens", Unreachable, Unavailable)
	n.At("/v1/otp", Unreachable)
	for range 2 { // an unplanned path passes
		if err := get("/v1/devices"); err != nil {
			t.Fatalf("unplanned path: %v", err)
		}
	}
	for i, fail := range []bool{true, true, false} {
		if err := get("/v1/tokens/1"); (err != nil) != fail {
			t.Fatalf("request %d to /v1/tokens: error %v, want failure %v", i+1, err, fail)
		}
	}
	n.Clear()
	if err := get("/v1/otp"); err != nil {
		t.Fatalf("cleared plan still applied: %v", err)
	}
	n.Down.Store(true)
	if err := get("/v1/devices"); err == nil {
		t.Fatal("network down, request went through")
	}
	n.Down.Store(false)
	if b.acted("/v1/tokens/1") != 1 || b.acted("/v1/devices") != 2 || b.acted("/v1/otp") != 1 {
		t.Errorf("backend hits %v", b.hits)
	}
	as := n.Attempts("/v1/devices")
	if len(as) != 3 || as[2].Fault != Unreachable {
		t.Errorf("attempts at /v1/devices: %+v", as)
	}
}
