package scenarios

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/spdlab/spdlab/reference/vectors"
)

// FuzzKATResponse feeds arbitrary device answers to the known-answer
// comparison: it must refuse or accept them, never panic, whatever the
// step's variable parts.
func FuzzKATResponse(f *testing.F) {
	file, err := vectors.Load()
	if err != nil {
		f.Fatal(err)
	}
	var steps []vectors.Step
	for _, seq := range file.Sequences {
		steps = append(steps, seq.Steps...)
	}
	for i, st := range steps {
		if i%7 == 0 {
			b, _ := hex.DecodeString(st.Response)
			f.Add(uint16(i), b)
		}
	}
	k := &katRun{id: make([]byte, 8)}
	f.Fuzz(func(t *testing.T, which uint16, got []byte) {
		st := steps[int(which)%len(steps)]
		want, _ := hex.DecodeString(st.Response)
		cmd, _ := hex.DecodeString(st.Command)
		if objs, err := katParse(got); err == nil {
			for _, o := range objs {
				if o.start < 0 || o.valStart < o.start || o.end < o.valStart || o.end > len(got) {
					t.Fatalf("object %s out of bounds: %+v", o.tag, o)
				}
			}
		}
		run := *k
		_ = run.compare(st, cmd, want, got)
	})
}

// TestKATCompareRefuses checks the comparison itself: a vector's own
// answer passes once the device key is known, and each kind of change
// fails.
func TestKATCompareRefuses(t *testing.T) {
	withoutRace(t)
	file, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	k := &katRun{id: mustHex(t, file.Keys.Device.ID), vecPub: mustHex(t, file.Keys.Device.Public), cert: mustHex(t, file.Keys.Device.Certificate)}
	seen, resigned := 0, 0
	devPriv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), mustHex(t, file.Keys.Device.Private))
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range file.Sequences {
		for i, st := range seq.Steps {
			want := mustHex(t, st.Response)
			cmd := mustHex(t, st.Command)
			if err := k.compare(st, cmd, want, want); err != nil {
				t.Fatalf("%s step %d (%s): the vector's own answer: %v", seq.Name, i, st.Name, err)
			}
			if len(want) < 4 {
				continue
			}
			// Flip a byte of the data that no variable part covers.
			for j := 0; j < len(want)-2; j++ {
				covered := false
				for _, v := range st.Variable {
					if j >= v.Offset && j < v.Offset+v.Length {
						covered = true
					}
				}
				if covered {
					continue
				}
				bad := append([]byte(nil), want...)
				bad[j] ^= 0x01
				if err := k.compare(st, cmd, want, bad); err == nil {
					t.Errorf("%s step %d (%s): byte %d changed, still accepted", seq.Name, i, st.Name, j)
				}
				seen++
			}
			// A medium whose bytes differ but which the device key signed
			// again: only the comparison of values can refuse it.
			for _, v := range st.Variable {
				if v.Check != "signature-medium" {
					continue
				}
				sigStart := v.Offset - 3 // 9F45 and a one-byte length
				for j := 0; j < sigStart; j++ {
					covered := false
					for _, o := range st.Variable {
						if o.Check != "signature-medium" && j >= o.Offset && j < o.Offset+o.Length {
							covered = true
						}
					}
					if covered {
						continue
					}
					bad := append([]byte(nil), want[:sigStart]...)
					bad[j] ^= 0x01
					digest := sha256.Sum256(bad)
					sig, err := ecdsa.SignASN1(rand.Reader, devPriv, digest[:])
					if err != nil {
						t.Fatal(err)
					}
					bad = append(append(bad, katEncode([]byte{0x9F, 0x45}, sig)...), want[len(want)-2:]...)
					if err := k.compare(st, cmd, want, bad); err == nil {
						t.Errorf("%s step %d (%s): byte %d changed and signed again, still accepted", seq.Name, i, st.Name, j)
					}
					resigned++
				}
			}
			// The same for a medium carried as a value (a payment code's
			// DF60): changed, signed again, its enclosing lengths made
			// right.
			for _, v := range st.Variable {
				if v.Check != "signature-envelope" {
					continue
				}
				env := want[v.Offset : v.Offset+v.Length]
				objs, err := katParse(env)
				if err != nil || len(objs) != 3 {
					t.Fatalf("%s step %d (%s): %s is not an envelope", seq.Name, i, st.Name, v.Path)
				}
				for j := 0; j < objs[2].start; j++ {
					bad := append([]byte(nil), env[:objs[2].start]...)
					bad[j] ^= 0x01
					digest := sha256.Sum256(bad)
					sig, err := ecdsa.SignASN1(rand.Reader, devPriv, digest[:])
					if err != nil {
						t.Fatal(err)
					}
					bad = append(bad, katEncode([]byte{0x9F, 0x45}, sig)...)
					resp := append(katReplace(t, want[:len(want)-2], strings.Split(v.Path, "/"), bad), want[len(want)-2:]...)
					if err := k.compare(st, cmd, want, resp); err == nil {
						t.Errorf("%s step %d (%s): byte %d of %s changed and signed again, still accepted", seq.Name, i, st.Name, j, v.Path)
					}
					resigned++
				}
			}
			// A signature over other bytes fails.
			for _, v := range st.Variable {
				if v.Check == "signature-medium" || v.Check == "signature-record" || v.Check == "signature-envelope" {
					bad := append([]byte(nil), want...)
					bad[v.Offset+v.Length-1] ^= 0x01
					if err := k.compare(st, cmd, want, bad); err == nil {
						t.Errorf("%s step %d (%s): altered signature accepted", seq.Name, i, st.Name)
					}
				}
			}
		}
	}
	if seen < 1000 || resigned < 1000 {
		t.Fatalf("only %d bytes flipped, %d of them signed again", seen, resigned)
	}
}

