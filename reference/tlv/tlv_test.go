package tlv

import (
	"bytes"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseEncodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		wire string
		want []TLV
	}{
		{"empty", "", []TLV{}},
		{"primitive one-byte tag", "85 05 53564C3031", []TLV{{Tag: 0x85, Value: []byte("SVL01")}}},
		{"two-byte tag", "9F36 02 0001", []TLV{{Tag: 0x9F36, Value: []byte{0, 1}}}},
		{"three-byte tag", "DF8101 01 07", []TLV{{Tag: 0xDF8101, Value: []byte{7}}}},
		{"empty value", "DF01 00", []TLV{{Tag: 0xDF01, Value: []byte{}}}},
		{"constructed", "61 07 DF0101 01 4F 01 A0", []TLV{{Tag: 0x61, Value: unhex(t, "DF0101014F01A0"),
			Children: []TLV{{Tag: 0xDF01, Value: []byte{1}}, {Tag: 0x4F, Value: []byte{0xA0}}}}}},
		{"nested constructed", "70 04 61 02 85 00", []TLV{{Tag: 0x70, Value: unhex(t, "61028500"),
			Children: []TLV{{Tag: 0x61, Value: unhex(t, "8500"), Children: []TLV{{Tag: 0x85, Value: []byte{}}}}}}}},
		{"empty constructed", "61 00", []TLV{{Tag: 0x61, Value: []byte{}, Children: []TLV{}}}},
		{"sequence", "85 01 41 9F45 01 42", []TLV{{Tag: 0x85, Value: []byte("A")}, {Tag: 0x9F45, Value: []byte("B")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := unhex(t, tt.wire)
			got, err := Parse(wire)
			if err != nil {
				t.Fatal(err)
			}
			if !equalList(got, tt.want) {
				t.Fatalf("Parse = %v, want %v", got, tt.want)
			}
			back, err := Encode(got...)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, wire) {
				t.Fatalf("Encode = % X, want % X", back, wire)
			}
		})
	}
}

func equalList(a, b []TLV) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Tag != b[i].Tag || !bytes.Equal(a[i].Value, b[i].Value) || !equalList(a[i].Children, b[i].Children) {
			return false
		}
	}
	return true
}

