package fault

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
)

// The expected values below are worked out by hand from the formulas of
// ISO/IEC 7816-3:2006 (see Timing), rounded to the nanosecond.
func TestTimingValues(t *testing.T) {
	def1 := DefaultTiming(T1)
	def0 := DefaultTiming(T0)
	fast := Timing{Clock: 5_000_000, Fi: 512, Di: 8, Protocol: T1, BWI: 4, CWI: 5, IFSC: 254, IFSD: 254, WI: 10}
	fast0 := fast
	fast0.Protocol = T0
	with := func(t Timing, f func(*Timing)) Timing { f(&t); return t }
	cases := []struct {
		name string
		got  func() time.Duration
		want time.Duration
	}{
		// etu = 372 / 3 571 200 s = 104 166.67 ns
		{"etu default", def1.ETU, 104_167},
		// 512 / (8 * 5 MHz) = 12.8 us
		{"etu Fi=512 Di=8 5MHz", fast.ETU, 12_800},
		// 372 / (12 * 4 MHz) = 7.75 us (TA1 = 18)
		{"etu Fi=372 Di=12 4MHz", Timing{Clock: 4_000_000, Fi: 372, Di: 12}.ETU, 7_750},
		// GT = 12 etu = 12 * 372 / 3 571 200 s = 1.25 ms
		{"GT N=0", def1.GuardTime, 1_250_000},
		// N = 3: 15 etu
		{"GT N=3", with(def0, func(t *Timing) { t.N = 3 }).GuardTime, 1_562_500},
		// N = 255: 11 etu in T=1, 12 etu in T=0
		{"GT N=255 T=1", with(def1, func(t *Timing) { t.N = 255 }).GuardTime, 1_145_833},
		{"GT N=255 T=0", with(def0, func(t *Timing) { t.N = 255 }).GuardTime, 1_250_000},
		// BWT = 11 etu + 2^4 * 960 * 372 / 3 571 200 s = 1 145 833.3 ns + 1.6 s
		{"BWT BWI=4", def1.BWT, 1_601_145_833},
		// 11 etu + 960 * 372 / 3 571 200 s = 1 145 833.3 ns + 0.1 s
		{"BWT BWI=0", with(def1, func(t *Timing) { t.BWI = 0 }).BWT, 101_145_833},
		// 11 * 12.8 us + 16 * 960 * 372 / 5 MHz = 140.8 us + 1.142784 s (Fd, not Fi)
		{"BWT BWI=4 Fi=512 Di=8 5MHz", fast.BWT, 1_142_924_800},
		// CWT = (11 + 2^13) etu = 8203 etu
		{"CWT CWI=13", def1.CWT, 854_479_167},
		// (11 + 2^5) etu = 43 etu
		{"CWT CWI=5", with(def1, func(t *Timing) { t.CWI = 5 }).CWT, 4_479_167},
		{"CWT CWI=5 Fi=512 Di=8 5MHz", fast.CWT, 550_400},
		// BGT = 22 etu
		{"BGT", def1.BGT, 2_291_667},
		// WT = 10 * 960 * 372 / 3 571 200 s = 1 s
		{"WT WI=10", def0.WT, 1_000_000_000},
		// 10 * 960 * 512 / 5 MHz = 0.98304 s
		{"WT WI=10 Fi=512 5MHz", fast0.WT, 983_040_000},
		// 255 * 960 * 372 / 3 571 200 s = 25.5 s
		{"WT WI=255", with(def0, func(t *Timing) { t.WI = 255 }).WT, 25_500_000_000},
		{"wait limit T=1", def1.WaitLimit, 1_601_145_833},
		{"wait limit T=0", def0.WaitLimit, 1_000_000_000},
	}
	for _, c := range cases {
		if got := c.got(); got != c.want {
			t.Errorf("%s = %d ns, want %d ns", c.name, got, c.want)
		}
	}
}

