package scenarios

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/vectors"
	"github.com/spdlab/spdlab/rigs/dut"
)

// vectorDevice answers a known-answer sequence's recorded responses in
// order, as the device under test of a differential run: the vector
// device is a reference device with its own key and random source, so the
// only differences its twin may see are the own values of SPEC.md 1.3.
// alter, when set, changes the response of step at.
type vectorDevice struct {
	steps []vectors.Step
	next  int
	at    int
	alter []byte
}

func (v *vectorDevice) Exchange(_ context.Context, cmd []byte) ([]byte, error) {
	if v.next >= len(v.steps) {
		return nil, fmt.Errorf("scenarios: vector device: no step %d", v.next)
	}
	st := v.steps[v.next]
	v.next++
	if v.alter != nil && v.next-1 == v.at {
		return v.alter, nil
	}
	return hex.DecodeString(st.Response)
}
func (v *vectorDevice) String() string { return "vector device" }
func (v *vectorDevice) Close() error   { return nil }

// runTwin sends steps[0..upto] through a twin link whose device answers
// the recorded responses (step at altered to alter) and returns the
// divergences found.
func runTwin(t *testing.T, ca *ecdsa.PrivateKey, steps []vectors.Step, upto, at int, alter []byte) []Divergence {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ref, err := dut.Open(ctx, "ref", dut.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	diff := &differential{}
	l := &twinLink{dut: &vectorDevice{steps: steps, at: at, alter: alter}, ref: ref.Link, diff: diff,
		issuers: []*ecdsa.PrivateKey{ca}, tokens: map[string][]byte{}}
	for _, st := range steps[:upto+1] {
		cmd, err := hex.DecodeString(st.Command)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Exchange(ctx, cmd); err != nil {
			t.Fatalf("%s: %v", st.Name, err)
		}
		if l.diverged {
			break
		}
	}
	return diff.found
}

// variableAt reports whether byte i of the value of the object at path is
// a variable part of st (Annex A).
func variableAt(st vectors.Step, path string, i int) bool {
	for _, v := range st.Variable {
		if v.Path == "" {
			return true // the whole answer (GET CHALLENGE, INTERNAL AUTHENTICATE)
		}
		if v.Path == path && i >= v.From && (v.To == 0 || i < v.To) {
			return true
		}
	}
	return false
}

// alterations are the step's response with one field changed each: the
// status word, and the last byte of the value of each primitive object,
// named by path.
func alterations(resp []byte) map[string][]byte {
	out := map[string][]byte{}
	flip := func(i int) []byte {
		b := append([]byte(nil), resp...)
		b[i] ^= 0x01
		return b
	}
	sw := append([]byte(nil), resp...)
	if sw[len(sw)-2] == 0x90 {
		sw[len(sw)-2], sw[len(sw)-1] = 0x6F, 0x00
	} else {
		sw[len(sw)-2], sw[len(sw)-1] = 0x90, 0x00
	}
	out["status word"] = sw
	data := resp[:len(resp)-2]
	objs, err := katParse(data)
	if err != nil || len(data) == 0 {
		if len(data) > 0 {
			out[""] = flip(len(data) - 1)
		}
		return out
	}
	var walk func(prefix string, l []katTLV)
	walk = func(prefix string, l []katTLV) {
		for _, o := range l {
			p := strings.TrimPrefix(prefix+"/"+o.tag, "/")
			if o.constructed() {
				walk(p, o.children)
			} else if o.valEnd > o.valStart {
				out[p] = flip(o.valEnd - 1)
			}
		}
	}
	walk("", objs)
	return out
}

// TestTwinRuleOnVectors runs every known-answer sequence through a
// differential run whose device answers the vectors: nothing differs but
// the own values of SPEC.md 1.3, so nothing is reported; then, step by
// step, each field of each response (the status word, every data object)
// is changed on its own, and the run must report that step, unless the
// vectors mark the byte variable (Annex A lists exactly the own values
// of SPEC.md 1.3) or it is the erase counter, which is compared by its
// moves (TEST ERASE orders move by the difference).
func TestTwinRuleOnVectors(t *testing.T) {
	withoutRace(t)
	file, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(file.Keys.CA.Private)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		t.Fatal(err)
	}
	fields, skipped := 0, 0
	for _, seq := range file.Sequences {
		if ds := runTwin(t, ca, seq.Steps, len(seq.Steps)-1, -1, nil); len(ds) > 0 {
			t.Errorf("%s: the vector device differs from its twin: %s", seq.Name, ds[0])
			continue
		}
		for i, st := range seq.Steps {
			resp, err := hex.DecodeString(st.Response)
			if err != nil || len(resp) < 2 {
				t.Fatalf("%s step %d: response %q", seq.Name, i, st.Response)
			}
			if resp[len(resp)-2] == 0x61 {
				// Its data is compared with the GET RESPONSE that ends it.
				continue
			}
			for path, alt := range alterations(resp) {
				if path != "status word" && (variableAt(st, path, len(tagValue(resp, path))-1) || strings.HasSuffix(path, spd.TagEraseCounter.String())) {
					skipped++
					continue
				}
				fields++
				ds := runTwin(t, ca, seq.Steps, i, i, alt)
				if len(ds) == 0 {
					t.Errorf("%s step %d (%s): %s changed, and the run reported nothing", seq.Name, i, st.Name, path)
				}
			}
		}
	}
	t.Logf("%d fields changed one at a time, each reported; %d own values (Annex A variable parts, the erase counter) left alone", fields, skipped)
}

// tagValue is the value of the object at path in a response.
func tagValue(resp []byte, path string) []byte {
	data := resp[:len(resp)-2]
	if path == "" {
		return data
	}
	objs, err := katParse(data)
	if err != nil {
		return nil
	}
	parts := strings.Split(path, "/")
	for n, want := range parts {
		for _, o := range objs {
			if o.tag != want {
				continue
			}
			if n == len(parts)-1 {
				return data[o.valStart:o.valEnd]
			}
			objs = o.children
			break
		}
	}
	return nil
}
