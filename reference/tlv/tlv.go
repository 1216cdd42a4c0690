// Package tlv encodes and decodes BER-TLV data objects as ISO/IEC 7816-4
// (clause 5.2, "BER-TLV data objects") and EMV Book 3 (Annex B) use them:
// the coded media of reference/medium and the data fields of the SPD's
// commands and responses are built from them.
//
// A data object is a tag, a length and a value:
//
//	field   bytes  encoding
//	tag     1..3   first byte: b8-b7 class, b6 constructed, b5-b1 number;
//	               b5-b1 = 11111 means more bytes follow, each with b8 set
//	               while another byte follows; the first subsequent byte
//	               is never 80 (no leading zero bits)
//	length  1..4   00..7F           short form, the length itself
//	               81 XX            80..FF
//	               82 XX XX         0100..FFFF
//	               83 XX XX XX      010000..FFFFFF
//	value   length primitive: the bytes; constructed: a sequence of objects
//	               that fills the value exactly
//
// The decoder is strict, as a device parsing outside bytes should be: it
// rejects tags longer than 3 bytes, the indefinite length (80), lengths that
// use more bytes than needed (81 05), lengths of 4 or more bytes, values
// running past the input, constructed values not filled exactly by their
// objects, nesting deeper than MaxDepth, and the 00/FF padding bytes EMV
// tolerates between objects. Every rejection is a *SyntaxError saying
// where and why.
package tlv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// MaxDepth is how deeply constructed objects may nest.
const MaxDepth = 16

// MaxLength is the largest value length the 3-byte long form expresses.
const MaxLength = 0xFFFFFF

// Tag is a BER-TLV tag as its bytes read big-endian: 0x85, 0x9F45, 0xDF01.
type Tag uint32

// Class is the class of a tag, from b8-b7 of its first byte.
type Class uint8

const (
	ClassUniversal   Class = 0
	ClassApplication Class = 1
	ClassContext     Class = 2
	ClassPrivate     Class = 3
)

func (c Class) String() string {
	switch c {
	case ClassUniversal:
		return "universal"
	case ClassApplication:
		return "application"
	case ClassContext:
		return "context-specific"
	}
	return "private"
}

// Len returns the number of bytes of the tag's encoding (1 to 4).
func (t Tag) Len() int {
	switch {
	case t <= 0xFF:
		return 1
	case t <= 0xFFFF:
		return 2
	case t <= 0xFFFFFF:
		return 3
	}
	return 4
}

func (t Tag) first() byte { return byte(t >> (8 * (t.Len() - 1))) }

// Constructed reports whether the tag's value is a sequence of data objects.
func (t Tag) Constructed() bool { return t.first()&0x20 != 0 }

// Class returns the tag's class.
func (t Tag) Class() Class { return Class(t.first() >> 6) }

// String returns the tag in hex as specifications write it: "9F45".
func (t Tag) String() string { return fmt.Sprintf("%0*X", 2*t.Len(), uint32(t)) }

// Bytes returns the tag's encoding.
func (t Tag) Bytes() []byte {
	n := t.Len()
	b := make([]byte, n)
	for i := range n {
		b[i] = byte(t >> (8 * (n - 1 - i)))
	}
	return b
}

// Valid returns nil when t is a well-formed tag of at most 3 bytes.
func (t Tag) Valid() error {
	b := t.Bytes()
	got, n, err := readTag(b)
	if err != nil {
		return err
	}
	if n != len(b) || got != t {
		return fmt.Errorf("tlv: tag %s is not a single well-formed tag", t)
	}
	return nil
}

// TLV is one data object. Value holds the value bytes for both kinds; for a
// constructed tag, Parse also fills Children with the objects of the value.
// When encoding a constructed object, non-nil Children take precedence
// over Value.
type TLV struct {
	Tag      Tag
	Value    []byte
	Children []TLV
}

// String renders the object and its children for logs and test failures.
func (o TLV) String() string {
	var sb strings.Builder
	o.write(&sb, 0)
	return strings.TrimSuffix(sb.String(), "\n")
}