func TestExchange(t *testing.T) {
	t1 := DefaultTiming(T1)
	t1.IFSC, t1.IFSD = 254, 254
	t1noWTX := t1
	t1noWTX.NoWaitExtension = true
	t0 := DefaultTiming(T0)
	selectAID := []byte{0x00, 0xA4, 0x04, 0x00, 0x08, 0xF0, 0x53, 0x50, 0x44, 0x4C, 0x41, 0x42, 0x01}
	ok := []byte{0x90, 0x00}
	long := make([]byte, 300)
	etu := func(n int64) time.Duration { // n etu at 9600 bit/s, rounded
		return time.Duration((n*int64(time.Second) + 4800) / 9600)
	}
	cases := []struct {
		name        string
		timing      Timing
		cmd, resp   []byte
		proc        time.Duration
		total, xfer time.Duration
		chars, ext  int
		exceeded    bool
	}{
		// 17-char I-block: 16*12 = 192 etu; BGT 22; 6-char answer: 5*12 = 60;
		// the last character's frame 10: 284 etu.
		{"T=1 SELECT", t1, selectAID, ok, 0, etu(284), etu(262), 23, 0, false},
		// 4 s = 38400 etu > BWT = 15371 etu. S(WTX) exchange: 4*12 + 22 +
		// 4*12 = 118 etu. WTX at 15371 -> 15489, window to 30860; WTX at
		// 30860 -> 30978, window to 46349 >= 38400. Answer at 38400:
		// 192 + 38400 + 60 + 10 = 38662 etu, two extensions.
		{"T=1 slow card, WTX", t1, selectAID, ok, 4 * time.Second, etu(38662), etu(192 + 4*48 + 60 + 10), 43, 2, false},
		// The same card without WTX: silent past BWT.
		{"T=1 slow card, no WTX", t1noWTX, selectAID, ok, 4 * time.Second, etu(38662), etu(262), 23, 0, true},
		// 300-byte command: 258 chars (3084) + BGT + R-block 4 chars (36) +
		// BGT + 50 chars (588) + BGT + answer 60 + 10 = 3844 etu.
		{"T=1 command chaining", t1, long, ok, 0, etu(3844), etu(3084 + 36 + 588 + 60 + 10), 318, 0, false},
		// 5-byte command 9 chars (96) + BGT + 258 chars (3084) + BGT +
		// R-block (36) + BGT + 50 chars (588) + 10 = 3880 etu.
		{"T=1 response chaining", t1, []byte{0x00, 0xB0, 0x00, 0x00, 0x00}, long, 0, etu(3880), etu(96 + 3084 + 36 + 588 + 10), 321, 0, false},
		// Case 2: header 4*12 = 48; 16; INS + 4 data + SW = 7 chars, 72; 10.
		{"T=0 case 2", t0, []byte{0x00, 0xB0, 0x00, 0x00, 0x04}, []byte{1, 2, 3, 4, 0x90, 0x00}, 0, etu(146), etu(48 + 72 + 10), 12, 0, false},
		// Case 3: header 48; 16 + INS; 16 + 2 data (12); 16; SW (12); 10.
		{"T=0 case 3", t0, []byte{0x00, 0xD6, 0x00, 0x00, 0x02, 0xAA, 0xBB}, ok, 0, etu(130), etu(48 + 12 + 12 + 10), 10, 0, false},
		// Case 4: header 48; 16 INS; 16 + 12 data; 16; 61xx 12; GET
		// RESPONSE 16 + 48; INS + 2 data + SW 16 + 48; 10 = 258 etu.
		{"T=0 case 4", t0, []byte{0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00, 0x00}, []byte{0x6F, 0x00, 0x90, 0x00}, 0, etu(258), etu(48 + 12 + 12 + 48 + 48 + 10), 20, 0, false},
		// 2.5 s = 24000 etu > WT = 9600 etu: NULL at 9600 and 19200, window
		// to 28800. 48 + 24000 + 12 + 10 = 24070 etu.
		{"T=0 slow card, NULL bytes", t0, []byte{0x00, 0x44, 0x00, 0x00}, ok, 2500 * time.Millisecond, etu(24070), etu(48 + 12 + 10), 9, 2, false},
		// A card that never answers: the command alone, 48 + 10 etu.
		{"T=0 no answer", t0, []byte{0x00, 0x44, 0x00, 0x00}, nil, 0, etu(58), etu(58), 5, 0, false},
	}
	for _, c := range cases {
		et, err := c.timing.Exchange(c.cmd, c.resp, c.proc)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if et.Total != c.total || et.Transfer != c.xfer || et.Characters != c.chars || et.Extensions != c.ext || et.Exceeded != c.exceeded {
			t.Errorf("%s: got total %v transfer %v chars %d ext %d exceeded %v; want %v %v %d %d %v",
				c.name, et.Total, et.Transfer, et.Characters, et.Extensions, et.Exceeded,
				c.total, c.xfer, c.chars, c.ext, c.exceeded)
		}
		if et.WaitLimit != c.timing.WaitLimit() {
			t.Errorf("%s: wait limit %v", c.name, et.WaitLimit)
		}
	}
	bad := t1
	bad.BWI = 10
	if _, err := bad.Exchange(selectAID, ok, 0); err == nil || !strings.HasPrefix(err.Error(), "fault: ") {
		t.Fatalf("BWI 10 accepted: %v", err)
	}
}

