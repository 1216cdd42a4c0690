package sim

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"testing"
)

// echoCard answers every command with its own bytes and 9000, except INS
// EE (a tear) and INS E0 (an empty, faulty response).
type echoCard struct{ ons, offs, resets int }

func (c *echoCard) Process(cmd []byte) []byte {
	switch cmd[1] {
	case 0xEE:
		return nil
	case 0xE0:
		return []byte{}
	}
	return append(append([]byte(nil), cmd...), 0x90, 0x00)
}
func (c *echoCard) PowerOn()  { c.ons++ }
func (c *echoCard) PowerOff() { c.offs++ }
func (c *echoCard) Reset()    { c.resets++ }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// runSession feeds stream to one session of a fresh emulator and returns
// what the card side wrote back, as messages.
func runSession(t testing.TB, stream []byte, maxCommand int) ([][]byte, serveEnd, *Emulator) {
	e := New(&echoCard{}, Config{Logger: quiet(), MaxCommand: maxCommand})
	var out bytes.Buffer
	s := &session{e: e, r: bytes.NewReader(stream), w: &out}
	end := s.loop()
	var msgs [][]byte
	for out.Len() > 0 {
		m, err := ReadMessage(&out, nil, MaxMessage)
		if err != nil {
			t.Fatalf("emulator wrote a bad frame: %v", err)
		}
		msgs = append(msgs, append([]byte(nil), m...))
	}
	return msgs, end, e
}

func frames(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b, _ = AppendMessage(b, m)
	}
	return b
}

func TestSessionAnswers(t *testing.T) {
	atr := New(&echoCard{}, Config{}).ATR()
	stream := frames(
		[]byte{0x04},                   // ATR while unpowered
		[]byte{0x01},                   // power on
		[]byte{0x00, 0xA4, 0x04, 0x00}, // command
		[]byte{0x02},                   // warm reset
		[]byte{0x03},                   // unknown control: ignored
		[]byte{0x00, 0xA4},             // 2 bytes: no APDU
		[]byte{0x80, 0xE0, 0x00, 0x00}, // empty response from the card
		[]byte{0x00},                   // power off
	)
	stream = append(stream, 0x00, 0x00) // empty frame: ignored
	stream = append(stream, frames([]byte{0x04})...)
	msgs, end, e := runSession(t, stream, 0)
	want := [][]byte{
		atr,
		{0x00, 0xA4, 0x04, 0x00, 0x90, 0x00},
		{0x67, 0x00},
		{0x6F, 0x00},
		atr,
	}
	if len(msgs) != len(want) {
		t.Fatalf("answers % X, want % X", msgs, want)
	}
	for i := range want {
		if !bytes.Equal(msgs[i], want[i]) {
			t.Fatalf("answer %d = % X, want % X", i, msgs[i], want[i])
		}
	}
	if !errors.Is(end.err, io.EOF) {
		t.Fatalf("end = %+v, want the end of the stream", end)
	}
	st := e.Status()
	if st.BadFrames != 3 || st.Commands != 2 || st.PowerUps != 2 {
		t.Fatalf("status %+v: want 3 bad frames, 2 commands, 2 power-ups", st)
	}
	card := e.card.(*echoCard)
	if card.ons != 1 || card.resets != 1 || card.offs != 1 {
		t.Fatalf("card saw %+v", card)
	}
}

func TestSessionTooLongCommand(t *testing.T) {
	long := make([]byte, 20)
	long[1] = 0xA4
	msgs, _, e := runSession(t, frames([]byte{0x01}, long, []byte{0x00, 0xB0, 0x00, 0x00}), 16)
	if len(msgs) != 2 || !bytes.Equal(msgs[0], []byte{0x67, 0x00}) || !bytes.Equal(msgs[1], []byte{0x00, 0xB0, 0x00, 0x00, 0x90, 0x00}) {
		t.Fatalf("answers % X", msgs)
	}
	if e.Status().BadFrames != 1 {
		t.Fatalf("status %+v", e.Status())
	}
}