func (o TLV) write(sb *strings.Builder, indent int) {
	sb.WriteString(strings.Repeat("  ", indent))
	if o.Tag.Constructed() && o.Children != nil {
		fmt.Fprintf(sb, "%s {\n", o.Tag)
		for _, c := range o.Children {
			c.write(sb, indent+1)
		}
		sb.WriteString(strings.Repeat("  ", indent))
		sb.WriteString("}\n")
		return
	}
	fmt.Fprintf(sb, "%s [%d] %X\n", o.Tag, len(o.Value), o.Value)
}

// Child returns the first direct child of o with the given tag.
func (o TLV) Child(tag Tag) (TLV, bool) {
	for _, c := range o.Children {
		if c.Tag == tag {
			return c, true
		}
	}
	return TLV{}, false
}

// SyntaxError is malformed BER-TLV input. Offset counts bytes from the
// start of the outermost input; Tag is the object being read when known.
type SyntaxError struct {
	Offset int
	Tag    Tag
	Reason string
}

func (e *SyntaxError) Error() string {
	if e.Tag != 0 {
		return fmt.Sprintf("tlv: tag %s at offset %d: %s", e.Tag, e.Offset, e.Reason)
	}
	return fmt.Sprintf("tlv: offset %d: %s", e.Offset, e.Reason)
}

func syntaxErr(off int, tag Tag, format string, args ...any) *SyntaxError {
	return &SyntaxError{Offset: off, Tag: tag, Reason: fmt.Sprintf(format, args...)}
}

// readTag reads a tag at the start of b, returning it and its length.
func readTag(b []byte) (Tag, int, error) {
	if len(b) == 0 {
		return 0, 0, syntaxErr(0, 0, "tag truncated: no bytes left")
	}
	if b[0] == 0x00 || b[0] == 0xFF {
		return 0, 0, syntaxErr(0, 0, "padding or invalid tag byte %02X", b[0])
	}
	t := Tag(b[0])
	if b[0]&0x1F != 0x1F {
		return t, 1, nil
	}
	for i := 1; ; i++ {
		if i >= len(b) {
			return 0, 0, syntaxErr(0, 0, "tag %X truncated after %d bytes", b[:i], i)
		}
		if i == 1 && b[1] == 0x80 {
			return 0, 0, syntaxErr(0, 0, "tag %X has a leading zero subsequent byte", b[:2])
		}
		t = t<<8 | Tag(b[i])
		if b[i]&0x80 == 0 {
			return t, i + 1, nil
		}
		if i == 2 {
			return 0, 0, syntaxErr(0, 0, "tag %X is longer than 3 bytes", b[:3])
		}
	}
}

// readLength reads a definite length at the start of b.
func readLength(b []byte) (int, int, error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("length truncated: no bytes left")
	}
	first := b[0]
	switch {
	case first < 0x80:
		return int(first), 1, nil
	case first == 0x80:
		return 0, 0, fmt.Errorf("indefinite length (80) is not allowed")
	case first > 0x83:
		return 0, 0, fmt.Errorf("length form %02X uses more than 3 length bytes", first)
	}
	n := int(first & 0x7F)
	if len(b) < 1+n {
		return 0, 0, fmt.Errorf("length %02X needs %d more bytes, %d left", first, n, len(b)-1)
	}
	l := 0
	for _, c := range b[1 : 1+n] {
		l = l<<8 | int(c)
	}
	if min := [...]int{0, 0x80, 0x100, 0x10000}[n]; l < min {
		return 0, 0, fmt.Errorf("overlong length encoding %X for %d", b[:1+n], l)
	}
	return l, 1 + n, nil
}

// Next reads the first data object of b and returns it with the bytes that
// follow it. The object's encoding is b[:len(b)-len(rest)].
func Next(b []byte) (obj TLV, rest []byte, err error) {
	return next(b, 0, 0)
}

