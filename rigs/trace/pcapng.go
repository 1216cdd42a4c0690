package trace

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"
	"unicode/utf8"
)

// pcapng (IETF draft-ietf-opsawg-pcapng): a file is one or more sections,
// each a Section Header Block followed by other blocks. Every block has
// the same frame, in the byte order its section's SHB announces:
//
//	offset size  field
//	0      4     Block Type
//	4      4     Block Total Length (whole block, multiple of 4, >= 12)
//	8      n     Block Body, padded to 32 bits
//	8+n    4     Block Total Length again
//
// Bodies of the blocks read and written here:
//
//	SHB 0x0A0D0D0A  Byte-Order Magic 0x1A2B3C4D (4), Major 1 (2), Minor (2),
//	                Section Length (8, -1 unknown), options
//	IDB 0x00000001  LinkType (2), Reserved (2), SnapLen (4), options:
//	                if_name 2, if_tsresol 9 (1 byte), if_tsoffset 14 (8)
//	EPB 0x00000006  Interface ID (4), Timestamp high (4), low (4),
//	                Captured Length (4), Original Length (4), packet data
//	                padded to 32 bits, options: opt_comment 1
//	SPB 0x00000003  Original Length (4), packet data (interface 0, no time)
//
// Options are Code (2), Length (2), Value padded to 32 bits, ending with
// opt_endofopt (code 0). Other block types are skipped.

// BlockType is a pcapng block type.
type BlockType uint32

const (
	BlockSHB BlockType = 0x0A0D0D0A
	BlockIDB BlockType = 0x00000001
	BlockSPB BlockType = 0x00000003
	BlockEPB BlockType = 0x00000006
)

func (t BlockType) String() string {
	switch t {
	case BlockSHB:
		return "SHB"
	case BlockIDB:
		return "IDB"
	case BlockSPB:
		return "SPB"
	case BlockEPB:
		return "EPB"
	}
	return fmt.Sprintf("BlockType(0x%08X)", uint32(t))
}

// LinkType is a LINKTYPE_ value of an interface.
type LinkType uint16

const (
	LinkTypeNull     LinkType = 0   // BSD loopback: 4-byte address family, host order
	LinkTypeEthernet LinkType = 1   // IEEE 802.3
	LinkTypeRaw      LinkType = 101 // raw IPv4 or IPv6
	LinkTypeIPv4     LinkType = 228 // raw IPv4
)

func (t LinkType) String() string {
	switch t {
	case LinkTypeNull:
		return "LINKTYPE_NULL"
	case LinkTypeEthernet:
		return "LINKTYPE_ETHERNET"
	case LinkTypeRaw:
		return "LINKTYPE_RAW"
	case LinkTypeIPv4:
		return "LINKTYPE_IPV4"
	}
	return fmt.Sprintf("LinkType(%d)", uint16(t))
}

const (
	byteOrderMagic = 0x1A2B3C4D
	optEndOfOpt    = 0
	optComment     = 1
	optIfName      = 2
	optIfTSResol   = 9
	optIfTSOffset  = 14
	optSHBUserAppl = 4

	// MaxBlock bounds the blocks the reader accepts.
	MaxBlock = 16 << 20
)

// Packet is one packet read from a pcapng file.
type Packet struct {
	Interface      int
	LinkType       LinkType
	Time           time.Time // zero for a Simple Packet Block
	Data           []byte
	OriginalLength int
	Comments       []string
}

// ErrFormat: the bytes are not a well-formed pcapng file.
var ErrFormat = errors.New("trace: not a valid pcapng file")

type iface struct {
	linkType LinkType
	unitsPer uint64 // timestamp units per second when resolution is 10^-n
	pow2     uint8  // resolution 2^-pow2 when unitsPer is 0
	offset   int64  // if_tsoffset seconds
}

// PcapngReader reads packets from a pcapng file of one or more sections,
// in either byte order.
type PcapngReader struct {
	r      *bufio.Reader
	order  binary.ByteOrder
	ifaces []iface
	blocks int
}

// NewPcapngReader returns a reader of the pcapng stream r.
func NewPcapngReader(r io.Reader) *PcapngReader {
	return &PcapngReader{r: bufio.NewReader(r)}
}

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// Next returns the next packet, or io.EOF after the last one.
func (p *PcapngReader) Next() (Packet, error) {
	for {
		typ, body, err := p.block()
		if err != nil {
			return Packet{}, err
		}
		switch typ {
		case BlockSHB:
			// block() has handled the byte order and reset the interfaces.
		case BlockIDB:
			if err := p.addInterface(body); err != nil {
				return Packet{}, err
			}
		case BlockEPB:
			return p.enhancedPacket(body)
		case BlockSPB:
			return p.simplePacket(body)
		}
	}
}