// withTCK appends the check byte: the XOR of T0 to the last byte.
func withTCK(atr ...byte) []byte {
	var x byte
	for _, b := range atr[1:] {
		x ^= b
	}
	return append(atr, x)
}

func TestTimingFromATR(t *testing.T) {
	cases := []struct {
		name string
		atr  []byte
		want Timing
	}{
		{"emulator SIM ATR", emulator.ATR(emulator.FormSIM), Timing{Clock: DefaultClock, Fi: 372, Di: 1, Protocol: T1,
			WI: 10, BWI: 4, CWI: 5, IFSC: 254, IFSD: 254, WTXMultiplier: 1}},
		// T0 = 02: two historical bytes, T=0 only, no TCK.
		{"T=0 bare", []byte{0x3B, 0x02, 0x14, 0x50}, Timing{Clock: DefaultClock, Fi: 372, Di: 1, Protocol: T0,
			WI: 10, BWI: 4, CWI: 13, IFSC: 32, IFSD: 254, WTXMultiplier: 1}},
		// TA1 = 96: FI 9 -> Fi 512, DI 6 -> Di 32; 6 historical bytes.
		{"TA1 96", []byte{0x3B, 0x16, 0x96, 'A', 's', 't', 'r', 'i', 'd'}, Timing{Clock: DefaultClock, Fi: 512, Di: 32, Protocol: T0,
			WI: 10, BWI: 4, CWI: 13, IFSC: 32, IFSD: 254, WTXMultiplier: 1}},
		// TC1 = FF (N = 255), TD1 = 02 then TC2 = 20 (WI 32)... with T=0.
		{"TC1 TC2", []byte{0x3B, 0xC0, 0xFF, 0x40, 0x20}, Timing{Clock: DefaultClock, Fi: 372, Di: 1, Protocol: T0,
			N: 255, WI: 32, BWI: 4, CWI: 13, IFSC: 32, IFSD: 254, WTXMultiplier: 1}},
		// TA1 18 (Di 12), TD1 81, TD2 71: TA3 = 80 (IFSC 128), TB3 = 35
		// (BWI 3, CWI 5), TC3 = 01 (CRC); no historical bytes.
		{"T=1 CRC", withTCK(0x3B, 0x90, 0x18, 0x81, 0x71, 0x80, 0x35, 0x01), Timing{Clock: DefaultClock, Fi: 372, Di: 12, Protocol: T1,
			WI: 10, BWI: 3, CWI: 5, IFSC: 128, IFSD: 254, CRC: true, WTXMultiplier: 1}},
	}
	for _, c := range cases {
		got, err := TimingFromATR(c.atr, 0)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
	sim := emulator.ATR(emulator.FormSIM)
	badTCK := append([]byte{}, sim...)
	badTCK[len(badTCK)-1] ^= 1
	errs := []struct {
		name, want string
		atr        []byte
	}{
		{"empty", "shorter than TS", nil},
		{"bad TS", "TS", []byte{0x3C, 0x00}},
		{"bad TCK", "TCK", badTCK},
		{"no TCK", "lacks TCK", sim[:len(sim)-1]},
		{"cut in interface bytes", "ends inside", []byte{0x3B, 0x90, 0x18}},
		{"cut in historical bytes", "historical", []byte{0x3B, 0x05, 0x01}},
		{"stray bytes", "stray", []byte{0x3B, 0x00, 0x00}},
		{"reserved FI", "reserved", []byte{0x3B, 0x10, 0x71}},
		{"reserved DI", "reserved", []byte{0x3B, 0x10, 0x1A}},
		{"TC2 zero", "TC2", []byte{0x3B, 0x80, 0x40, 0x00}},
		{"BWI 10", "BWI", withTCK(0x3B, 0x80, 0x81, 0x21, 0xA5)},
		{"T=2 first", "T=2", withTCK(0x3B, 0x80, 0x02)},
	}
	for _, c := range errs {
		_, err := TimingFromATR(c.atr, 0)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "fault: ") {
			t.Errorf("%s: error %v, want one naming %q", c.name, err, c.want)
		}
	}
}

