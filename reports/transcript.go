package reports

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/spdlab/spdlab/reference"
	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
)

// Step is one decoded line of a case's transcript, as the suite records
// it (rigs/link/linktest Exchange.String):
//
//	80600000 1A DF28... -> 61...9000      an exchange: command -> response, hex
//	00A40400 08 F0...   -> error TEXT     an exchange the link failed
//	reset-cold          -> 3B...          a reset or power-on with its ATR
//	power-off           -> error TEXT
type Step struct {
	Raw string `json:"raw"`
	// Op is "exchange" or the link operation (reset-cold, power-on, ...).
	Op string `json:"op"`
	// Name is the command's name in SPEC.md ("PAY"), Header its CLA INS
	// P1 P2 in hex.
	Name    string `json:"name,omitempty"`
	Header  string `json:"header,omitempty"`
	Data    string `json:"data,omitempty"`     // command data, hex
	DataTLV string `json:"data_tlv,omitempty"` // command data as a TLV tree, when it is one
	Ne      int    `json:"ne,omitempty"`
	// SW is the status word in hex, SWMeaning what it means, OK whether
	// it is 9000 or 61xx.
	SW        string `json:"sw,omitempty"`
	SWMeaning string `json:"sw_meaning,omitempty"`
	OK        bool   `json:"ok"`
	Resp      string `json:"resp,omitempty"`     // response data, hex
	RespTLV   string `json:"resp_tlv,omitempty"` // response data as a TLV tree, when it is one
	ATR       string `json:"atr,omitempty"`
	Error     string `json:"error,omitempty"`
}

// tagNames is SPEC.md's tag names, read from its tables on first use.
var tagNames = sync.OnceValue(reference.TagNames)

// DecodeTranscript decodes a transcript report entry, one Step per
// non-empty line. A line it cannot decode is kept whole in Raw with
// Error saying why.
func DecodeTranscript(text string) []Step {
	var steps []Step
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		steps = append(steps, decodeStep(l))
	}
	return steps
}

// transcripts is a run's decoded transcripts: [i][j] is the steps of
// transcript j of case i. The page, its round-trip times and the JUnit
// XML all show them; Write decodes them once for the three.
type transcripts [][][]Step

// decodeTranscripts decodes every transcript of every case of c.
func (c Certificate) decodeTranscripts() transcripts {
	ts := make(transcripts, len(c.Cases))
	for i, cs := range c.Cases {
		if len(cs.Transcript) == 0 {
			continue
		}
		ts[i] = make([][]Step, len(cs.Transcript))
		for j, t := range cs.Transcript {
			ts[i][j] = DecodeTranscript(t)
		}
	}
	return ts
}

func decodeStep(l string) Step {
	s := Step{Raw: l}
	left, right, ok := strings.Cut(l, " -> ")
	if !ok {
		left, right, ok = strings.Cut(l, " ->")
	}
	if !ok {
		s.Op, s.Error = "?", "not a transcript line"
		return s
	}
	right = strings.TrimSpace(right)
	errText, failed := strings.CutPrefix(right, "error ")
	if failed {
		s.Error = errText
	}
	cmd, err := hex.DecodeString(left)
	if err != nil || len(left) == 0 {
		// A link operation: reset-warm, reset-cold, power-off, power-on.
		s.Op = left
		if !failed && right != "" {
			s.ATR = right
		}
		return s
	}
	s.Op = "exchange"
	c, err := apdu.ParseCommand(cmd)
	if err != nil {
		s.Name, s.Data = "malformed command", left
	} else {
		s.Name = spd.INS(c.INS).String()
		if c.CLA&0x80 == 0 && c.CLA != 0x00 {
			s.Name += fmt.Sprintf(" (CLA %02X)", c.CLA)
		}
		s.Header = spacedHex(c.CLA, c.INS, c.P1, c.P2)
		s.Data = upperHex(c.Data)
		s.DataTLV = tlvTree(c.Data)
		s.Ne = c.Ne
	}
	if failed {
		return s
	}
	rb, err := hex.DecodeString(right)
	if err != nil {
		s.Error = "response is not hex: " + right
		return s
	}
	r, err := apdu.ParseResponse(rb)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.SW = upperHex([]byte{byte(r.SW >> 8), byte(r.SW)})
	s.SWMeaning = swMeaning(r.SW)
	s.OK = r.SW == apdu.SWOK || r.SW.SW1() == 0x61
	s.Resp = upperHex(r.Data)
	s.RespTLV = tlvTree(r.Data)
	return s
}

