package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

var start = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

func TestSimulatedAfterMovesTheClockAndLogsTheWait(t *testing.T) {
	s := NewSimulated(start)
	got := <-s.After(40 * time.Millisecond)
	if want := start.Add(40 * time.Millisecond); !got.Equal(want) || !s.Now().Equal(want) {
		t.Fatalf("After gave %v, Now %v; want both %v", got, s.Now(), want)
	}
	<-s.After(80 * time.Millisecond)
	want := []Wait{{At: start, For: 40 * time.Millisecond}, {At: start.Add(40 * time.Millisecond), For: 80 * time.Millisecond}}
	w := s.Waits()
	if len(w) != len(want) || w[0] != want[0] || w[1] != want[1] {
		t.Fatalf("Waits = %v, want %v", w, want)
	}
}

func TestSimulatedTimeoutEndsWhenTheClockPassesIt(t *testing.T) {
	s := NewSimulated(start)
	ctx, cancel := s.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, ok := ctx.Deadline(); ok {
		t.Fatal("a simulated timeout must not show a wall-clock deadline")
	}
	s.Advance(499 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("ended %v before its time", ctx.Err())
	}
	<-s.After(time.Millisecond)
	select {
	case <-ctx.Done():
	default:
		t.Fatal("not ended at its time")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want context.DeadlineExceeded", ctx.Err())
	}
	if s.Pending() != 0 {
		t.Fatalf("%d timeouts pending after the only one ended", s.Pending())
	}
}

func TestSimulatedTimeoutsEndInOrderAndCancelDropsThem(t *testing.T) {
	s := NewSimulated(start)
	late, cancelLate := s.WithTimeout(context.Background(), 2*time.Second)
	early, cancelEarly := s.WithTimeout(context.Background(), time.Second)
	dropped, cancelDropped := s.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancelLate()
	defer cancelEarly()
	cancelDropped()
	if !errors.Is(dropped.Err(), context.Canceled) {
		t.Fatalf("cancelled timeout: Err = %v, want context.Canceled", dropped.Err())
	}
	if s.Pending() != 2 {
		t.Fatalf("%d pending, want 2", s.Pending())
	}
	s.Advance(time.Second)
	if early.Err() == nil || late.Err() != nil {
		t.Fatalf("after 1 s: early %v, late %v", early.Err(), late.Err())
	}
	s.Advance(time.Second)
	if !errors.Is(late.Err(), context.DeadlineExceeded) {
		t.Fatalf("after 2 s: late %v", late.Err())
	}
}

func TestSimulatedTimeoutFollowsItsParent(t *testing.T) {
	s := NewSimulated(start)
	parent, cancelParent := context.WithCancel(context.Background())
	ctx, cancel := s.WithTimeout(parent, time.Hour)
	defer cancel()
	cancelParent()
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("Err = %v, want the parent's context.Canceled", ctx.Err())
	}
}

func TestSystemTimeoutIsWallTime(t *testing.T) {
	ctx, cancel := System{}.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v", ctx.Err())
	}
	if Or(nil) != (System{}) {
		t.Fatal("Or(nil) is not the system clock")
	}
}

func TestSimulatedSleepStopsAtTheTimeoutOfItsContext(t *testing.T) {
	s := NewSimulated(start)
	other, cancelOther := s.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelOther()
	ctx, cancel := s.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := s.Sleep(ctx, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sleep = %v, want context.DeadlineExceeded", err)
	}
	if got := s.Now().Sub(start); got != 500*time.Millisecond {
		t.Fatalf("clock moved %v, want to the timeout at 500ms", got)
	}
	if other.Err() == nil {
		t.Fatal("a timeout the clock passed did not end")
	}
	if err := s.Sleep(context.Background(), time.Second); err != nil {
		t.Fatalf("Sleep with nothing pending = %v", err)
	}
	if got := s.Now().Sub(start); got != 1500*time.Millisecond {
		t.Fatalf("clock at +%v, want +1.5s", got)
	}
	if w := s.Waits(); len(w) != 2 || w[0].For != 500*time.Millisecond || w[1].For != time.Second {
		t.Fatalf("Waits = %v", w)
	}
}
