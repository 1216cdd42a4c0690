package link

import (
	"context"
	"testing"
)

type bare struct{}

func (bare) Exchange(ctx context.Context, cmd []byte) ([]byte, error) { return []byte{0x90, 0}, nil }
func (bare) String() string                                           { return "bare" }
func (bare) Close() error                                             { return nil }

type wrap struct{ Link }

func (w wrap) Unwrap() Link { return w.Link }

func TestComposeExactAbilities(t *testing.T) {
	d := NewDirect(nil, "direct", []byte{0x3B, 0})
	for _, tt := range []struct {
		name        string
		inner       Link
		rs, pc, atr bool
	}{
		{"bare", bare{}, false, false, false},
		{"direct", d, true, true, true},
	} {
		a := AbilitiesOf(wrap{tt.inner})
		l := Compose(wrap{tt.inner}, a)
		_, rs := l.(Resetter)
		_, pc := l.(PowerCycler)
		_, at := l.(ATRer)
		if rs != tt.rs || pc != tt.pc || at != tt.atr {
			t.Errorf("%s: Resetter %v, PowerCycler %v, ATRer %v; want %v, %v, %v", tt.name, rs, pc, at, tt.rs, tt.pc, tt.atr)
		}
		if u, ok := l.(Unwrapper); !ok || u.Unwrap() != tt.inner {
			t.Errorf("%s: the composed link does not unwrap to the wrapped link", tt.name)
		}
	}
	// One ability alone.
	l := Compose(wrap{bare{}}, Abilities{ATRer: d})
	if _, ok := l.(Resetter); ok {
		t.Error("a link composed with an ATR alone can reset")
	}
	if a, ok := l.(ATRer); !ok || len(a.ATR()) != 2 {
		t.Error("a link composed with an ATR has none")
	}
}
