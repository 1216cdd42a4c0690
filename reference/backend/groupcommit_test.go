package backend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// groupWrites makes the next n writes sent to the single writer run in one
// group (one transaction, one commit): a write of its own holds the writer
// until the n are queued, and they join its group. The returned function
// waits for the holding write and returns its error. On an engine without
// a single writer it does nothing.
func groupWrites(t *testing.T, l *lab, n int) (wait func() error) {
	t.Helper()
	if l.srv.jobs == nil {
		return func() error { return nil }
	}
	started, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- l.srv.write(bg, func(ctx context.Context, tx *sql.Tx) error {
			close(started)
			for wait := time.Now(); len(l.srv.jobs) < n; time.Sleep(time.Millisecond) {
				if time.Since(wait) > time.Minute {
					return fmt.Errorf("only %d of %d writes queued", len(l.srv.jobs), n)
				}
			}
			return nil
		})
	}()
	<-started
	return func() error { return <-done }
}

// groupSizes records the size of every group the single writer commits.
type groupSizes struct {
	mu    sync.Mutex
	sizes []int
	fail  atomic.Pointer[error]
}

func watchGroups(l *lab) *groupSizes {
	g := &groupSizes{}
	l.srv.failCommit = func(n int) error {
		g.mu.Lock()
		g.sizes = append(g.sizes, n)
		g.mu.Unlock()
		if err := g.fail.Load(); err != nil {
			return *err
		}
		return nil
	}
	return g
}

func (g *groupSizes) largest() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := 0
	for _, n := range g.sizes {
		m = max(m, n)
	}
	return m
}