// block reads one whole block and returns its type and body.
func (p *PcapngReader) block() (BlockType, []byte, error) {
	var head [12]byte
	n, err := io.ReadFull(p.r, head[:8])
	if err == io.EOF {
		if p.blocks == 0 {
			return 0, nil, formatErr("empty file")
		}
		return 0, nil, io.EOF
	}
	if err != nil {
		return 0, nil, formatErr("block %d header truncated after %d bytes", p.blocks+1, n)
	}
	p.blocks++
	if binary.LittleEndian.Uint32(head[:4]) == uint32(BlockSHB) {
		// The SHB's byte order is found from its magic, before its length.
		if _, err := io.ReadFull(p.r, head[8:12]); err != nil {
			return 0, nil, formatErr("section header truncated")
		}
		switch binary.LittleEndian.Uint32(head[8:12]) {
		case byteOrderMagic:
			p.order = binary.LittleEndian
		case 0x4D3C2B1A:
			p.order = binary.BigEndian
		default:
			return 0, nil, formatErr("bad byte-order magic % X", head[8:12])
		}
		p.ifaces = nil
		body, err := p.rest(BlockSHB, p.order.Uint32(head[4:8]), head[8:12])
		if err != nil {
			return 0, nil, err
		}
		if len(body) < 16 {
			return 0, nil, formatErr("section header of %d bytes", len(body))
		}
		if major := p.order.Uint16(body[4:6]); major != 1 {
			return 0, nil, formatErr("section version %d, want 1", major)
		}
		return BlockSHB, body, nil
	}
	if p.order == nil {
		return 0, nil, formatErr("file does not start with a section header block")
	}
	typ := BlockType(p.order.Uint32(head[:4]))
	body, err := p.rest(typ, p.order.Uint32(head[4:8]), nil)
	return typ, body, err
}

// rest reads the remainder of a block of total length total, whose
// first body bytes (already read) are pre.
func (p *PcapngReader) rest(typ BlockType, total uint32, pre []byte) ([]byte, error) {
	if total < 12 || total%4 != 0 || total > MaxBlock {
		return nil, formatErr("%s block %d has length %d", typ, p.blocks, total)
	}
	if int(total)-12 < len(pre) {
		return nil, formatErr("%s block %d of length %d is too short", typ, p.blocks, total)
	}
	// Grow with the bytes that arrive rather than trusting the declared
	// length with one large allocation.
	var b bytes.Buffer
	b.Grow(min(int(total)-8, 64<<10))
	b.Write(pre)
	if _, err := io.CopyN(&b, p.r, int64(int(total)-8-len(pre))); err != nil {
		return nil, formatErr("%s block %d truncated", typ, p.blocks)
	}
	buf := b.Bytes()
	body, trailer := buf[:len(buf)-4], buf[len(buf)-4:]
	if p.order.Uint32(trailer) != total {
		return nil, formatErr("%s block %d: trailing length %d differs from %d", typ, p.blocks, p.order.Uint32(trailer), total)
	}
	return body, nil
}

// options walks an options area, calling fn for each option.
func (p *PcapngReader) options(b []byte, fn func(code uint16, value []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return formatErr("option header truncated in block %d", p.blocks)
		}
		code, n := p.order.Uint16(b[:2]), int(p.order.Uint16(b[2:4]))
		b = b[4:]
		if code == optEndOfOpt {
			return nil
		}
		padded := (n + 3) &^ 3
		if padded > len(b) {
			return formatErr("option %d of %d bytes overruns block %d", code, n, p.blocks)
		}
		if err := fn(code, b[:n]); err != nil {
			return err
		}
		b = b[padded:]
	}
	return nil
}

