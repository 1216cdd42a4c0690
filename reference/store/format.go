package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
)

// On-disk format of a File store.
//
// A File store at PATH is two files: the snapshot PATH, rewritten whole and
// replaced by atomic rename, and the log PATH.log, to which every persistent
// write appends one record; PATH.lock, empty, carries the flock that keeps
// a second process out. Snapshot and log are a magic string followed by
// records, each framed the same way:
//
//	offset  size  field
//	0       4     body length L, big-endian, 1 <= L <= 2^31
//	4       4     CRC-32C (Castagnoli) of the body
//	8       L     body: a type byte, then the fields of that type
//
// Snapshot file PATH:
//
//	offset  size  field
//	0       8     magic "SPDSNAP1"
//	8       ...   one record of type 'S':
//	              'S' | generation (8 bytes, big-endian) | count (uvarint) |
//	              count x ( key length (uvarint) | key | value length (uvarint) | value )
//	              keys strictly ascending, nothing after the record
//
// Log file PATH.log:
//
//	offset  size  field
//	0       8     magic "SPDLOG01"
//	8       ...   record 'B' | base generation (8 bytes): the snapshot this log continues
//	...     ...   zero or more records, one per persistent write:
//	              'P' change   Put outside a transaction          (fsync)
//	              'J' change   journal entry
//	              'C' count    commit mark, count = journal entries (uvarint)  (fsync)
//	              'A' change   journal entry applied: the next entry in order, or the
//	                           first again (a roll-forward that was torn and restarted)
//	              'X'          journal cleared
//
// where change = flags (1 byte: 0 = put, 1 = delete) | key length (uvarint) |
// key | [value length (uvarint) | value, for a put]. Keys are 1 to
// MaxKeyLen bytes, values at most MaxValueLen.
//
// Reading: the snapshot must parse whole, or the store does not open. The
// log is replayed from its start; a record that is cut short or fails its
// CRC ends it, and the file is truncated there, when nothing whole follows
// it: that is where a crash stopped an append, and everything a call
// reported as done lies before it, because the calls that report
// durability ('P' and 'C') fsync after writing. A bad record with a whole,
// CRC-correct record anywhere after it is damage in the middle of the log:
// the store does not open, and the error names the byte offset (dropping
// the records after it would roll the device back, and a device rolled
// back reuses transaction counters). A missing log beside a snapshot that
// holds state (generation above 0, or any key) is damage too: only a store
// created and never written has a snapshot without a log. A record whose CRC is right but whose place in the
// sequence is wrong (an 'A' without a commit mark, say) is damage, not a
// torn append, and the store does not open. After the replay, a committed
// journal is rolled forward and an uncommitted one dropped (Recover).
//
// Compaction rewrites the snapshot with generation g+1: it writes
// PATH.tmp and a fresh PATH.log.tmp (base g+1), fsyncs both, renames
// PATH.tmp over PATH (the commit point), then PATH.log.tmp over PATH.log,
// fsyncing the directory after each rename. A log whose base generation is
// below the snapshot's is stale (the crash came between the two renames)
// and is replaced by an empty one; a base above the snapshot's is damage.
const (
	snapshotMagic = "SPDSNAP1"
	logMagic      = "SPDLOG01"
	recordHeader  = 8
	maxRecordLen  = 1 << 31
)

const (
	recSnapshot = 'S'
	recBase     = 'B'
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTornRecord marks a record cut short or failing its CRC: the end of
// what an interrupted append left.
var errTornRecord = errors.New("store: torn record")

// appendRecord frames body onto dst.
func appendRecord(dst, body []byte) []byte {
	var h [recordHeader]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(len(body)))
	binary.BigEndian.PutUint32(h[4:8], crc32.Checksum(body, castagnoli))
	dst = append(dst, h[:]...)
	return append(dst, body...)
}

// nextRecord reads one framed record from b, returning its body and the
// bytes after it, or errTornRecord.
func nextRecord(b []byte) (body, rest []byte, err error) {
	if len(b) < recordHeader {
		return nil, nil, errTornRecord
	}
	n := binary.BigEndian.Uint32(b[0:4])
	if n == 0 || uint64(n) > maxRecordLen || uint64(n) > uint64(len(b)-recordHeader) {
		return nil, nil, errTornRecord
	}
	body = b[recordHeader : recordHeader+int(n)]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[4:8]) {
		return nil, nil, errTornRecord
	}
	return body, b[recordHeader+int(n):], nil
}

