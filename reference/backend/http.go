package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

func (s *Server) routes() {
	m := http.NewServeMux()
	open, term, issuer := func(h http.HandlerFunc) http.HandlerFunc { return h },
		func(h http.HandlerFunc) http.HandlerFunc { return s.guard(RoleTerminal, h) },
		func(h http.HandlerFunc) http.HandlerFunc { return s.guard(RoleIssuer, h) }
	m.HandleFunc("GET /healthz", open(s.handleHealth))
	m.HandleFunc("GET /v1/keys", open(s.handleKeys))
	m.HandleFunc("POST /v1/devices", issuer(s.handleRegister))
	m.HandleFunc("GET /v1/devices/{id}", term(s.handleDevice))
	m.HandleFunc("POST /v1/devices/{id}/contact", term(s.handleContact))
	m.HandleFunc("POST /v1/devices/{id}/parameters", issuer(s.handleQueueParameter))
	m.HandleFunc("POST /v1/authorisations", term(s.handleAuthorise))
	m.HandleFunc("POST /v1/settlements", term(s.handleSettle))
	m.HandleFunc("POST /v1/tokens", term(s.handleMintToken))
	m.HandleFunc("GET /v1/tokens/{token}", term(s.handleToken))
	m.HandleFunc("POST /v1/otp", s.limitClient(term(s.handleRequestOTP)))
	m.HandleFunc("POST /v1/otp/verify", s.limitClient(term(s.handleVerifyOTP)))
	m.HandleFunc("POST /v1/assertions", s.limitClient(term(s.handleAssert)))
	m.HandleFunc("POST /v1/rates", term(s.handleRate))
	m.HandleFunc("GET /v1/devices/{id}/identity", term(s.handleIdentityQuestion))
	m.HandleFunc("POST /v1/revocations", issuer(s.handleRevoke))
	m.HandleFunc("GET /v1/revocations", term(s.handleRevocations))
	m.HandleFunc("POST /v1/transfers", term(s.handleTransfer))
	m.HandleFunc("GET /v1/transfers/{id}", term(s.handleGetTransfer))
	m.HandleFunc("POST /v1/transfers/{id}/claim", term(s.handleClaim))
	m.HandleFunc("POST /v1/transfers/{id}/reclaim", term(s.handleReclaim))
	m.HandleFunc("POST /v1/reclaims", term(s.handleReclaimOrder))
	m.HandleFunc("POST /v1/reversals", issuer(s.handleReverse))
	m.HandleFunc("GET /v1/audit", issuer(s.handleAudit))
	m.HandleFunc("POST /v1/payees", issuer(s.handleRegisterPayee))
	m.HandleFunc("GET /v1/payees/{payee}", s.payeeOrIssuer(s.handlePayee))
	m.HandleFunc("GET /v1/accounts/{id}/bill", issuer(s.handleBill))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, newErr(http.StatusNotFound, CodeNotFound, "no endpoint %s %s", r.Method, r.URL.Path))
	})
	s.mux = m
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{Code: CodeInternal, Reason: err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeErr(w http.ResponseWriter, err error) {
	ae := asAPIErr(err)
	writeJSON(w, ae.status, ae.body)
}

// decodeBody reads one JSON value of a bounded size into v: unknown fields,
// trailing data and oversized bodies are refused.
func decodeBody(r io.Reader, limit int64, v any) error {
	b, err := readBody(r, limit)
	if err != nil {
		return err
	}
	return decodeJSON(b, v)
}

// readBody reads at most limit bytes.
func readBody(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, newErr(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body over %d bytes", limit)
		}
		return nil, newErr(http.StatusBadRequest, CodeMalformed, "read body: %v", err)
	}
	if int64(len(b)) > limit {
		return nil, newErr(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body over %d bytes", limit)
	}
	return b, nil
}

// decodeJSON decodes exactly one JSON value with no unknown fields and no
// object naming a key twice.
func decodeJSON(b []byte, v any) error {
	if err := uniqueKeys(b); err != nil {
		return newErr(http.StatusBadRequest, CodeMalformed, "malformed JSON: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return newErr(http.StatusBadRequest, CodeMalformed, "malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return newErr(http.StatusBadRequest, CodeMalformed, "malformed JSON: data after the value")
	}
	return nil
}

func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	if err := decodeBody(r.Body, s.cfg.MaxBodyBytes, v); err != nil {
		writeErr(w, err)
		return false
	}
	return true
}

// DecodeSettlementBatch parses a settlement request body and every device
// record in it: the outside bytes the settlement endpoint takes. It checks
// form only (sizes, JSON, record encoding), not signatures or state.
func DecodeSettlementBatch(body []byte, maxRecords int) (SettlementBatch, []DeviceRecord, error) {
	var batch SettlementBatch
	if err := decodeJSON(body, &batch); err != nil {
		return batch, nil, err
	}
	if len(batch.BatchID) > 64 || !printable(batch.BatchID) {
		return batch, nil, newErr(http.StatusBadRequest, CodeMalformed, "batch_id: at most 64 printable characters")
	}
	if len(batch.Records) == 0 {
		return batch, nil, newErr(http.StatusBadRequest, CodeMalformed, "no records")
	}
	if len(batch.Records) > maxRecords {
		return batch, nil, newErr(http.StatusRequestEntityTooLarge, CodeTooLarge, "%d records, at most %d in a batch", len(batch.Records), maxRecords)
	}
	recs := make([]DeviceRecord, len(batch.Records))
	for i, raw := range batch.Records {
		rec, err := ParseDeviceRecord(raw)
		if err != nil {
			return batch, nil, newErr(http.StatusBadRequest, CodeMalformed, "record %d: %v", i, err).at(i)
		}
		recs[i] = rec
	}
	return batch, recs, nil
}

func pathID(r *http.Request, name string) (string, error) {
	v := r.PathValue(name)
	if v == "" || len(v) > 64 || !printable(v) {
		return "", newErr(http.StatusBadRequest, CodeMalformed, "%s: 1 to 64 printable characters", name)
	}
	return v, nil
}

func checkDeviceID(field, v string) error {
	if _, err := parseDeviceID(v); err != nil {
		return newErr(http.StatusBadRequest, CodeMalformed, "%s: %v", field, err)
	}
	return nil
}

func checkText(field, v string, min, max int) error {
	if len(v) < min || len(v) > max || !printable(v) {
		return newErr(http.StatusBadRequest, CodeMalformed, "%s: %d to %d printable characters", field, min, max)
	}
	return nil
}

func checkAmount(field string, v int64, allowZero bool) error {
	if v < 0 || v > maxAmount || (v == 0 && !allowZero) {
		return newErr(http.StatusBadRequest, CodeMalformed, "%s: %d out of range", field, v)
	}
	return nil
}

func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) {
	der, err := marshalPublicKey(&s.signer.PublicKey)
	if err != nil {
		writeErr(w, internal(err))
		return
	}
	writeJSON(w, http.StatusOK, PublicKey{PKIX: der})
}

