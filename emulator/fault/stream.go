package fault

import (
	"io"
	"math/rand/v2"
	"sync"
)

// Direction picks which way through a Line faults apply.
type Direction int

const (
	BothWays  Direction = 0 // the zero value: reads and writes
	ReadOnly  Direction = 1 // bytes read from the underlying stream
	WriteOnly Direction = 2 // bytes written to it
)

// LineNoise sets the faults of a Line. Each rate is a probability per byte,
// from 0 (never) to 1 (every byte).
type LineNoise struct {
	FlipRate float64 // flip one random bit of the byte
	DropRate float64 // lose the byte
	DupRate  float64 // deliver the byte twice
	Seed     uint64  // the same seed and traffic give the same faults
	Dir      Direction
}

// LineCounts is what a Line has done so far.
type LineCounts struct {
	Bytes      int // bytes that passed through a faulty direction
	Flipped    int
	Dropped    int
	Duplicated int
}

// Line is a noisy serial line: an io.ReadWriter that flips bits in, drops
// and duplicates the bytes passing through it, at seeded rates. A Write
// reports every byte written even when some were lost, as a UART does; a
// Read returns what arrived, which may be more or fewer bytes than were
// sent.
//
// Reads and writes may run in separate goroutines (a full-duplex line):
// each direction has its own lock and its own random stream, both seeded
// from LineNoise.Seed.
type Line struct {
	rw    io.ReadWriter
	noise LineNoise

	readMu  sync.Mutex
	readRng *rand.Rand
	pending []byte // read bytes that did not fit the caller's buffer

	writeMu  sync.Mutex
	writeRng *rand.Rand

	countMu sync.Mutex
	counts  LineCounts
}

var _ io.ReadWriter = (*Line)(nil)

// NewLine wraps rw.
func NewLine(rw io.ReadWriter, noise LineNoise) *Line {
	return &Line{
		rw:       rw,
		noise:    noise,
		readRng:  rand.New(rand.NewPCG(noise.Seed, 0x72656164)),
		writeRng: rand.New(rand.NewPCG(noise.Seed, 0x77726974)),
	}
}

// garble applies the faults to b, returning what comes out of the line.
func (l *Line) garble(rng *rand.Rand, b []byte) []byte {
	var n LineCounts
	out := make([]byte, 0, len(b)+len(b)/8+1)
	for _, c := range b {
		n.Bytes++
		if l.noise.DropRate > 0 && rng.Float64() < l.noise.DropRate {
			n.Dropped++
			continue
		}
		if l.noise.FlipRate > 0 && rng.Float64() < l.noise.FlipRate {
			c ^= 1 << rng.IntN(8)
			n.Flipped++
		}
		out = append(out, c)
		if l.noise.DupRate > 0 && rng.Float64() < l.noise.DupRate {
			out = append(out, c)
			n.Duplicated++
		}
	}
	l.countMu.Lock()
	l.counts.Bytes += n.Bytes
	l.counts.Dropped += n.Dropped
	l.counts.Flipped += n.Flipped
	l.counts.Duplicated += n.Duplicated
	l.countMu.Unlock()
	return out
}

// Read reads from the underlying stream and delivers the bytes as the line
// garbled them. When every byte of a read was lost it reads again, as a
// receiver keeps waiting, until the stream gives no bytes (a timeout) or an
// error.
func (l *Line) Read(p []byte) (int, error) {
	l.readMu.Lock()
	defer l.readMu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if len(l.pending) > 0 {
		n := copy(p, l.pending)
		l.pending = l.pending[n:]
		return n, nil
	}
	if l.noise.Dir == WriteOnly {
		return l.rw.Read(p)
	}
	for {
		n, err := l.rw.Read(p)
		got := l.garble(l.readRng, p[:n])
		k := copy(p, got)
		l.pending = append(l.pending[:0], got[k:]...)
		if k > 0 || n == 0 || err != nil {
			return k, err
		}
	}
}

// Write garbles p and writes the result. It returns len(p) unless the
// underlying stream fails.
func (l *Line) Write(p []byte) (int, error) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.noise.Dir == ReadOnly {
		return l.rw.Write(p)
	}
	out := l.garble(l.writeRng, p)
	if len(out) > 0 {
		if _, err := l.rw.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Counts returns what the line has done so far.
func (l *Line) Counts() LineCounts {
	l.countMu.Lock()
	defer l.countMu.Unlock()
	return l.counts
}

// Close closes the underlying stream if it can be closed.
func (l *Line) Close() error {
	if c, ok := l.rw.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