// reader decodes the fields of one record body.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, a...)
	}
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail("record ends early")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uint64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail("record ends early")
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad length field")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes reads a uvarint length and that many bytes, at most max.
func (r *reader) bytes(max int, what string) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) {
		r.fail("%s of %d bytes exceeds %d", what, n, max)
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("%s runs past its record", what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) end() {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d stray bytes at the end of a record", len(r.b))
	}
}

func appendUvarintBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendChange(dst []byte, c change) []byte {
	if c.Delete {
		dst = append(dst, 1)
		return appendUvarintBytes(dst, []byte(c.Key))
	}
	dst = append(dst, 0)
	dst = appendUvarintBytes(dst, []byte(c.Key))
	return appendUvarintBytes(dst, c.Value)
}

func (r *reader) change() change {
	var c change
	flags := r.byte()
	key := r.bytes(MaxKeyLen, "key")
	if r.err == nil && len(key) == 0 {
		r.fail("empty key")
	}
	c.Key = string(key)
	switch flags {
	case 0:
		c.Value = append([]byte{}, r.bytes(MaxValueLen, "value")...)
	case 1:
		c.Delete = true
	default:
		r.fail("unknown change flags %#02x", flags)
	}
	return c
}

// logRecord encodes the body of the log record for one persistent write.
func logRecord(k writeKind, c change, journalLen int) []byte {
	body := []byte{byte(k)}
	switch k {
	case writePut, writeJournal, writeApply:
		body = appendChange(body, c)
	case writeCommit:
		body = binary.AppendUvarint(body, uint64(journalLen))
	}
	return body
}

// encodeSnapshot returns the snapshot file of state at generation gen.
func encodeSnapshot(gen uint64, state map[string][]byte) []byte {
	keys := make([]string, 0, len(state))
	size := 0
	for k, v := range state {
		keys = append(keys, k)
		size += len(k) + len(v) + 2*binary.MaxVarintLen32
	}
	sort.Strings(keys)
	body := make([]byte, 0, 1+8+binary.MaxVarintLen64+size)
	body = append(body, recSnapshot)
	body = binary.BigEndian.AppendUint64(body, gen)
	body = binary.AppendUvarint(body, uint64(len(keys)))
	for _, k := range keys {
		body = appendUvarintBytes(body, []byte(k))
		body = appendUvarintBytes(body, state[k])
	}
	return appendRecord([]byte(snapshotMagic), body)
}

// parseSnapshot reads a snapshot file.
func parseSnapshot(b []byte) (gen uint64, state map[string][]byte, err error) {
	if !bytes.HasPrefix(b, []byte(snapshotMagic)) {
		return 0, nil, errors.New("store: snapshot: not a snapshot file (bad magic)")
	}
	body, rest, err := nextRecord(b[len(snapshotMagic):])
	if err != nil {
		return 0, nil, errors.New("store: snapshot: record damaged (length or CRC)")
	}
	if len(rest) != 0 {
		return 0, nil, fmt.Errorf("store: snapshot: %d stray bytes after the record", len(rest))
	}
	r := &reader{b: body}
	if t := r.byte(); r.err == nil && t != recSnapshot {
		return 0, nil, fmt.Errorf("store: snapshot: record type %q, want 'S'", t)
	}
	gen = r.uint64()
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b))/2 {
		r.fail("entry count %d larger than the record", n)
	}
	state = make(map[string][]byte, min(n, 1<<16))
	prev := ""
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := string(r.bytes(MaxKeyLen, "key"))
		v := r.bytes(MaxValueLen, "value")
		if r.err != nil {
			break
		}
		if k == "" {
			r.fail("empty key")
		} else if i > 0 && k <= prev {
			r.fail("keys out of order at %q", k)
		}
		prev = k
		state[k] = append([]byte{}, v...)
	}
	r.end()
	if r.err != nil {
		return 0, nil, fmt.Errorf("store: snapshot: %w", r.err)
	}
	return gen, state, nil
}

