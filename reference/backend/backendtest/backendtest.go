// Package backendtest holds the test double of the network between a
// terminal and the issuer backend: Network, an http.RoundTripper that fails
// chosen requests the ways a mobile network does (the request never leaves,
// the backend answers 503, the backend acts and the answer is lost, the
// answer comes too late) or cuts every request, and logs each request with
// the time of the clock the test gives it.
//
// The terminal's own tests and the conformance suite's service cases both
// put a Network under the backend client of the terminal they drive
// (backend.NewClient(url, &http.Client{Transport: n})), so a case can say
// "the settlement's answer is lost twice" and check on the log how the
// terminal retried.
package backendtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spdlab/spdlab/reference/clock"
)

// Fault is what the network does to one backend request.
type Fault int

const (
	Pass        Fault = iota // the request and its answer go through
	Unreachable              // the request never leaves
	Unavailable              // the backend answers 503 without acting
	LostAnswer               // the backend acts, the answer is lost
	Slow                     // the backend acts, the answer comes SlowAnswer later
)

// Faults lists every fault but Pass.
var Faults = []Fault{Unreachable, Unavailable, LostAnswer, Slow}

func (f Fault) String() string {
	switch f {
	case Pass:
		return "pass"
	case Unreachable:
		return "unreachable"
	case Unavailable:
		return "503"
	case LostAnswer:
		return "lost answer"
	case Slow:
		return "slow"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// SlowAnswer is how late a Slow request is answered: far beyond any call
// timeout of a terminal, which gives up first.
const SlowAnswer = time.Minute

// Attempt is one request as the network saw it.
type Attempt struct {
	Path       string
	Fault      Fault
	Start, End time.Time // on the network's clock
}

// Network is an http.RoundTripper that injects faults by request path, or
// cuts every request while Down is set. Make one with NewNetwork.
type Network struct {
	// Down, while set, makes every request Unreachable.
	Down atomic.Bool

	base  http.RoundTripper
	clock clock.Clock
	mu    sync.Mutex
	plan  map[string][]Fault // path prefix -> faults for the next requests
	log   []Attempt
}

var _ http.RoundTripper = (*Network)(nil)

// NewNetwork returns a network that passes requests to base
// (http.DefaultTransport when nil) and times them on c (the system clock
// when nil). A Slow answer waits on c: on a *clock.Simulated it takes no
// wall time, and the clock stops at the requester's timeout.
func NewNetwork(base http.RoundTripper, c clock.Clock) *Network {
	if base == nil {
		base = http.DefaultTransport
	}
	return &Network{base: base, clock: clock.Or(c), plan: map[string][]Fault{}}
}

// At queues faults for the next requests whose path starts with prefix,
// one fault a request.
func (n *Network) At(prefix string, fs ...Fault) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.plan[prefix] = append(n.plan[prefix], fs...)
}

// Clear drops the faults not used yet.
func (n *Network) Clear() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.plan = map[string][]Fault{}
}

// Attempts returns the requests logged so far whose path starts with
// prefix, oldest first, and forgets the whole log.
func (n *Network) Attempts(prefix string) []Attempt {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Attempt
	for _, a := range n.log {
		if strings.HasPrefix(a.Path, prefix) {
			out = append(out, a)
		}
	}
	n.log = nil
	return out
}

func (n *Network) next(path string) Fault {
	n.mu.Lock()
	defer n.mu.Unlock()
	for p, fs := range n.plan {
		if strings.HasPrefix(path, p) && len(fs) > 0 {
			n.plan[p] = fs[1:]
			return fs[0]
		}
	}
	return Pass
}

// RoundTrip implements http.RoundTripper.
func (n *Network) RoundTrip(req *http.Request) (*http.Response, error) {
	a := Attempt{Path: req.URL.Path, Start: n.clock.Now()}
	down := n.Down.Load()
	if down {
		a.Fault = Unreachable
	} else {
		a.Fault = n.next(req.URL.Path)
	}
	defer func() {
		a.End = n.clock.Now()
		n.mu.Lock()
		n.log = append(n.log, a)
		n.mu.Unlock()
	}()
	if down {
		return nil, errors.New("backendtest: network down")
	}
	switch a.Fault {
	case Unreachable:
		return nil, errors.New("backendtest: backend unreachable")
	case Unavailable:
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
			Header: http.Header{}, Body: http.NoBody, Request: req}, nil
	case LostAnswer:
		if resp, err := n.base.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
		return nil, errors.New("backendtest: connection reset after the request")
	case Slow:
		resp, err := n.base.RoundTrip(req)
		if serr := n.sleep(req.Context(), SlowAnswer); serr != nil {
			if err == nil {
				resp.Body.Close()
			}
			return nil, serr
		}
		return resp, err
	}
	return n.base.RoundTrip(req)
}

// sleep waits d on the network's clock, or until ctx ends; it returns
// ctx.Err() when ctx ended first.
func (n *Network) sleep(ctx context.Context, d time.Duration) error {
	if s, ok := n.clock.(interface {
		Sleep(context.Context, time.Duration) error
	}); ok {
		return s.Sleep(ctx, d)
	}
	wctx, cancel := n.clock.WithTimeout(context.Background(), d)
	defer cancel()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-wctx.Done():
		return nil
	}
}
