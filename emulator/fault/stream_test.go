package fault

import (
	"bytes"
	"io"
	"math/bits"
	"net"
	"testing"
	"time"
)

func TestLineClean(t *testing.T) {
	var buf bytes.Buffer
	l := NewLine(&buf, LineNoise{Seed: 1})
	msg := []byte("a clean line changes nothing")
	if n, err := l.Write(msg); n != len(msg) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got, err := io.ReadAll(l)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %q, %v", got, err)
	}
	if c := l.Counts(); c.Bytes != 2*len(msg) || c.Flipped+c.Dropped+c.Duplicated != 0 {
		t.Fatalf("counts %+v", c)
	}
}

func TestLineFaults(t *testing.T) {
	msg := bytes.Repeat([]byte{0x00, 0xFF, 0x5A, 0xA5}, 64)
	cases := []struct {
		name  string
		noise LineNoise
		check func(t *testing.T, out []byte, c LineCounts)
	}{
		{"drop all", LineNoise{DropRate: 1}, func(t *testing.T, out []byte, c LineCounts) {
			if len(out) != 0 || c.Dropped != len(msg) {
				t.Fatalf("%d bytes through, %d dropped", len(out), c.Dropped)
			}
		}},
		{"duplicate all", LineNoise{DupRate: 1}, func(t *testing.T, out []byte, c LineCounts) {
			for i, b := range msg {
				if out[2*i] != b || out[2*i+1] != b {
					t.Fatalf("byte %d not doubled", i)
				}
			}
			if c.Duplicated != len(msg) {
				t.Fatalf("duplicated %d", c.Duplicated)
			}
		}},
		{"flip all", LineNoise{FlipRate: 1}, func(t *testing.T, out []byte, c LineCounts) {
			for i, b := range msg {
				if bits.OnesCount8(out[i]^b) != 1 {
					t.Fatalf("byte %d: %02x -> %02x is not one bit flipped", i, b, out[i])
				}
			}
		}},
		{"mixed", LineNoise{FlipRate: 0.1, DropRate: 0.1, DupRate: 0.1, Seed: 7}, func(t *testing.T, out []byte, c LineCounts) {
			if len(out) != len(msg)-c.Dropped+c.Duplicated {
				t.Fatalf("%d bytes out, counts %+v", len(out), c)
			}
			if c.Flipped == 0 || c.Dropped == 0 || c.Duplicated == 0 {
				t.Fatalf("a fault never happened at 10%%: %+v", c)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name+"/write", func(t *testing.T) {
			var buf bytes.Buffer
			tc.noise.Dir = WriteOnly
			l := NewLine(&buf, tc.noise)
			if n, err := l.Write(msg); n != len(msg) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			tc.check(t, buf.Bytes(), l.Counts())
		})
		t.Run(tc.name+"/read", func(t *testing.T) {
			tc.noise.Dir = ReadOnly
			l := NewLine(bytes.NewBuffer(append([]byte{}, msg...)), tc.noise)
			out, err := io.ReadAll(l)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, out, l.Counts())
		})
	}
}

func TestLineDeterministic(t *testing.T) {
	msg := bytes.Repeat([]byte("spdlab"), 100)
	run := func(seed uint64) []byte {
		var buf bytes.Buffer
		l := NewLine(&buf, LineNoise{FlipRate: 0.05, DropRate: 0.05, DupRate: 0.05, Seed: seed})
		for i := 0; i < len(msg); i += 7 {
			l.Write(msg[i:min(i+7, len(msg))])
		}
		return buf.Bytes()
	}
	if !bytes.Equal(run(3), run(3)) {
		t.Fatal("same seed, different faults")
	}
	if bytes.Equal(run(3), run(4)) {
		t.Fatal("different seeds, same faults")
	}
}

func TestLineSmallReads(t *testing.T) {
	// Duplicated bytes that do not fit the caller's buffer wait for the
	// next Read.
	l := NewLine(bytes.NewBufferString("abc"), LineNoise{DupRate: 1, Dir: ReadOnly})
	var got []byte
	p := make([]byte, 1)
	for {
		n, err := l.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
	}
	if string(got) != "aabbcc" {
		t.Fatalf("read %q", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLineFullDuplex reads and writes a Line from two goroutines at once,
// as a serial transport does: a Read waiting for bytes must not hold up a
// Write.
func TestLineFullDuplex(t *testing.T) {
	near, far := net.Pipe()
	defer near.Close()
	defer far.Close()
	l := NewLine(near, LineNoise{Seed: 9})
	got := make(chan []byte, 1)
	go func() { // the local receiver, blocked until the far end answers
		p := make([]byte, 16)
		n, _ := l.Read(p)
		got <- p[:n]
	}()
	go func() { // the far end: reads the request, then answers
		p := make([]byte, 16)
		n, _ := far.Read(p)
		far.Write(append([]byte("re:"), p[:n]...))
	}()
	if _, err := l.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if string(b) != "re:ping" {
			t.Fatalf("read %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a Read blocked the Write: the line is not full duplex")
	}
}
