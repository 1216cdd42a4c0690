package trace

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
)

// Section is one pcapng section of a trace file, as its bytes: a trace
// written through Wrap starts a section for each link it records.
type Section struct {
	Bytes []byte
	// Case is the case ID of the section's first record tagged with one
	// ("spdlab case=ID", WrapCase), or "".
	Case string
}

// Sections splits a pcapng file into its sections, each a whole SHB with
// the blocks after it, unchanged. Joining them again in any order gives a
// valid pcapng file: `spdlab certify --procs` joins the traces of its
// processes so.
func Sections(b []byte) ([]Section, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var out []Section
	var order binary.ByteOrder
	start := -1
	for off := 0; off < len(b); {
		if len(b)-off < 12 {
			return nil, formatErr("block at byte %d truncated", off)
		}
		if binary.LittleEndian.Uint32(b[off:]) == uint32(BlockSHB) {
			switch binary.LittleEndian.Uint32(b[off+8:]) {
			case byteOrderMagic:
				order = binary.LittleEndian
			case 0x4D3C2B1A:
				order = binary.BigEndian
			default:
				return nil, formatErr("bad byte-order magic at byte %d", off+8)
			}
			if start >= 0 {
				out = append(out, Section{Bytes: b[start:off]})
			}
			start = off
		}
		if order == nil {
			return nil, formatErr("no section header at byte 0")
		}
		n := int(order.Uint32(b[off+4:]))
		if n < 12 || n%4 != 0 || n > len(b)-off {
			return nil, formatErr("block at byte %d has length %d", off, n)
		}
		off += n
	}
	out = append(out, Section{Bytes: b[start:]})
	for i := range out {
		id, err := sectionCase(out[i].Bytes)
		if err != nil {
			return nil, err
		}
		out[i].Case = id
	}
	return out, nil
}

// sectionCase is the case of the first record of section b tagged with one.
func sectionCase(b []byte) (string, error) {
	r := NewPcapngReader(bytes.NewReader(b))
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		for _, c := range p.Comments {
			if id, ok := strings.CutPrefix(c, commentPrefix+keyCase); ok {
				return id, nil
			}
		}
	}
}
