package sim

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReadMessage(t *testing.T) {
	tests := []struct {
		name    string
		stream  []byte
		limit   int
		want    []byte
		wantErr error
		rest    int // bytes left unread in the stream afterwards
	}{
		{"control", []byte{0x00, 0x01, 0x04}, MaxMessage, []byte{0x04}, nil, 0},
		{"command", []byte{0x00, 0x04, 0x00, 0xA4, 0x04, 0x00}, MaxMessage, []byte{0x00, 0xA4, 0x04, 0x00}, nil, 0},
		{"leaves the next frame", []byte{0x00, 0x01, 0x01, 0x00, 0x01, 0x04}, MaxMessage, []byte{0x01}, nil, 3},
		{"empty frame", []byte{0x00, 0x00, 0x00, 0x01, 0x04}, MaxMessage, nil, ErrEmptyMessage, 3},
		{"too long is drained", []byte{0x00, 0x05, 1, 2, 3, 4, 5, 0x00, 0x01, 0x04}, 4, nil, ErrMessageTooLong, 3},
		{"at the limit", []byte{0x00, 0x04, 1, 2, 3, 4}, 4, []byte{1, 2, 3, 4}, nil, 0},
		{"end of stream", nil, MaxMessage, nil, io.EOF, 0},
		{"half a length", []byte{0x00}, MaxMessage, nil, io.ErrUnexpectedEOF, 0},
		{"truncated body", []byte{0x00, 0x04, 0x00, 0xA4}, MaxMessage, nil, io.ErrUnexpectedEOF, 0},
		{"truncated oversize body", []byte{0x00, 0x09, 1, 2}, 4, nil, io.ErrUnexpectedEOF, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader(tt.stream)
			got, err := ReadMessage(r, nil, tt.limit)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("message = % X, want % X", got, tt.want)
			}
			if r.Len() != tt.rest {
				t.Fatalf("%d bytes left, want %d", r.Len(), tt.rest)
			}
			var fe *FrameError
			if errors.As(err, &fe) && fe.Error() == "" {
				t.Fatal("FrameError without text")
			}
		})
	}
}

func TestReadMessageReusesBuffer(t *testing.T) {
	buf := make([]byte, 0, 16)
	got, err := ReadMessage(bytes.NewReader([]byte{0x00, 0x02, 0x67, 0x00}), buf, MaxMessage)
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &buf[:1][0] {
		t.Fatal("ReadMessage allocated although the buffer was large enough")
	}
}

func TestAppendMessage(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		want []byte
		err  error
	}{
		{"status word", []byte{0x90, 0x00}, []byte{0x00, 0x02, 0x90, 0x00}, nil},
		{"ATR length", make([]byte, 17), append([]byte{0x00, 0x11}, make([]byte, 17)...), nil},
		{"largest", make([]byte, MaxMessage), append([]byte{0xFF, 0xFF}, make([]byte, MaxMessage)...), nil},
		{"too long", make([]byte, MaxMessage+1), nil, ErrMessageTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendMessage(nil, tt.msg)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("frame = % X..., want % X...", head(got), head(tt.want))
			}
			if err == nil {
				back, err := ReadMessage(bytes.NewReader(got), nil, MaxMessage)
				if err != nil || !bytes.Equal(back, tt.msg) {
					t.Fatalf("round trip: %v", err)
				}
			}
		})
	}
}

func TestControlString(t *testing.T) {
	tests := []struct {
		c     Control
		want  string
		known bool
	}{
		{CtrlPowerOff, "power off", true},
		{CtrlPowerOn, "power on", true},
		{CtrlReset, "reset", true},
		{CtrlATR, "get ATR", true},
		{0x03, "unknown control 03", false},
		{0xFF, "unknown control FF", false},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("Control(%02X).String() = %q, want %q", byte(tt.c), got, tt.want)
		}
		if got := tt.c.Known(); got != tt.known {
			t.Errorf("Control(%02X).Known() = %v", byte(tt.c), got)
		}
	}
}

// FuzzReadMessage reads frames from arbitrary bytes until the stream ends:
// never a panic, every message within the limit and never empty, and every
// error either a FrameError (stream still in step) or the end of the
// stream.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0x04}, uint16(MaxMessage))
	f.Add([]byte{0x00, 0x00, 0x00, 0x05, 0x00, 0xA4, 0x04, 0x00, 0x00}, uint16(8))
	f.Add([]byte{0xFF, 0xFF, 0x01}, uint16(16))
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16) {
		r := bytes.NewReader(stream)
		var buf []byte
		for range len(stream) + 1 {
			msg, err := ReadMessage(r, buf, int(limit))
			var fe *FrameError
			switch {
			case errors.As(err, &fe):
				if fe.Length > 0 && fe.Length <= int(limit) {
					t.Fatalf("frame of %d bytes refused under limit %d", fe.Length, limit)
				}
				continue
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				return
			case err != nil:
				t.Fatalf("unexpected error %v", err)
			}
			if len(msg) == 0 || len(msg) > int(limit) {
				t.Fatalf("message of %d bytes under limit %d", len(msg), limit)
			}
			buf = msg[:0]
		}
		t.Fatal("more frames than bytes")
	})
}
