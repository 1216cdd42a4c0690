package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeSettlementBatch feeds outside bytes to the settlement request
// decoder: it must never panic, and every record it accepts must be in the
// canonical form it was sent in.
func FuzzDecodeSettlementBatch(f *testing.F) {
	f.Add([]byte(`{"batch_id":"b1","records":[]}`))
	f.Add([]byte(`{"records":["4QM="]}`))
	f.Add([]byte(`{"records":null}`))
	f.Add([]byte(`[]`))
	d := newSimDevice(f, "fuzz")
	good, _ := json.Marshal(SettlementBatch{BatchID: "seed", Records: [][]byte{d.record(100, "", fuzzTime), d.record(5, "A5A5", fuzzTime)}})
	f.Add(good)
	f.Fuzz(func(t *testing.T, body []byte) {
		batch, recs, err := DecodeSettlementBatch(body, 1000)
		if err != nil {
			if asAPIErr(err).status/100 != 4 {
				t.Fatalf("decode error is not a 4xx: %v", err)
			}
			return
		}
		if len(recs) != len(batch.Records) || len(recs) == 0 {
			t.Fatalf("%d records decoded from %d", len(recs), len(batch.Records))
		}
		for i, r := range recs {
			if !bytes.Equal(r.Marshal(), batch.Records[i]) {
				t.Fatalf("record %d is not in canonical form", i)
			}
			if r.Device == "" || len(r.bodyHash) != 32 {
				t.Fatalf("record %d: %+v", i, r)
			}
		}
	})
}

// FuzzSettleRequest sends outside bytes to the settlement endpoint of a
// live backend: every answer is 200 or a 4xx with a JSON reason, a refused
// batch changes nothing, and value stays conserved.
func FuzzSettleRequest(f *testing.F) {
	l := newLab(f, nil)
	d := newSimDevice(f, "fuzz")
	l.register(d, 1_000_000, "")
	f.Add([]byte(`{"records":["4QM="]}`))
	f.Add([]byte(`{"batch_id":"x","records":[]}`))
	for i := 0; i < 3; i++ {
		good, _ := json.Marshal(SettlementBatch{Records: [][]byte{d.record(int64(10+i), "", fuzzTime)}})
		f.Add(good)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		audit := func() Audit {
			a, err := l.srv.Audit(context.Background())
			if err != nil || !a.Conserved {
				t.Fatalf("audit: %+v %v", a, err)
			}
			return a
		}
		before := audit()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/v1/settlements", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testTerminalToken)
		l.srv.Handler().ServeHTTP(rec, req)
		after := audit()
		switch {
		case rec.Code == http.StatusOK:
			var ack SettlementAck
			if err := json.Unmarshal(rec.Body.Bytes(), &ack); err != nil || len(ack.Entries) == 0 {
				t.Fatalf("200 with %q", rec.Body.String())
			}
		case rec.Code/100 == 4:
			var eb ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Code == "" || eb.Reason == "" {
				t.Fatalf("%d with %q", rec.Code, rec.Body.String())
			}
			if !reflect.DeepEqual(after, before) {
				t.Fatalf("refused batch changed the books: %+v -> %+v", before, after)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	})
}

// fuzzEndpoints are the JSON bodies of the API, each with a seed.
var fuzzEndpoints = []struct{ path, seed string }{
	{"/v1/devices", `{"device_id":"00112233AABBCCDD","public_key":"","account":"A","currency":156,"initial_balance":100}`},
	{"/v1/devices/{id}/contact", `{"applied":0,"balance":100,"atc":3}`},
	{"/v1/devices/{id}/parameters", `{"top_up":5000,"add_uses":1,"limits":{"MaxPayment":1},"tier":2}`},
	{"/v1/authorisations", `{"record":"4QM=","channel":"qr","hold":true}`},
	{"/v1/tokens", `{"device_id":"{id}","token":"A5A5","max_uses":3,"max_amount":500,"channels":["qr"]}`},
	{"/v1/otp", `{"device_id":"{id}","purpose":"pay"}`},
	{"/v1/otp/verify", `{"otp_id":"00","code":"123456"}`},
	{"/v1/revocations", `{"device_id":"{id}","reason":"lost"}`},
	{"/v1/transfers", `{"transfer_id":"t1","medium":"hQVTVkwwMWEA","record":"4QM="}`},
	{"/v1/transfers/t1/claim", `{"device_id":"{id}","record":"4QM="}`},
	{"/v1/transfers/t1/reclaim", `{"device_id":"{id}","signature":"MEQ="}`},
	{"/v1/reclaims", `{"medium":"hQVTVkwwMWEA"}`},
	{"/v1/reversals", `{"record":"4QM=","reason":"refused"}`},
	{"/v1/payees", `{"payee":"SHOP-A"}`},
}

// FuzzRequestBodies sends outside bytes to every endpoint that takes a
// JSON body, with the issuer's credential: the answer is a 2xx or a 4xx
// with a JSON reason, never a 5xx, and the audit stays conserved whatever
// was stored (the issuer may register and top up; nothing may break the
// books).
func FuzzRequestBodies(f *testing.F) {
	l := newLab(f, func(c *Config) { c.OTP.PerClient = 1 << 30; c.OTP.PerDevice = 1 << 30 })
	d := newSimDevice(f, "fuzz")
	l.register(d, 1_000_000, "+1")
	for i, e := range fuzzEndpoints {
		f.Add(uint8(i), []byte(strings.ReplaceAll(e.seed, "{id}", d.id)))
		f.Add(uint8(i), []byte(`{"amount":-1,"top_up":1e30,"initial_balance":9223372036854775808}`))
		f.Add(uint8(i), []byte(`{"device_id":"x","Device_ID":"`+d.id+`","records":[{"a":1},{"a":[{"b":2,"B":3}]}]}`))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		e := fuzzEndpoints[int(which)%len(fuzzEndpoints)]
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, strings.ReplaceAll(e.path, "{id}", d.id), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testIssuerToken)
		l.srv.Handler().ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			var eb ErrorBody
			if rec.Code/100 != 4 || json.Unmarshal(rec.Body.Bytes(), &eb) != nil || eb.Code == "" || eb.Reason == "" {
				t.Fatalf("%s: %d %q", e.path, rec.Code, rec.Body.String())
			}
		}
		a, err := l.srv.Audit(context.Background())
		if err != nil || !a.Conserved {
			t.Fatalf("%s %q: audit %+v %v", e.path, body, a, err)
		}
	})
}