func TestFiDi(t *testing.T) {
	for _, c := range []struct {
		ta1    byte
		fi, di int
	}{{0x11, 372, 1}, {0x13, 372, 4}, {0x95, 512, 16}, {0x96, 512, 32}, {0x18, 372, 12}, {0xD9, 2048, 20}, {0x27, 558, 64}} {
		fi, di, err := FiDi(c.ta1)
		if err != nil || fi != c.fi || di != c.di {
			t.Errorf("FiDi(%02x) = %d, %d, %v; want %d, %d", c.ta1, fi, di, err, c.fi, c.di)
		}
	}
}

func TestTimed(t *testing.T) {
	var slept []time.Duration
	tm := DefaultTiming(T1)
	tm.IFSC, tm.IFSD = 254, 254
	card := newCounterCard()
	atr := emulator.ATR(emulator.FormSIM)
	slow := map[byte]time.Duration{0x01: 4 * time.Second} // the add command computes for 4 s
	c, err := NewTimed(card, TimedConfig{
		Timing:     tm,
		Processing: func(cmd []byte) time.Duration { return slow[cmd[1]] },
		ATR:        atr,
		Sleep:      func(d time.Duration) { slept = append(slept, d) },
	})
	if err != nil {
		t.Fatal(err)
	}
	c.PowerOn()
	// 400 cycles + (12 * 16 + 10) etu of a 17-byte ATR.
	cycles := int64(400 + 202*372)
	wantATR := time.Duration((cycles*int64(time.Second) + DefaultClock/2) / DefaultClock)
	if len(slept) != 1 || slept[0] != wantATR || ATRTime(atr, 0) != wantATR {
		t.Fatalf("ATR wait %v, want %v", slept, wantATR)
	}
	if r := c.Process(echo); !bytes.Equal(r, []byte("abc\x90\x00")) {
		t.Fatalf("echo: %x", r)
	}
	st1 := c.Stats()
	st := st1
	if st.Exchanges != 1 || st.Extensions != 0 || st.Last.Total <= 0 {
		t.Fatalf("stats %+v", st)
	}
	if slept[1] > st.Last.Total {
		t.Fatalf("slept %v for an exchange of %v", slept[1], st.Last.Total)
	}
	if r := c.Process(add1); !bytes.Equal(r, swOK) {
		t.Fatalf("add: %x", r)
	}
	st = c.Stats()
	if st.Extensions != 2 || st.Exceeded != 0 || st.Last.Total < 4*time.Second {
		t.Fatalf("slow command: %+v", st)
	}
	if slept[2] < 4*time.Second-time.Second/10 {
		t.Fatalf("slept %v for a 4 s command", slept[2])
	}
	if st.Line != st1.Line+st.Last.Total {
		t.Fatalf("line time %v is not %v + %v", st.Line, st1.Line, st.Last.Total)
	}

	// A card that does not ask for more time overruns BWT.
	tm.NoWaitExtension = true
	c, _ = NewTimed(card, TimedConfig{Timing: tm, Processing: func([]byte) time.Duration { return 2 * time.Second },
		Sleep: func(time.Duration) {}})
	c.Process(readCtr)
	if st := c.Stats(); st.Exceeded != 1 || st.Extensions != 0 || !st.Last.Exceeded {
		t.Fatalf("overrun not reported: %+v", st)
	}
	c.PowerOff()
	if card.powered {
		t.Fatal("PowerOff not passed on")
	}
	c.Reset()
	if card.resets != 1 {
		t.Fatal("Reset not passed on")
	}
	tm.BWI = 12
	if _, err := NewTimed(card, TimedConfig{Timing: tm}); err == nil {
		t.Fatal("bad timing accepted")
	}
}

// FuzzTimingFromATR reads arbitrary ATRs: an error or a timing that passes
// Check and can time an exchange, never a panic.
func FuzzTimingFromATR(f *testing.F) {
	f.Add(emulator.ATR(emulator.FormSIM))
	f.Fuzz(func(t *testing.T, atr []byte) {
		tm, err := TimingFromATR(atr, 0)
		if err != nil {
			return
		}
		if err := tm.Check(); err != nil {
			t.Fatalf("accepted ATR gives bad timing: %v", err)
		}
		et, err := tm.Exchange(atr, atr, 3*time.Second)
		if err != nil || et.Total <= 0 {
			t.Fatalf("exchange: %+v, %v", et, err)
		}
	})
}
