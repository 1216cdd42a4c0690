package backend

import (
	"bytes"
	"encoding/json"
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