// FuzzUniqueKeys checks decodeJSON's duplicate-key scan against a slow
// reading of the same bytes with encoding/json's tokens: on valid JSON
// they agree on whether an object names a key twice (in any case).
func FuzzUniqueKeys(f *testing.F) {
	for _, s := range []string{`{"a":1,"A":2}`, `{"a":{"b":[{"c":1},{"c":2}]},"b":"a"}`, `{"a\"":1,"\u0061":2}`, `[{"k":1,"\u212a":2}]`, `{"s":1,"ſ":2}`, `"x"`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := uniqueKeys(b) != nil
		if !json.Valid(b) {
			return
		}
		if want := slowDuplicateKey(b); got != want {
			t.Fatalf("uniqueKeys says duplicate %v, the token reading %v, for %q", got, want, b)
		}
	})
}

// slowDuplicateKey reads b token by token and reports whether an object
// names a key twice under strings.EqualFold.
func slowDuplicateKey(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		obj     bool
		keys    []string
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		top := func() *frame {
			if len(stack) == 0 {
				return nil
			}
			return stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &frame{obj: true, wantKey: true})
				continue
			case '[':
				stack = append(stack, &frame{})
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if fr := top(); fr != nil && fr.obj && fr.wantKey {
				for _, k := range fr.keys {
					if strings.EqualFold(k, v) {
						return true
					}
				}
				fr.keys = append(fr.keys, v)
				fr.wantKey = false
				continue
			}
		}
		if fr := top(); fr != nil && fr.obj {
			fr.wantKey = true
		}
	}
}