// swMeaning is the ISO 7816-4 meaning of sw, without its hex.
func swMeaning(sw apdu.SW) string {
	full := sw.String()
	if i := strings.IndexByte(full, '('); i >= 0 {
		return strings.TrimSuffix(full[i+1:], ")")
	}
	return "no meaning defined"
}

// tlvTree renders b as a BER-TLV tree with SPEC.md's tag names, or "" when
// b is empty or not wholly TLV.
func tlvTree(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	list, err := tlv.Parse(b)
	if err != nil || len(list) == 0 {
		return ""
	}
	var sb strings.Builder
	for _, o := range list {
		writeTLV(&sb, o, 0)
	}
	return strings.TrimSuffix(sb.String(), "\n")
}

func writeTLV(sb *strings.Builder, o tlv.TLV, depth int) {
	for range depth {
		sb.WriteString("  ")
	}
	tag := o.Tag.String()
	name := tagNames()[tag]
	sb.WriteString(tag)
	if o.Tag.Constructed() && o.Children != nil {
		if name != "" {
			sb.WriteString("  " + name)
		}
		sb.WriteByte('\n')
		for _, c := range o.Children {
			writeTLV(sb, c, depth+1)
		}
		return
	}
	// TAG [LEN] VALUE, the value in upper-case hex cut to 64 digits.
	sb.WriteString(" [")
	sb.WriteString(strconv.Itoa(len(o.Value)))
	sb.WriteString("] ")
	v := o.Value
	if len(v) > 32 {
		v = v[:32]
	}
	var buf [64]byte
	sb.Write(hexUpper(buf[:0], v))
	if len(o.Value) > 32 {
		sb.WriteString("... (" + strconv.Itoa(len(o.Value)) + " bytes)")
	}
	if name != "" {
		sb.WriteString("  " + name)
	}
	sb.WriteByte('\n')
}

const upperDigits = "0123456789ABCDEF"

// hexUpper appends b to dst in upper-case hex.
func hexUpper(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, upperDigits[c>>4], upperDigits[c&0x0F])
	}
	return dst
}

// upperHex is b in upper-case hex.
func upperHex(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return string(hexUpper(make([]byte, 0, 2*len(b)), b))
}

// spacedHex is bs in upper-case hex, a space between bytes: "80 60 00 00".
func spacedHex(bs ...byte) string {
	b := make([]byte, 0, 3*len(bs))
	for i := range bs {
		if i > 0 {
			b = append(b, ' ')
		}
		b = hexUpper(b, bs[i:i+1])
	}
	return string(b)
}

// String is the step on one line of text: "PAY 80 60 00 00 [27 bytes] ->
// 6982 security status not satisfied [0 bytes]".
func (s Step) String() string {
	switch {
	case s.Op != "exchange" && s.Error != "":
		return s.Op + " -> error " + s.Error
	case s.Op != "exchange" && s.ATR != "":
		return s.Op + " -> ATR " + s.ATR
	case s.Op != "exchange":
		return s.Raw
	}
	l := fmt.Sprintf("%s %s", s.Name, s.Header)
	if s.Data != "" {
		l += " " + s.Data
	}
	switch {
	case s.Error != "":
		return l + " -> error " + s.Error
	case s.Resp != "":
		return l + " -> " + s.Resp + " " + s.SW + " " + s.SWMeaning
	}
	return l + " -> " + s.SW + " " + s.SWMeaning
}
