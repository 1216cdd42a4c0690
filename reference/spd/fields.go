package spd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/spdlab/spdlab/reference/tlv"
)

// ErrMalformed is wrapped by every parse error of a command or response
// data field; a device answers it with 6A80.
var ErrMalformed = errors.New("spd: malformed data field")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// fields is a flat list of primitive data objects, each tag at most once.
// Values alias the parsed input. A short slice beats a map here: a data
// field holds a handful of objects and is parsed once per command.
type fields []field

type field struct {
	tag   tlv.Tag
	value []byte
}

// parseFields parses b as a flat sequence of data objects, rejecting
// duplicates and tags outside allowed.
func parseFields(b []byte, allowed ...tlv.Tag) (fields, error) {
	f := make(fields, 0, len(allowed))
	for len(b) > 0 {
		obj, rest, err := tlv.Next(b)
		if err != nil {
			return nil, malformed("%w", err)
		}
		b = rest
		ok := false
		for _, t := range allowed {
			if t == obj.Tag {
				ok = true
				break
			}
		}
		if !ok {
			return nil, malformed("unexpected tag %s", obj.Tag)
		}
		if f.has(obj.Tag) {
			return nil, malformed("tag %s twice", obj.Tag)
		}
		f = append(f, field{obj.Tag, obj.Value})
	}
	return f, nil
}

func (f fields) get(t tlv.Tag) ([]byte, bool) {
	for _, x := range f {
		if x.tag == t {
			return x.value, true
		}
	}
	return nil, false
}

func (f fields) has(t tlv.Tag) bool { _, ok := f.get(t); return ok }

// val returns the value of t, nil when absent.
func (f fields) val(t tlv.Tag) []byte { v, _ := f.get(t); return v }

func (f fields) require(tags ...tlv.Tag) error {
	for _, t := range tags {
		if !f.has(t) {
			return malformed("tag %s missing", t)
		}
	}
	return nil
}

func (f fields) uint(t tlv.Tag, size int) (uint64, error) {
	v, ok := f.get(t)
	if !ok {
		return 0, nil
	}
	if len(v) != size {
		return 0, malformed("tag %s has %d bytes, want %d", t, len(v), size)
	}
	var full [8]byte
	copy(full[8-size:], v)
	return binary.BigEndian.Uint64(full[:]), nil
}

func (f fields) amount(t tlv.Tag) (int64, error) {
	v, err := f.uint(t, 8)
	if err != nil {
		return 0, err
	}
	if v > 1<<62 {
		return 0, malformed("tag %s amount %d out of range", t, v)
	}
	return int64(v), nil
}

func (f fields) time(t tlv.Tag) (time.Time, error) {
	v, err := f.uint(t, 4)
	if err != nil || !f.has(t) {
		return time.Time{}, err
	}
	return time.Unix(int64(v), 0).UTC(), nil
}

func (f fields) bytes(t tlv.Tag, min, max int) ([]byte, error) {
	v, ok := f.get(t)
	if !ok {
		return nil, nil
	}
	if len(v) < min || len(v) > max {
		return nil, malformed("tag %s has %d bytes, want %d..%d", t, len(v), min, max)
	}
	return append([]byte(nil), v...), nil
}

// builder wraps tlv.Builder with the profile's fixed-width integers.
type builder struct{ tlv.Builder }

func (b *builder) u(t tlv.Tag, size int, v uint64) { b.AddUint(t, size, v) }

func (b *builder) amount(t tlv.Tag, v int64) {
	if v < 0 {
		v = 0
	}
	b.AddUint(t, 8, uint64(v))
}

func (b *builder) time(t tlv.Tag, v time.Time) {
	s := v.Unix()
	if s < 0 {
		s = 0
	}
	if s > 0xFFFFFFFF {
		s = 0xFFFFFFFF
	}
	b.AddUint(t, 4, uint64(s))
}

func (b *builder) opt(t tlv.Tag, v []byte) {
	if len(v) > 0 {
		b.Add(t, v)
	}
}

func (b *builder) must() []byte {
	out, err := b.Bytes()
	if err != nil {
		panic(err) // only reachable through values larger than 16 MiB
	}
	return out
}

// Unix converts t to the profile's 4-byte Unix seconds, clamped.
func Unix(t time.Time) uint32 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	if s > 0xFFFFFFFF {
		return 0xFFFFFFFF
	}
	return uint32(s)
}