func statusOr(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

// uniqueKeys refuses a JSON text in which an object names a key twice,
// the same or differing only in case: encoding/json keeps the last of
// them and matches a field's name in any case, where another reader of the
// same body (a gateway, an audit log) may take the first, so that the two
// would act on different requests. It scans the bytes once, unescaping
// only keys that hold an escape ("\u0061" is "a"); invalid JSON is left to
// the decoder.
func uniqueKeys(b []byte) error {
	type object struct {
		keys    []string        // the keys so far, folded (foldKey), while few
		many    map[string]bool // then
		wantKey bool
	}
	// stack holds the open objects and arrays, an array as nil.
	var stack []*object
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{':
			stack = append(stack, &object{wantKey: true})
		case '[':
			stack = append(stack, nil)
		case '}', ']':
			if len(stack) == 0 {
				return nil
			}
			stack = stack[:len(stack)-1]
		case ',':
			if len(stack) > 0 && stack[len(stack)-1] != nil {
				stack[len(stack)-1].wantKey = true
			}
		case '"':
			j, escaped := i+1, false
			for ; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
					escaped = true
				}
			}
			if j >= len(b) {
				return nil
			}
			if len(stack) > 0 && stack[len(stack)-1] != nil && stack[len(stack)-1].wantKey {
				o := stack[len(stack)-1]
				o.wantKey = false
				k := string(b[i+1 : j])
				if escaped && json.Unmarshal(b[i:j+1], &k) != nil {
					return nil
				}
				f := foldKey(k)
				if o.many == nil {
					if slices.Contains(o.keys, f) {
						return fmt.Errorf("key %q named twice in one object (keys are matched in any case)", k)
					}
					if o.keys = append(o.keys, f); len(o.keys) > 16 {
						o.many = map[string]bool{}
						for _, seen := range o.keys {
							o.many[seen] = true
						}
					}
				} else {
					if o.many[f] {
						return fmt.Errorf("key %q named twice in one object (keys are matched in any case)", k)
					}
					o.many[f] = true
				}
			}
			i = j
		}
	}
	return nil
}

// foldKey is k with each rune the least of its case-folding orbit
// (unicode.SimpleFold), so that two keys fold alike exactly when
// strings.EqualFold, which encoding/json matches field names by, finds
// them equal: "s", "S" and "ſ" all fold to "S", "k" and "K" (Kelvin) to
// "K", while "ı" (dotless i) stays apart from "i".
func foldKey(k string) string {
	ascii := true
	for i := 0; i < len(k) && ascii; i++ {
		ascii = k[i] < utf8.RuneSelf
	}
	if ascii {
		return strings.ToUpper(k)
	}
	var b strings.Builder
	for _, r := range k {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}