func next(b []byte, base, depth int) (TLV, []byte, error) {
	tag, tn, err := readTag(b)
	if err != nil {
		se := err.(*SyntaxError)
		se.Offset += base
		return TLV{}, nil, se
	}
	l, ln, err := readLength(b[tn:])
	if err != nil {
		return TLV{}, nil, syntaxErr(base, tag, "%v", err)
	}
	start := tn + ln
	if l > len(b)-start {
		return TLV{}, nil, syntaxErr(base, tag, "value truncated: length %d, %d bytes left", l, len(b)-start)
	}
	obj := TLV{Tag: tag, Value: b[start : start+l : start+l]}
	if tag.Constructed() {
		if depth >= MaxDepth {
			return TLV{}, nil, syntaxErr(base, tag, "nested deeper than %d", MaxDepth)
		}
		obj.Children, err = parseList(obj.Value, base+start, depth+1)
		if err != nil {
			return TLV{}, nil, err
		}
	}
	return obj, b[start+l:], nil
}

func parseList(b []byte, base, depth int) ([]TLV, error) {
	list := []TLV{}
	for len(b) > 0 {
		obj, rest, err := next(b, base, depth)
		if err != nil {
			return nil, err
		}
		base += len(b) - len(rest)
		list = append(list, obj)
		b = rest
	}
	return list, nil
}

// Parse decodes b as a sequence of data objects that fills it exactly.
// Values alias b.
func Parse(b []byte) ([]TLV, error) {
	return parseList(b, 0, 0)
}

// ParseOne decodes b as exactly one data object; bytes after it are an
// error.
func ParseOne(b []byte) (TLV, error) {
	obj, rest, err := Next(b)
	if err != nil {
		return TLV{}, err
	}
	if len(rest) != 0 {
		return TLV{}, syntaxErr(len(b)-len(rest), 0, "%d trailing bytes after tag %s", len(rest), obj.Tag)
	}
	return obj, nil
}

// Find returns the first object with the given tag, searching list and the
// children of constructed objects depth first, in order.
func Find(list []TLV, tag Tag) (TLV, bool) {
	for _, o := range list {
		if o.Tag == tag {
			return o, true
		}
		if c, ok := Find(o.Children, tag); ok {
			return c, true
		}
	}
	return TLV{}, false
}

// FindPath follows path through nested objects: FindPath(list, 0x61, 0xDF01)
// is the DF01 directly inside the 61 at the top of list.
func FindPath(list []TLV, path ...Tag) (TLV, bool) {
	var cur TLV
	for i, tag := range path {
		found := false
		for _, o := range list {
			if o.Tag == tag {
				cur, found = o, true
				break
			}
		}
		if !found {
			return TLV{}, false
		}
		if i < len(path)-1 {
			list = cur.Children
		}
	}
	return cur, len(path) > 0
}

// appendLength appends the minimal definite length encoding of n.
func appendLength(b []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n <= 0xFF:
		return append(b, 0x81, byte(n))
	case n <= 0xFFFF:
		return append(b, 0x82, byte(n>>8), byte(n))
	}
	return append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
}