func TestLengthForms(t *testing.T) {
	for _, n := range []int{0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x12345} {
		value := bytes.Repeat([]byte{0x5A}, n)
		enc, err := Encode(TLV{Tag: 0xDF04, Value: value})
		if err != nil {
			t.Fatal(err)
		}
		wantLen := map[bool]int{true: 1}[n < 0x80]
		switch {
		case n >= 0x10000:
			wantLen = 4
		case n >= 0x100:
			wantLen = 3
		case n >= 0x80:
			wantLen = 2
		}
		if got := len(enc) - 2 - n; got != wantLen {
			t.Fatalf("length %d: %d length bytes, want %d", n, got, wantLen)
		}
		o, err := ParseOne(enc)
		if err != nil {
			t.Fatalf("length %d: %v", n, err)
		}
		if !bytes.Equal(o.Value, value) {
			t.Fatalf("length %d: value differs", n)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name, wire, want string
	}{
		{"tag truncated", "9F", "tag 9F truncated"},
		{"three-byte tag truncated", "DF81", "tag DF81 truncated"},
		{"tag too long", "DF818101 00", "longer than 3 bytes"},
		{"leading zero tag byte", "9F80 01 00", "leading zero"},
		{"padding 00", "00 85 00", "padding"},
		{"padding FF", "85 00 FF", "padding"},
		{"no length", "85", "length truncated"},
		{"indefinite", "61 80 85 00 00 00", "indefinite length"},
		{"four length bytes", "85 84 00 00 00 01 00", "more than 3 length bytes"},
		{"overlong 81", "85 81 05 0102030405", "overlong length"},
		{"overlong 82", "85 82 0080" + strings.Repeat("00", 0x80), "overlong length"},
		{"overlong 83", "85 83 00FFFF", "overlong length"},
		{"long length truncated", "85 82 01", "needs 2 more bytes"},
		{"value truncated", "85 05 0102", "value truncated: length 5, 2 bytes left"},
		{"child truncated", "61 03 DF01 05", "tag DF01 at offset 2: value truncated"},
		{"child garbage", "61 03 85 00 00", "offset 4: padding"},
		{"second object truncated", "85 00 9F45 02 01", "tag 9F45 at offset 2: value truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(unhex(t, tt.wire))
			if err == nil {
				t.Fatalf("Parse(%s) succeeded", tt.wire)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a *SyntaxError", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "tlv: ") {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestNestingLimit(t *testing.T) {
	wire := []byte{}
	for range MaxDepth + 1 {
		wire = append(append([]byte{0x61}, appendLength(nil, len(wire))...), wire...)
	}
	if _, err := Parse(wire); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("Parse of %d levels: %v", MaxDepth+1, err)
	}
	if _, err := Parse(wire[2:]); err != nil {
		t.Fatalf("Parse of %d levels: %v", MaxDepth, err)
	}
}

func TestParseOneTrailing(t *testing.T) {
	_, err := ParseOne(unhex(t, "85 01 41 9F"))
	if err == nil || !strings.Contains(err.Error(), "1 trailing bytes after tag 85") {
		t.Fatalf("ParseOne: %v", err)
	}
	o, err := ParseOne(unhex(t, "85 01 41"))
	if err != nil || string(o.Value) != "A" {
		t.Fatalf("ParseOne = %v, %v", o, err)
	}
}

func TestNext(t *testing.T) {
	wire := unhex(t, "85 01 41 61 03 DF01 00 9F45 01 42")
	var tags []Tag
	offsets := []int{}
	for rest := wire; len(rest) > 0; {
		offsets = append(offsets, len(wire)-len(rest))
		o, r, err := Next(rest)
		if err != nil {
			t.Fatal(err)
		}
		tags = append(tags, o.Tag)
		rest = r
	}
	if len(tags) != 3 || tags[0] != 0x85 || tags[1] != 0x61 || tags[2] != 0x9F45 {
		t.Fatalf("tags %v", tags)
	}
	if offsets[2] != 8 {
		t.Fatalf("9F45 at offset %d, want 8", offsets[2])
	}
}

func TestTag(t *testing.T) {
	tests := []struct {
		tag         Tag
		str         string
		constructed bool
		class       Class
		valid       bool
	}{
		{0x85, "85", false, ClassContext, true},
		{0x61, "61", true, ClassApplication, true},
		{0x9F45, "9F45", false, ClassContext, true},
		{0xDF01, "DF01", false, ClassPrivate, true},
		{0xBF0C, "BF0C", true, ClassContext, true},
		{0x04, "04", false, ClassUniversal, true},
		{0x9F, "9F", false, ClassContext, false},
		{0x9F8001, "9F8001", false, ClassContext, false},
		{0x8501, "8501", false, ClassContext, false},
		{0xDF818101, "DF818101", false, ClassPrivate, false},
		{0, "00", false, ClassUniversal, false},
	}
	for _, tt := range tests {
		if tt.tag.String() != tt.str || tt.tag.Constructed() != tt.constructed || tt.tag.Class() != tt.class {
			t.Errorf("%s: String %q Constructed %v Class %v", tt.str, tt.tag.String(), tt.tag.Constructed(), tt.tag.Class())
		}
		if err := tt.tag.Valid(); (err == nil) != tt.valid {
			t.Errorf("%s: Valid() = %v", tt.str, err)
		}
	}
}

func TestFind(t *testing.T) {
	list, err := Parse(unhex(t, "85 01 41 61 09 DF01 01 02 70 03 5A 01 09 9F45 01 42"))
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := Find(list, 0x5A); !ok || o.Value[0] != 9 {
		t.Fatalf("Find 5A = %v %v", o, ok)
	}
	if o, ok := Find(list, 0x9F45); !ok || string(o.Value) != "B" {
		t.Fatalf("Find 9F45 = %v %v", o, ok)
	}
	if _, ok := Find(list, 0x9F46); ok {
		t.Fatal("Find 9F46 found something")
	}
	if o, ok := FindPath(list, 0x61, 0xDF01); !ok || o.Value[0] != 2 {
		t.Fatalf("FindPath 61/DF01 = %v %v", o, ok)
	}
	if _, ok := FindPath(list, 0x61, 0x5A); ok {
		t.Fatal("FindPath 61/5A found a grandchild")
	}
	if o, ok := FindPath(list, 0x61, 0x70, 0x5A); !ok || o.Value[0] != 9 {
		t.Fatalf("FindPath 61/70/5A = %v %v", o, ok)
	}
	if _, ok := FindPath(list); ok {
		t.Fatal("FindPath with no path found something")
	}
	app, _ := Find(list, 0x61)
	if c, ok := app.Child(0xDF01); !ok || c.Value[0] != 2 {
		t.Fatalf("Child DF01 = %v %v", c, ok)
	}
}

func TestBuilder(t *testing.T) {
	var b Builder
	b.AddString(0x85, "SVL01")
	b.AddConstructed(0x61, func(b *Builder) {
		b.AddUint(0xDF01, 1, 2)
		b.AddUint(0xDF04, 8, 1000)
		b.AddConstructed(0xBF0B, func(b *Builder) { b.Add(0xDF0C, []byte{1}) })
	})
	b.AddTLV(TLV{Tag: 0x9F45, Value: []byte{0xAA}})
	got, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "85 05 53564C3031 61 16 DF01 01 02 DF04 08 00000000000003E8 BF0B 04 DF0C 01 01 9F45 01 AA")
	if !bytes.Equal(got, want) {
		t.Fatalf("Bytes = % X\nwant    % X", got, want)
	}
	if b.Len() != len(want) {
		t.Fatalf("Len = %d", b.Len())
	}
}

func TestBuilderErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(*Builder)
		want  string
	}{
		{"bad tag", func(b *Builder) { b.Add(0x9F, nil) }, "tag 9F truncated"},
		{"uint overflow", func(b *Builder) { b.AddUint(0xDF06, 2, 0x10000) }, "does not fit in 2 bytes"},
		{"uint size", func(b *Builder) { b.AddUint(0xDF06, 9, 1) }, "size 9"},
		{"primitive constructed", func(b *Builder) { b.AddConstructed(0x85, func(*Builder) {}) }, "primitive, not constructed"},
		{"error inside", func(b *Builder) {
			b.AddConstructed(0x61, func(b *Builder) { b.AddUint(0xDF01, 1, 300) })
		}, "does not fit"},
		{"sticky", func(b *Builder) { b.Add(0, nil); b.AddString(0x85, "x") }, "padding"},
		{"children on primitive", func(b *Builder) { b.AddTLV(TLV{Tag: 0x85, Children: []TLV{}}) }, "primitive but has children"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Builder
			tt.build(&b)
			if _, err := b.Bytes(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Bytes error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	list, err := Parse(unhex(t, "61 03 85 01 41"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := list[0].String(), "61 {\n  85 [1] 41\n}"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte{0x85, 0x05, 'S', 'V', 'L', '0', '1'})
	f.Add([]byte{0x61, 0x03, 0xDF, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := Parse(b)
		if err != nil {
			if _, err2 := ParseOne(b); err2 == nil {
				t.Fatalf("ParseOne accepted what Parse rejected: %v", err)
			}
			return
		}
		// Strict decoding means the encoding is canonical: it round-trips.
		back, err := Encode(list...)
		if err != nil {
			t.Fatalf("Encode of parsed input: %v", err)
		}
		if !bytes.Equal(back, b) {
			t.Fatalf("round trip differs:\n in  % X\n out % X", b, back)
		}
		for _, o := range list {
			if _, ok := Find(list, o.Tag); !ok {
				t.Fatalf("Find(%s) missed a top-level object", o.Tag)
			}
		}
	})
}

func FuzzParseTags(f *testing.F) {
	f.Add([]byte{0xDF, 0x04, 0x9F, 0x36, 0x5A})
	f.Add([]byte{0x5F, 0x81, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		tags, err := ParseTags(b)
		if err != nil {
			return
		}
		// Each tag is well formed and the list re-encodes to b.
		var back []byte
		for _, tag := range tags {
			if err := tag.Valid(); err != nil {
				t.Fatalf("ParseTags gave %s: %v", tag, err)
			}
			back = append(back, tag.Bytes()...)
		}
		if !bytes.Equal(back, b) {
			t.Fatalf("tags %v re-encode to % X, parsed from % X", tags, back, b)
		}
	})
}

func TestParseTags(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want []Tag
		ok   bool
	}{
		{nil, nil, true},
		{[]byte{0xDF, 0x04, 0x9F, 0x36, 0x5A}, []Tag{0xDF04, 0x9F36, 0x5A}, true},
		{[]byte{0x5F, 0x81, 0x01}, []Tag{0x5F8101}, true},
		{[]byte{0xDF}, nil, false},
		{[]byte{0xDF, 0x81, 0x81, 0x01}, nil, false},
		{[]byte{0x5A, 0x00}, nil, false},
		{[]byte{0xFF}, nil, false},
		{[]byte{0x5F, 0x80, 0x01}, nil, false},
	} {
		got, err := ParseTags(c.in)
		if (err == nil) != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("ParseTags(% X) = %v, %v; want %v (ok %v)", c.in, got, err, c.want, c.ok)
		}
	}
}