// katReplace puts value in place of the value of the object at path in
// data, the lengths of the objects enclosing it made right.
func katReplace(t *testing.T, data []byte, path []string, value []byte) []byte {
	t.Helper()
	objs, err := katParse(data)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	found := false
	for _, o := range objs {
		if o.tag != path[0] || found {
			out = append(out, data[o.start:o.end]...)
			continue
		}
		found = true
		v := value
		if len(path) > 1 {
			v = katReplace(t, data[o.valStart:o.end], path[1:], value)
		}
		out = append(out, katEncode(data[o.start:o.start+len(o.tag)/2], v)...)
	}
	if !found {
		t.Fatalf("no %s in %X", path[0], data)
	}
	return out
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKATShiftErase checks the TEST ERASE substitution for a sample erased
// before: the counter moves up, the order is signed again by the vectors'
// CA key over SPD-KEY-3's message, and the DF2F object of GET DATA and
// GET DATA list answers moves with it.
func TestKATShiftErase(t *testing.T) {
	file, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), mustHex(t, file.Keys.CA.Private))
	if err != nil {
		t.Fatal(err)
	}
	k := &katRun{ca: ca, id: mustHex(t, file.Keys.Device.ID)}
	orders, answers, lists := 0, 0, 0
	for _, seq := range file.Sequences {
		for _, st := range seq.Steps {
			cmd, want := mustHex(t, st.Command), mustHex(t, st.Response)
			got, gotWant, err := k.shiftErase(cmd, want, 3)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case cmd[0] == 0x80 && cmd[1] == 0x5E:
				orders++
				data := dataField(got)
				objs, err := katParse(data)
				if err != nil || len(objs) != 2 || objs[0].tag != "DF2F" || objs[1].tag != "9F45" {
					t.Fatalf("shifted TEST ERASE %X: %v", got, err)
				}
				old := dataField(cmd)
				if data[objs[0].valEnd-1] != old[objs[0].valEnd-1]+3 {
					t.Fatalf("counter %X, want the vector's %X plus 3", data[objs[0].valStart:objs[0].valEnd], old[objs[0].valStart:objs[0].valEnd])
				}
				msg := append(append(append([]byte("SPDLAB-ISS1"), 0x5E), k.id...), data[:objs[1].start]...)
				digest := sha256.Sum256(msg)
				if !ecdsa.VerifyASN1(&ca.PublicKey, digest[:], data[objs[1].valStart:objs[1].valEnd]) {
					t.Fatalf("shifted TEST ERASE %X does not verify with the CA key", got)
				}
			case bytes.Equal(cmd, []byte{0x00, 0xCA, 0xDF, 0x2F, 0x00}) && len(want) == 9:
				answers++
				if gotWant[6] != want[6]+3 {
					t.Fatalf("DF2F answer %X, want %X moved up by 3", gotWant, want)
				}
			case cmd[1] == 0xCB && readsEraseCounter(cmd) && len(want) > 2:
				// A GET DATA list naming DF2F: its DF2F object moves up,
				// every other byte stays.
				lists++
				objs, err := katParse(want[:len(want)-2])
				if err != nil || !bytes.Equal(got, cmd) || len(gotWant) != len(want) {
					t.Fatalf("step %q: GET DATA list answer %X shifted to %X: %v", st.Name, want, gotWant, err)
				}
				moved := 0
				for _, o := range objs {
					if o.tag == "DF2F" {
						moved++
						if gotWant[o.valEnd-1] != want[o.valEnd-1]+3 || !bytes.Equal(gotWant[o.start:o.valEnd-1], want[o.start:o.valEnd-1]) {
							t.Fatalf("step %q: DF2F in %X, want %X's moved up by 3", st.Name, gotWant, want)
						}
						copy(gotWant[o.valStart:o.valEnd], want[o.valStart:o.valEnd])
					}
				}
				if moved != 1 || !bytes.Equal(gotWant, want) {
					t.Fatalf("step %q: %d DF2F objects moved, or another byte changed: %X against %X", st.Name, moved, gotWant, want)
				}
			default:
				if !bytes.Equal(got, cmd) || !bytes.Equal(gotWant, want) {
					t.Fatalf("step %q changed by the shift", st.Name)
				}
			}
		}
	}
	if orders < 2 || answers < 1 || lists < 1 {
		t.Fatalf("%d TEST ERASE orders, %d DF2F answers and %d GET DATA lists naming DF2F in the vectors", orders, answers, lists)
	}
}