func TestSessionTearMakesCardMute(t *testing.T) {
	atr := New(&echoCard{}, Config{}).ATR()
	sel := []byte{0x00, 0xA4, 0x04, 0x00}
	// A tear, then a command, an ATR poll, a command again on the same
	// connection: the card answers no status word until it is powered.
	msgs, end, e := runSession(t, frames([]byte{0x01}, []byte{0x80, 0xEE, 0x00, 0x00}, sel, []byte{0x04}), 0)
	want := [][]byte{MuteAnswer, MuteAnswer, atr}
	if len(msgs) != len(want) || !errors.Is(end.err, io.EOF) {
		t.Fatalf("after a tear: answers % X, end %+v; want % X and the connection kept", msgs, end, want)
	}
	for i := range want {
		if !bytes.Equal(msgs[i], want[i]) {
			t.Fatalf("answer %d = % X, want % X", i, msgs[i], want[i])
		}
	}
	if st := e.Status(); !st.Mute || st.Tears != 1 || st.Powered || st.Unanswered != 2 || st.Commands != 0 {
		t.Fatalf("status %+v", st)
	}
	if ons := e.card.(*echoCard).ons; ons != 1 {
		t.Fatalf("card powered %d times, want 1", ons)
	}
	// A power on (pcscd's cold reset) ends the tear and runs the card's
	// recovery (PowerOn); the card answers again.
	var out bytes.Buffer
	s := &session{e: e, r: bytes.NewReader(frames([]byte{0x00}, []byte{0x01}, sel)), w: &out}
	s.loop()
	got, err := ReadMessage(&out, nil, MaxMessage)
	if st := e.Status(); err != nil || st.Mute || !bytes.Equal(got, append(sel, 0x90, 0x00)) {
		t.Fatalf("after power on: status %+v, answer % X (%v)", st, got, err)
	}
	if ons := e.card.(*echoCard).ons; ons != 2 {
		t.Fatalf("card powered %d times, want 2", ons)
	}
}

func TestSessionPowersUpOnFirstCommand(t *testing.T) {
	// pcscd sent no power control on this connection: the card is
	// activated as on insertion and answers.
	msgs, _, e := runSession(t, frames([]byte{0x00, 0xA4, 0x04, 0x00}), 0)
	if len(msgs) != 1 || e.card.(*echoCard).ons != 1 {
		t.Fatalf("answers % X, card %+v", msgs, e.card)
	}
	// After an explicit power off, a command finds the card unpowered:
	// no status word, and the card stays unpowered.
	msgs, _, e = runSession(t, frames([]byte{0x00}, []byte{0x00, 0xA4, 0x04, 0x00}), 0)
	if len(msgs) != 1 || !bytes.Equal(msgs[0], MuteAnswer) || e.card.(*echoCard).ons != 0 {
		t.Fatalf("command to a powered-off card: answers % X, card %+v; want % X", msgs, e.card, MuteAnswer)
	}
}

// FuzzSession drives one emulator session with arbitrary bytes from vpcd:
// it must never panic and must only write well-formed, non-empty frames.
func FuzzSession(f *testing.F) {
	f.Add(frames([]byte{0x01}, []byte{0x00, 0xA4, 0x04, 0x00}, []byte{0x04}), uint16(0))
	f.Add(frames([]byte{0x01}, []byte{0x80, 0xEE, 0x00, 0x00}), uint16(0))
	f.Add(append([]byte{0x00, 0x00}, frames([]byte{0x07}, []byte{1, 2})...), uint16(0))
	f.Add(frames([]byte{0x01}, make([]byte, 40)), uint16(16))
	f.Fuzz(func(t *testing.T, stream []byte, maxCommand uint16) {
		msgs, _, _ := runSession(t, stream, int(maxCommand))
		for _, m := range msgs {
			if len(m) == 0 {
				t.Fatal("emulator wrote an empty frame, which hangs vpcd")
			}
		}
	})
}