// encodeLogHeader returns the start of a fresh log continuing generation gen.
func encodeLogHeader(gen uint64) []byte {
	body := binary.BigEndian.AppendUint64([]byte{recBase}, gen)
	return appendRecord([]byte(logMagic), body)
}

// logReplay is what replaying a log gives.
type logReplay struct {
	base  uint64
	img   *image // snapshot state with the log applied, journal as left
	valid int    // bytes of the log up to the last good record
}

// parseLogHeader reads the base generation of a log.
func parseLogHeader(b []byte) (base uint64, rest []byte, err error) {
	if !bytes.HasPrefix(b, []byte(logMagic)) {
		return 0, nil, errors.New("store: log: not a log file (bad magic)")
	}
	body, rest, err := nextRecord(b[len(logMagic):])
	if err != nil {
		return 0, nil, errors.New("store: log: header record damaged")
	}
	r := &reader{b: body}
	if t := r.byte(); r.err == nil && t != recBase {
		return 0, nil, fmt.Errorf("store: log: first record type %q, want 'B'", t)
	}
	base = r.uint64()
	r.end()
	if r.err != nil {
		return 0, nil, fmt.Errorf("store: log: %w", r.err)
	}
	return base, rest, nil
}

// replayLog applies the records of log b (whose header was already checked)
// onto state, which it takes over.
func replayLog(b []byte, state map[string][]byte) (*logReplay, error) {
	base, rest, err := parseLogHeader(b)
	if err != nil {
		return nil, err
	}
	img := &image{state: state}
	applied := 0
	for {
		at := len(b) - len(rest)
		body, next, err := nextRecord(rest)
		if err != nil {
			if p, ok := frameAfter(rest); ok {
				return nil, fmt.Errorf("store: log record at byte %d is damaged (length or CRC-32C) but a whole record follows at byte %d; refusing to open rather than drop the records after it (restore the log from a backup)", at, at+p)
			}
			return &logReplay{base: base, img: img, valid: at}, nil
		}
		r := &reader{b: body}
		k := writeKind(r.byte())
		var c change
		switch k {
		case writePut, writeJournal, writeApply:
			c = r.change()
		case writeCommit:
			if n := r.uvarint(); r.err == nil && n != uint64(len(img.journal)) {
				r.fail("commit mark counts %d entries, journal has %d", n, len(img.journal))
			}
		case writeClear:
		default:
			r.fail("unknown record type %#02x", byte(k))
		}
		r.end()
		if r.err == nil {
			switch {
			case k == writePut && (len(img.journal) > 0 || img.committed):
				r.fail("put while the journal holds a transaction")
			case k == writeJournal && img.committed:
				r.fail("journal entry after the commit mark")
			case k == writeCommit && (img.committed || len(img.journal) == 0):
				r.fail("commit mark without a fresh journal")
			case k == writeApply && !img.committed:
				r.fail("apply before the commit mark")
			case k == writeApply && applied < len(img.journal) && sameChange(img.journal[applied], c):
			case k == writeApply && sameChange(img.journal[0], c):
				applied = 0 // a recovery starting over after a torn roll-forward
			case k == writeApply:
				r.fail("apply does not match the journal")
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("store: log record at byte %d: %w", at, r.err)
		}
		switch k {
		case writeApply:
			applied++
		case writeClear:
			applied = 0
		}
		img.do(k, c)
		rest = next
	}
}

// frameAfter looks for a whole, CRC-correct record of a known type after
// the first byte of b, where a record failed: an append cut short leaves
// nothing whole after it, so one found means the log is damaged in the
// middle, not torn at its end.
func frameAfter(b []byte) (int, bool) {
	for p := 1; p+recordHeader < len(b); p++ {
		body, _, err := nextRecord(b[p:])
		if err != nil {
			continue
		}
		switch writeKind(body[0]) {
		case writePut, writeJournal, writeCommit, writeApply, writeClear:
			return p, true
		}
	}
	return 0, false
}

func sameChange(a, b change) bool {
	return a.Key == b.Key && a.Delete == b.Delete && bytes.Equal(a.Value, b.Value)
}