// A group whose commit fails answers every authorisation in it with an
// error and stores nothing of any of them; sent again, each is authorised
// afresh (not answered as a repeat of something stored).
func TestGroupCommitFailureFailsEveryWrite(t *testing.T) {
	sqliteOnly(t)
	l := newLab(t, nil)
	const n = 5
	devs := make([]*simDevice, n)
	reqs := make([]AuthorisationRequest, n)
	for i := range devs {
		devs[i] = newSimDevice(t, fmt.Sprintf("failed-group-%d", i))
		l.register(devs[i], 1000, "")
		reqs[i] = AuthorisationRequest{Record: devs[i].record(100, "", l.clock.Now()), Channel: "qr"}
	}
	// A second authorisation of the first device, in the same group: the
	// two check one balance inside the transaction, and both are lost.
	reqs = append(reqs, AuthorisationRequest{Record: devs[0].record(950, "", l.clock.Now()), Channel: "qr"})
	groups := watchGroups(l)
	diskFull := errors.New("disk I/O error: the disk is full")
	groups.fail.Store(&diskFull)
	before := l.snapshot()

	wait := groupWrites(t, l, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() { _, errs[i] = l.term.Authorise(bg, req) })
	}
	wg.Wait()
	if err := wait(); !errors.Is(err, diskFull) {
		t.Fatalf("the holding write: %v, want the commit's error", err)
	}
	if got := groups.largest(); got != len(reqs)+1 {
		t.Fatalf("largest group %d writes, want the %d authorisations and the holding write in one", got, len(reqs))
	}
	for i, err := range errs {
		ae := wantCode(t, err, 500, CodeInternal)
		if !strings.Contains(ae.Reason, "the disk is full") {
			t.Errorf("authorisation %d: %q does not name the commit's error", i, ae.Reason)
		}
	}
	if after := l.snapshot(); after != before {
		t.Fatalf("a failed group commit stored something:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	groups.fail.Store(nil)
	for i, req := range reqs[:n] {
		res, err := l.term.Authorise(bg, req)
		if err != nil || res.Status != Approved || res.Repeated || res.Balance != 900 {
			t.Fatalf("authorisation %d sent again: %+v %v, want approved afresh with 900 left", i, res, err)
		}
	}
	res, err := l.term.Authorise(bg, reqs[n])
	if err != nil || res.Status != Declined || res.Repeated || res.Balance != 900 {
		t.Fatalf("the second authorisation of device 0 sent again: %+v %v, want declined afresh", res, err)
	}
	if a := l.audit(); a.RecordsSettled != n {
		t.Fatalf("audit: %d records settled, want %d", a.RecordsSettled, n)
	}
}

// Authorisations of one device sent at once, each twice, and a rival
// record for one ATC: on SQLite all in one group commit. Each ATC is
// decided once, by whichever of its records came first: the record's
// repeat is answered with the stored result, the rival is refused as a
// conflict; the balance check sees the debits before it in the same
// transaction, so exactly as many are approved as the balance pays.
func TestGroupedAuthorisationsOfOneDevice(t *testing.T) {
	l := newLab(t, func(c *Config) { c.KeepClonesInService = true })
	d := newSimDevice(t, "one-device-group")
	l.register(d, 500, "")
	const atcs = 8
	at := l.clock.Now()
	type send struct {
		atc  uint32
		raw  []byte
		res  AuthorisationResult
		err  error
		kind string // "" the record, "rival" another record of its ATC
	}
	var sends []*send
	for atc := uint32(1); atc <= atcs; atc++ {
		raw := d.recordATC(atc, 100, "", at)
		sends = append(sends, &send{atc: atc, raw: raw}, &send{atc: atc, raw: raw})
	}
	sends = append(sends, &send{atc: 3, raw: d.recordATC(3, 100, "", at.Add(time.Minute)), kind: "rival"})
	groups := watchGroups(l)

	wait := groupWrites(t, l, len(sends))
	var wg sync.WaitGroup
	for _, s := range sends {
		wg.Go(func() { s.res, s.err = l.term.Authorise(bg, AuthorisationRequest{Record: s.raw, Channel: "qr"}) })
	}
	wg.Wait()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if l.srv.jobs != nil && groups.largest() != len(sends)+1 {
		t.Fatalf("largest group %d writes, want the %d authorisations and the holding write in one", groups.largest(), len(sends))
	}

	approved, declined := 0, 0
	for atc := uint32(1); atc <= atcs; atc++ {
		var winner []*send // the sends of the record that holds the ATC
		var losers int
		for _, s := range sends {
			if s.atc != atc {
				continue
			}
			if s.err != nil {
				wantCode(t, s.err, 409, CodeConflict)
				losers++
				continue
			}
			winner = append(winner, s)
		}
		switch {
		case atc == 3 && len(winner) == 1 && winner[0].kind == "rival" && losers == 2,
			atc == 3 && len(winner) == 2 && winner[0].kind == "" && losers == 1,
			atc != 3 && len(winner) == 2 && losers == 0:
		default:
			t.Fatalf("ATC %d: %d sends answered, %d refused as conflicts", atc, len(winner), losers)
		}
		first, repeats := 0, 0
		for _, s := range winner {
			if s.res.Repeated {
				repeats++
			} else {
				first++
			}
			w := winner[0].res
			if s.res.Status != w.Status || s.res.Balance != w.Balance || s.res.ATC != atc || !s.res.Time.Equal(w.Time) {
				t.Fatalf("ATC %d answered differently: %+v and %+v", atc, s.res, w)
			}
			if err := s.res.Verify(&l.srv.signer.PublicKey); err != nil {
				t.Fatal(err)
			}
		}
		if first != 1 || repeats != len(winner)-1 {
			t.Fatalf("ATC %d: %d first answers and %d repeats, want 1 and %d", atc, first, repeats, len(winner)-1)
		}
		switch r := winner[0].res; {
		case r.Status == Approved:
			approved++
		case r.Status == Declined && r.Reason == "insufficient balance" && r.Balance == 0:
			declined++
		default:
			t.Fatalf("ATC %d: %+v", atc, r)
		}
	}
	if approved != 5 || declined != atcs-5 {
		t.Fatalf("%d approved and %d declined, want 5 (the balance of 500 pays five of 100) and %d", approved, declined, atcs-5)
	}
	if dev, err := l.c.Device(bg, d.id); err != nil || dev.Balance != 0 {
		t.Fatalf("device: %+v %v, want a balance of 0", dev, err)
	}
	if a := l.audit(); a.RecordsSettled != 5 {
		t.Fatalf("audit: %d records settled, want 5", a.RecordsSettled)
	}
}

// TestJoiningJob checks when the single writer holds a group open: for a
// write already waiting, or while an authorisation is being verified
// (until a write arrives, the wait ends or the backend closes), and then
// not again in the same group; never when no authorisation is on the way.
func TestJoiningJob(t *testing.T) {
	newServer := func(wait time.Duration) (*Server, *time.Timer) {
		s := &Server{jobs: make(chan *writeJob, 4), closing: make(chan struct{}), commitWait: wait}
		tm := time.NewTimer(time.Hour)
		tm.Stop()
		t.Cleanup(func() { tm.Stop() })
		return s, tm
	}
	waiting, later := &writeJob{}, &writeJob{}

	// A write already waiting joins, on the way or not.
	s, tm := newServer(time.Hour)
	s.jobs <- waiting
	if j := s.joiningJob(tm)(); j != waiting {
		t.Fatalf("waiting write: got %p, want %p", j, waiting)
	}
	// None waiting, none on the way: the group ends (a wait here would
	// be an hour's).
	if j := s.joiningJob(tm)(); j != nil {
		t.Fatalf("nothing on the way: got %p, want nil", j)
	}

	// An authorisation on the way: the writer waits for its write.
	s, tm = newServer(time.Hour)
	s.authorising.Add(1)
	go func() { s.jobs <- later }()
	if j := s.joiningJob(tm)(); j != later {
		t.Fatalf("write on the way: got %p, want %p", j, later)
	}

	// The wait ends: nil, and no second wait in the same group (a second
	// wait on the spent timer would never end).
	s, tm = newServer(time.Nanosecond)
	s.authorising.Add(1)
	next := s.joiningJob(tm)
	if j := next(); j != nil {
		t.Fatalf("wait over: got %p, want nil", j)
	}
	if j := next(); j != nil {
		t.Fatalf("after the wait: got %p, want nil", j)
	}
	// ... but a write that came meanwhile still joins.
	s.jobs <- waiting
	if j := next(); j != waiting {
		t.Fatalf("after the wait, a waiting write: got %p, want %p", j, waiting)
	}

	// The backend closing ends the wait.
	s, tm = newServer(time.Hour)
	s.authorising.Add(1)
	close(s.closing)
	if j := s.joiningJob(tm)(); j != nil {
		t.Fatalf("closing: got %p, want nil", j)
	}
}

// TestAuthorisingCount checks that an authorisation counts as on its way
// to the writer only while it is verified: approved or refused, none is
// left counted (a count left behind would hold every group open).
func TestAuthorisingCount(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "payer")
	l.register(d, 1000, "")
	now := l.clock.Now()
	if _, err := l.c.Authorise(bg, AuthorisationRequest{Record: d.record(300, "", now), Channel: "qr"}); err != nil {
		t.Fatal(err)
	}
	forger := newSimDevice(t, "payer")
	_, err := l.c.Authorise(bg, AuthorisationRequest{Record: forger.recordATC(9, 10, "", now), Channel: "qr"})
	wantCode(t, err, 403, CodeBadSignature)
	if n := l.srv.authorising.Load(); n != 0 {
		t.Fatalf("%d authorisations still counted on their way", n)
	}
}