func (p *PcapngReader) addInterface(body []byte) error {
	if len(body) < 8 {
		return formatErr("interface description of %d bytes", len(body))
	}
	in := iface{linkType: LinkType(p.order.Uint16(body[:2])), unitsPer: 1_000_000}
	err := p.options(body[8:], func(code uint16, v []byte) error {
		switch code {
		case optIfTSResol:
			if len(v) != 1 {
				return formatErr("if_tsresol of %d bytes", len(v))
			}
			if v[0]&0x80 != 0 {
				if v[0]&0x7F > 63 {
					return formatErr("if_tsresol 2^-%d", v[0]&0x7F)
				}
				in.unitsPer, in.pow2 = 0, v[0]&0x7F
				return nil
			}
			if v[0] > 19 {
				return formatErr("if_tsresol 10^-%d", v[0])
			}
			in.unitsPer = 1
			for range v[0] {
				in.unitsPer *= 10
			}
		case optIfTSOffset:
			if len(v) != 8 {
				return formatErr("if_tsoffset of %d bytes", len(v))
			}
			in.offset = int64(p.order.Uint64(v))
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.ifaces = append(p.ifaces, in)
	return nil
}

func (in iface) time(ts uint64) time.Time {
	var sec, nsec uint64
	if in.unitsPer != 0 {
		sec, nsec = ts/in.unitsPer, ts%in.unitsPer
		hi, lo := bits.Mul64(nsec, 1_000_000_000)
		nsec, _ = bits.Div64(hi, lo, in.unitsPer)
	} else {
		sec, nsec = ts>>in.pow2, ts&(1<<in.pow2-1)
		hi, lo := bits.Mul64(nsec, 1_000_000_000)
		nsec, _ = bits.Div64(hi, lo, 1<<in.pow2)
	}
	return time.Unix(int64(sec)+in.offset, int64(nsec)).UTC()
}

func (p *PcapngReader) enhancedPacket(body []byte) (Packet, error) {
	if len(body) < 20 {
		return Packet{}, formatErr("enhanced packet block of %d bytes", len(body))
	}
	id := p.order.Uint32(body[:4])
	if uint64(id) >= uint64(len(p.ifaces)) {
		return Packet{}, formatErr("packet on undeclared interface %d", id)
	}
	in := p.ifaces[id]
	ts := uint64(p.order.Uint32(body[4:8]))<<32 | uint64(p.order.Uint32(body[8:12]))
	capLen, origLen := p.order.Uint32(body[12:16]), p.order.Uint32(body[16:20])
	rest := body[20:]
	if uint64(capLen) > uint64(len(rest)) {
		return Packet{}, formatErr("captured length %d overruns the block", capLen)
	}
	pkt := Packet{
		Interface:      int(id),
		LinkType:       in.linkType,
		Time:           in.time(ts),
		Data:           rest[:capLen],
		OriginalLength: int(origLen),
	}
	padded := (int(capLen) + 3) &^ 3
	if padded > len(rest) {
		padded = len(rest)
	}
	err := p.options(rest[padded:], func(code uint16, v []byte) error {
		if code == optComment {
			pkt.Comments = append(pkt.Comments, string(v))
		}
		return nil
	})
	return pkt, err
}

func (p *PcapngReader) simplePacket(body []byte) (Packet, error) {
	if len(body) < 4 {
		return Packet{}, formatErr("simple packet block of %d bytes", len(body))
	}
	if len(p.ifaces) == 0 {
		return Packet{}, formatErr("simple packet before any interface")
	}
	orig := p.order.Uint32(body[:4])
	data := body[4:]
	if uint64(orig) < uint64(len(data)) {
		data = data[:orig] // the rest is padding
	}
	return Packet{LinkType: p.ifaces[0].linkType, Data: data, OriginalLength: int(orig)}, nil
}

// PcapngWriter writes one section with one interface, little-endian, with
// nanosecond timestamps.
type PcapngWriter struct {
	w   io.Writer
	buf []byte
}

// NewPcapngWriter writes the section header and the interface description
// for linkType, and returns a writer of its packets.
func NewPcapngWriter(w io.Writer, linkType LinkType, ifName string) (*PcapngWriter, error) {
	pw := &PcapngWriter{w: w}
	le := binary.LittleEndian

	shb := le.AppendUint32(nil, byteOrderMagic)
	shb = le.AppendUint16(shb, 1)
	shb = le.AppendUint16(shb, 0)
	shb = le.AppendUint64(shb, ^uint64(0)) // section length unknown
	shb = appendOption(shb, optSHBUserAppl, []byte("spdlab"))
	shb = appendOption(shb, optEndOfOpt, nil)
	if err := pw.writeBlock(BlockSHB, shb); err != nil {
		return nil, err
	}

	idb := le.AppendUint16(nil, uint16(linkType))
	idb = le.AppendUint16(idb, 0)
	idb = le.AppendUint32(idb, 0) // no snapshot limit
	if ifName != "" {
		idb = appendOption(idb, optIfName, []byte(ifName))
	}
	idb = appendOption(idb, optIfTSResol, []byte{9})
	idb = appendOption(idb, optEndOfOpt, nil)
	if err := pw.writeBlock(BlockIDB, idb); err != nil {
		return nil, err
	}
	return pw, nil
}

// WritePacket writes one Enhanced Packet Block on interface 0.
func (pw *PcapngWriter) WritePacket(t time.Time, data []byte, comments ...string) error {
	le := binary.LittleEndian
	ns := uint64(t.UnixNano())
	body := le.AppendUint32(pw.buf[:0], 0)
	body = le.AppendUint32(body, uint32(ns>>32))
	body = le.AppendUint32(body, uint32(ns))
	body = le.AppendUint32(body, uint32(len(data)))
	body = le.AppendUint32(body, uint32(len(data)))
	body = append(body, data...)
	body = pad4(body)
	if len(comments) > 0 {
		for _, c := range comments {
			if !utf8.ValidString(c) || len(c) > 0xFFFF {
				return fmt.Errorf("trace: packet comment is not UTF-8 of at most 65535 bytes")
			}
			body = appendOption(body, optComment, []byte(c))
		}
		body = appendOption(body, optEndOfOpt, nil)
	}
	pw.buf = body
	return pw.writeBlock(BlockEPB, body)
}

func (pw *PcapngWriter) writeBlock(t BlockType, body []byte) error {
	le := binary.LittleEndian
	total := uint32(12 + len(body))
	b := make([]byte, 0, total)
	b = le.AppendUint32(b, uint32(t))
	b = le.AppendUint32(b, total)
	b = append(b, body...)
	b = le.AppendUint32(b, total)
	_, err := pw.w.Write(b)
	return err
}

func appendOption(b []byte, code uint16, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, code)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	return pad4(b)
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
