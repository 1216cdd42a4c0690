// Package vectors holds the known-answer vectors of the SPD profile
// (reference/SPEC.md, Annex A): command and response bytes for every
// command, the pending record and every kind of coded medium, with the
// keys that made them. It only loads the file; each user checks the bytes
// with its own code, so that a layout bug shared by the reference device
// and the reference codec cannot hide behind them.
//
// The file is written by `go test ./reference/device -run TestVectors
// -update` and nothing else.
package vectors

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

//go:embed vectors.json
var file []byte

// JSON returns the vector file as committed (reference/vectors/vectors.json).
func JSON() []byte { return append([]byte(nil), file...) }

// File is the vector file. Byte strings are upper-case hex.
type File struct {
	Profile     string     `json:"profile"`
	Revision    string     `json:"revision"`
	Description string     `json:"description"`
	Keys        Keys       `json:"keys"`
	Peer        Peer       `json:"peer"`
	Sequences   []Sequence `json:"sequences"`
}

// Keys are the keys and identities every vector was made with.
type Keys struct {
	// CA is the issuer CA key: it certifies device keys and signs
	// PERSONALISE. Host signs ACKNOWLEDGE, UPDATE PARAMETERS, RECLAIM and
	// RESET RETRY COUNTER P1 01.
	CA   KeyPair `json:"ca"`
	Host KeyPair `json:"host"`
	// Device is the vector device: its ID, its key (fixed only for the
	// reference device that made the vectors) and its certificate.
	Device Device `json:"device"`
}

// KeyPair is a P-256 key: the 32-byte private scalar and the 65-byte
// uncompressed public point.
type KeyPair struct {
	Private string `json:"private"`
	Public  string `json:"public"`
}

// Device is a device identity with its key and certificate (X.509 DER).
type Device struct {
	ID          string `json:"id"`
	Private     string `json:"private"`
	Public      string `json:"public"`
	Certificate string `json:"certificate"`
}

// Peer is the second device whose media the vectors import and parse.
type Peer struct {
	Device
	StoredValue   string `json:"stored_value_medium"`
	Transfer      string `json:"transfer_medium"`
	PaymentResult string `json:"payment_result_medium"`
}

// Sequence is a run of steps on one device from blank.
type Sequence struct {
	Name         string   `json:"name"`
	Title        string   `json:"title"`
	Requirements []string `json:"requirements"`
	Steps        []Step   `json:"steps"`
}

// Step is one command and its answer.
type Step struct {
	Name    string `json:"name"`
	Command string `json:"command"`
	// Response is the response data followed by the status word. Unless
	// Raw is set it is the whole response, every 61xx followed by GET
	// RESPONSE (00 C0 00 00 xx) and the parts concatenated (SPD-APP-5).
	Response string `json:"response"`
	Raw      bool   `json:"raw,omitempty"`
	// Substitute names how a device with its own key changes the command
	// ("personalise": see Annex A).
	Substitute string     `json:"substitute,omitempty"`
	Variable   []Variable `json:"variable,omitempty"`
}

// Variable is a part of a response a device with its own key or random
// source fills differently; everything else is exact.
type Variable struct {
	// Path locates a data object: tags from the top of the response data
	// separated by "/", e.g. "61/DF11"; empty for the whole data field.
	Path string `json:"path"`
	// From and To select a byte range of the object's value (To 0: to
	// its end).
	From int `json:"from,omitempty"`
	To   int `json:"to,omitempty"`
	// Check is how to check it: device-key, certificate, random,
	// signature-medium, signature-envelope, signature-record,
	// signature-authenticate.
	Check string `json:"check"`
	// Offset and Length locate the variable bytes in this vector's
	// response, for reading the vector by eye.
	Offset int `json:"offset"`
	Length int `json:"length"`
}

// Load decodes the vector file.
func Load() (File, error) {
	var f File
	if err := json.Unmarshal(file, &f); err != nil {
		return File{}, fmt.Errorf("vectors: %w", err)
	}
	if len(f.Sequences) == 0 {
		return File{}, fmt.Errorf("vectors: no sequences")
	}
	return f, nil
}