// Encode returns the encoding of the objects in order.
func Encode(list ...TLV) ([]byte, error) {
	var out []byte
	for _, o := range list {
		var err error
		out, err = appendTLV(out, o, 0)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func appendTLV(out []byte, o TLV, depth int) ([]byte, error) {
	if err := o.Tag.Valid(); err != nil {
		return nil, err
	}
	value := o.Value
	if o.Children != nil {
		if !o.Tag.Constructed() {
			return nil, fmt.Errorf("tlv: tag %s is primitive but has children", o.Tag)
		}
		if depth >= MaxDepth {
			return nil, fmt.Errorf("tlv: tag %s nested deeper than %d", o.Tag, MaxDepth)
		}
		value = nil
		for _, c := range o.Children {
			var err error
			value, err = appendTLV(value, c, depth+1)
			if err != nil {
				return nil, err
			}
		}
	}
	if len(value) > MaxLength {
		return nil, fmt.Errorf("tlv: tag %s value of %d bytes exceeds %d", o.Tag, len(value), MaxLength)
	}
	out = append(out, o.Tag.Bytes()...)
	out = appendLength(out, len(value))
	return append(out, value...), nil
}

// Builder appends data objects to a buffer. The first error sticks and is
// returned by Bytes; later calls do nothing. The zero value is ready.
//
//	var b tlv.Builder
//	b.AddString(0x85, "SVL01")
//	b.AddConstructed(0x61, func(b *tlv.Builder) {
//		b.AddUint(0xDF01, 1, 1)
//	})
//	out, err := b.Bytes()
type Builder struct {
	buf   []byte
	err   error
	depth int
}

func (b *Builder) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// Add appends a primitive object. Constructed tags are accepted when value
// is already an encoded sequence of objects.
func (b *Builder) Add(tag Tag, value []byte) {
	if b.err != nil {
		return
	}
	if err := tag.Valid(); err != nil {
		b.fail(err)
		return
	}
	if len(value) > MaxLength {
		b.fail(fmt.Errorf("tlv: tag %s value of %d bytes exceeds %d", tag, len(value), MaxLength))
		return
	}
	b.buf = append(b.buf, tag.Bytes()...)
	b.buf = appendLength(b.buf, len(value))
	b.buf = append(b.buf, value...)
}

// AddString appends a primitive object holding s.
func (b *Builder) AddString(tag Tag, s string) { b.Add(tag, []byte(s)) }

// AddUint appends v big-endian in exactly size bytes (1 to 8); a value that
// does not fit is an error.
func (b *Builder) AddUint(tag Tag, size int, v uint64) {
	if b.err != nil {
		return
	}
	if size < 1 || size > 8 {
		b.fail(fmt.Errorf("tlv: tag %s: integer size %d out of 1..8", tag, size))
		return
	}
	if size < 8 && v>>(8*size) != 0 {
		b.fail(fmt.Errorf("tlv: tag %s: %d does not fit in %d bytes", tag, v, size))
		return
	}
	var full [8]byte
	binary.BigEndian.PutUint64(full[:], v)
	b.Add(tag, full[8-size:])
}

// AddTLV appends an object and its children.
func (b *Builder) AddTLV(o TLV) {
	if b.err != nil {
		return
	}
	var err error
	out, err := appendTLV(b.buf, o, b.depth)
	if err != nil {
		b.fail(err)
		return
	}
	b.buf = out
}

// AddConstructed appends a constructed object whose value is what fill
// adds to the builder it is given.
func (b *Builder) AddConstructed(tag Tag, fill func(*Builder)) {
	if b.err != nil {
		return
	}
	if err := tag.Valid(); err != nil {
		b.fail(err)
		return
	}
	if !tag.Constructed() {
		b.fail(fmt.Errorf("tlv: tag %s is primitive, not constructed", tag))
		return
	}
	if b.depth >= MaxDepth {
		b.fail(fmt.Errorf("tlv: tag %s nested deeper than %d", tag, MaxDepth))
		return
	}
	child := Builder{depth: b.depth + 1}
	fill(&child)
	if child.err != nil {
		b.fail(child.err)
		return
	}
	b.Add(tag, child.buf)
}

// Len returns the number of bytes built so far.
func (b *Builder) Len() int { return len(b.buf) }

// Bytes returns the encoding built so far, or the first error.
func (b *Builder) Bytes() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	return bytes.Clone(b.buf), nil
}

// ParseTags decodes b as a sequence of tags with nothing between them (a
// tag list, ISO/IEC 7816-4 data object 5C): each of 1 to 3 bytes, with no
// padding byte (00, FF) and no leading zero subsequent byte. An empty b is
// an empty list.
func ParseTags(b []byte) ([]Tag, error) {
	var tags []Tag
	for off := 0; off < len(b); {
		t, n, err := readTag(b[off:])
		if err != nil {
			se := err.(*SyntaxError)
			se.Offset += off
			return nil, se
		}
		tags = append(tags, t)
		off += n
	}
	return tags, nil
}
