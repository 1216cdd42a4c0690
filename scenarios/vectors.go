package scenarios

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/vectors"
)

// Known-answer vector cases (SPEC.md Annex A). Each runs one sequence of
// reference/vectors on a blank DUT and compares every answer with the
// vector's bytes: exactly, but for the parts the vector declares variable,
// which are checked as the annex says (the device's own key, its random
// values, its signatures). The file is read, the APDUs split, the TLVs
// walked and the signatures checked here with no help from reference/spd,
// so that a layout bug shared by the reference device and the reference
// codec fails these cases.

// katCases gives each vector sequence its stable case ID.
var katCases = []struct{ id, sequence string }{
	{"TC-KAT-001", "application"},
	{"TC-KAT-002", "verification"},
	{"TC-KAT-003", "biometric"},
	{"TC-KAT-004", "authentication"},
	{"TC-KAT-005", "payments"},
	{"TC-KAT-006", "payment-kinds"},
	{"TC-KAT-007", "location"},
	{"TC-KAT-008", "media"},
	{"TC-KAT-009", "tokens"},
	{"TC-KAT-010", "parse-medium"},
	{"TC-KAT-011", "transfers"},
	{"TC-KAT-012", "status-words"},
	{"TC-KAT-013", "test-erase"},
	{"TC-KAT-014", "parse-merchant"},
	{"TC-KAT-015", "stored-media"},
	{"TC-KAT-016", "present-code"},
	{"TC-KAT-017", "host-assertion"},
	{"TC-KAT-018", "exchange"},
	{"TC-KAT-019", "get-data-list"},
}

func defineVectors(d Driver) {
	file, loadErr := vectors.Load()
	Describe("Known-answer vectors", func() {
		for _, kc := range katCases {
			var seq *vectors.Sequence
			for i := range file.Sequences {
				if file.Sequences[i].Name == kc.sequence {
					seq = &file.Sequences[i]
				}
			}
			if seq == nil {
				It("MUST answer the "+kc.sequence+" vectors", Case(kc.id), func() {
					Fail(fmt.Sprintf("reference/vectors has no sequence %q (%v)", kc.sequence, loadErr))
				})
				continue
			}
			labels := append([]string{kc.id}, polarity(*seq)...)
			labels = append(labels, seq.Requirements...)
			It(fmt.Sprintf("MUST answer the %s vectors (%s) byte for byte outside their declared variable parts", seq.Name, seq.Title),
				Case(labels[0], labels[1:]...), func(ctx SpecContext) {
					runVectors(ctx, d, file, *seq)
				}, SpecTimeout(90*time.Second))
		}
	})
}

// katRun is one sequence's state on the DUT.
type katRun struct {
	file    vectors.File
	ca      *ecdsa.PrivateKey
	id      []byte
	vecPub  []byte // the vector device's key
	vecCert []byte
	devKey  *ecdsa.PublicKey // the DUT's key, from its INITIALISE answer
	devRaw  []byte
	cert    []byte // the certificate the DUT was personalised with
}

func unhexKAT(s string) []byte {
	GinkgoHelper()
	b, err := hex.DecodeString(s)
	Expect(err).NotTo(HaveOccurred(), "reference/vectors: hex")
	return b
}

func runVectors(ctx context.Context, d Driver, file vectors.File, seq vectors.Sequence) {
	needFresh(d)
	// The sequence's commands and its profile say which optional features
	// it needs: the case is not applicable without them, before it starts.
	for _, st := range seq.Steps {
		cmd := unhexKAT(st.Command)
		for _, c := range commandFeatures(cmd) {
			need(d, c)
		}
		if st.Substitute == "personalise" {
			objs, err := katParse(dataField(cmd))
			Expect(err).NotTo(HaveOccurred(), "reference/vectors: PERSONALISE data")
			for _, o := range objs {
				switch o.tag {
				case "DF58":
					need(d, Biometric)
				case "DF5C":
					need(d, Location)
				case "DF74":
					need(d, HostAssertion)
				}
			}
		}
	}
	k := &katRun{file: file, id: unhexKAT(file.Keys.Device.ID), vecPub: unhexKAT(file.Keys.Device.Public), vecCert: unhexKAT(file.Keys.Device.Certificate)}
	var err error
	k.ca, err = ecdsa.ParseRawPrivateKey(elliptic.P256(), unhexKAT(file.Keys.CA.Private))
	Expect(err).NotTo(HaveOccurred(), "reference/vectors: CA key")
	f := open(ctx, d)
	// A sample initialised here holds the vectors' CA key, not the lab's:
	// return it to blank with that key, as the lab's TEST ERASE cannot.
	DeferCleanup(func(ctx SpecContext) {
		vis, err := issuer.New("known-answer vectors", k.ca, nil)
		if err == nil {
			err = vis.Erase(ctx, f.Client)
		}
		if err != nil {
			AddReportEntry("cleanup", "TEST ERASE with the vectors' CA key: "+err.Error())
		}
	})
	// The vectors are written for a sample never erased (erase counter 0);
	// a sample the lab has erased before holds a higher counter, so TEST
	// ERASE orders and the DF2F answers move up by it (SPD-TST-2).
	shift := k.eraseShift(ctx, f, seq.Steps)
	skipNext := false
	for i, st := range seq.Steps {
		if skipNext {
			skipNext = false
			continue
		}
		where := fmt.Sprintf("%s step %d (%s)", seq.Name, i, st.Name)
		cmd := unhexKAT(st.Command)
		if st.Substitute == "personalise" {
			cmd, err = k.personalise(cmd)
			Expect(err).NotTo(HaveOccurred(), where)
		}
		want := unhexKAT(st.Response)
		if shift > 0 {
			cmd, want, err = k.shiftErase(cmd, want, shift)
			Expect(err).NotTo(HaveOccurred(), where)
		}
		got, err := katExchange(ctx, f, cmd, st.Raw)
		Expect(err).NotTo(HaveOccurred(), where)
		// A transport that resolves 61xx itself answers a raw chained step
		// with the whole response: the same bytes as this step and the
		// GET RESPONSE after it.
		if st.Raw && len(want) >= 2 && want[len(want)-2] == 0x61 && i+1 < len(seq.Steps) {
			next := seq.Steps[i+1]
			nextWant := unhexKAT(next.Response)
			joined := append(append([]byte(nil), want[:len(want)-2]...), nextWant...)
			if next.Raw && bytes.Equal(got, joined) {
				skipNext = true
				continue
			}
		}
		Expect(k.compare(st, cmd, want, got)).To(Succeed(), "%s\n command %X\n got      %X\n want     %X", where, cmd, got, want)
	}
}

// katExchange sends cmd and, unless raw, follows 61xx with GET RESPONSE,
// returning the data of every part and the last status word.
func katExchange(ctx context.Context, f *Fixture, cmd []byte, raw bool) ([]byte, error) {
	resp, err := f.rec.Link().Exchange(ctx, cmd)
	if err != nil || raw {
		return resp, err
	}
	var data []byte
	for i := 0; ; i++ {
		if len(resp) < 2 {
			return nil, fmt.Errorf("scenarios: response of %d bytes", len(resp))
		}
		data = append(data, resp[:len(resp)-2]...)
		if resp[len(resp)-2] != 0x61 {
			return append(data, resp[len(resp)-2:]...), nil
		}
		if i == 64 {
			return nil, errors.New("scenarios: more than 64 GET RESPONSE rounds")
		}
		if resp, err = f.rec.Link().Exchange(ctx, []byte{0x00, 0xC0, 0x00, 0x00, resp[len(resp)-1]}); err != nil {
			return nil, err
		}
	}
}

// compare checks a response against its vector.
func (k *katRun) compare(st vectors.Step, cmd, want, got []byte) error {
	if len(got) < 2 {
		return fmt.Errorf("scenarios: response of %d bytes", len(got))
	}
	if !bytes.Equal(got[len(got)-2:], want[len(want)-2:]) {
		return fmt.Errorf("scenarios: status word %X, want %X", got[len(got)-2:], want[len(want)-2:])
	}
	wd, gd := want[:len(want)-2], got[:len(got)-2]
	if len(st.Variable) == 0 {
		if bytes.Equal(wd, gd) {
			return nil
		}
		// Name the first object that differs when both read as BER-TLV.
		if wl, err := katParse(wd); err == nil {
			if gl, err := katParse(gd); err == nil {
				if err := k.walk("", wl, gl, nil, cmd, wd, gd, nil); err != nil {
					return fmt.Errorf("scenarios: %w", err)
				}
			}
		}
		return errors.New("scenarios: response data differs")
	}
	vars := map[string]vectors.Variable{}
	for _, v := range st.Variable {
		if v.Path == "" {
			if err := k.check(v, cmd, wd, gd, gd, katTLV{start: len(gd), valStart: len(gd), end: len(gd), valEnd: len(gd)}, nil); err != nil {
				return fmt.Errorf("scenarios: response data: %w", err)
			}
			return nil
		}
		vars[v.Path] = v
	}
	wl, err := katParse(wd)
	if err != nil {
		return fmt.Errorf("scenarios: vector: %w", err)
	}
	gl, err := katParse(gd)
	if err != nil {
		return fmt.Errorf("scenarios: response data: %w", err)
	}
	if err := k.walk("", wl, gl, vars, cmd, wd, gd, nil); err != nil {
		return fmt.Errorf("scenarios: %w", err)
	}
	return nil
}

func (k *katRun) walk(prefix string, wl, gl []katTLV, vars map[string]vectors.Variable, cmd, wd, gd []byte, parent *katTLV) error {
	if len(wl) != len(gl) {
		return fmt.Errorf("%s: objects %s, want %s", orTop(prefix), tagList(gl), tagList(wl))
	}
	for i := range wl {
		w, g := wl[i], gl[i]
		if w.tag != g.tag {
			return fmt.Errorf("%s: objects %s, want %s", orTop(prefix), tagList(gl), tagList(wl))
		}
		path := strings.TrimPrefix(prefix+"/"+w.tag, "/")
		if v, ok := vars[path]; ok {
			if err := k.check(v, cmd, wd[w.valStart:w.end], gd[g.valStart:g.end], gd, g, parent); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			continue
		}
		if w.constructed() {
			if err := k.walk(path, w.children, g.children, vars, cmd, wd, gd, &gl[i]); err != nil {
				return err
			}
			continue
		}
		if !bytes.Equal(wd[w.valStart:w.end], gd[g.valStart:g.end]) {
			return fmt.Errorf("%s: value %X, want %X", path, gd[g.valStart:g.end], wd[w.valStart:w.end])
		}
	}
	return nil
}

func orTop(p string) string {
	if p == "" {
		return "response"
	}
	return p
}

func tagList(l []katTLV) string {
	var s []string
	for _, o := range l {
		s = append(s, o.tag)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// check applies one variable part's check (SPEC.md Annex A) to the DUT's
// value g (the vector's is w). all is the whole response data, obj the
// object holding g, parent its enclosing object.
func (k *katRun) check(v vectors.Variable, cmd, w, g, all []byte, obj katTLV, parent *katTLV) error {
	switch v.Check {
	case "device-key":
		if len(g) != 65 || g[0] != 0x04 {
			return fmt.Errorf("device key of %d bytes, want a 65-byte uncompressed point", len(g))
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), g)
		if err != nil {
			return fmt.Errorf("device key: %w", err)
		}
		if k.devKey != nil && !bytes.Equal(k.devRaw, g) {
			return errors.New("device key differs from the one INITIALISE answered")
		}
		k.devKey, k.devRaw = pub, bytes.Clone(g)
		return nil
	case "certificate":
		if !bytes.Equal(g, k.cert) {
			return errors.New("not the certificate the device was personalised with")
		}
		return nil
	case "random":
		from, to := v.From, len(w)
		if v.To > 0 {
			to = v.To
		}
		if len(g) != len(w) || to > len(w) || !bytes.Equal(g[:from], w[:from]) || !bytes.Equal(g[to:], w[to:]) {
			return fmt.Errorf("%X does not match %X outside the random bytes %d..%d", g, w, from, to)
		}
		return nil
	}
	if k.devKey == nil {
		return errors.New("a signature before the device answered its key")
	}
	var msg []byte
	switch v.Check {
	case "signature-medium":
		msg = all[:obj.start]
	case "signature-envelope":
		// A medium envelope (SPEC.md 7.1) carried as a value, as the
		// payment code's DF60: everything before its 9F45 as the vector
		// has it, then a signature by the device key over those bytes.
		wl, err := katParse(w)
		if err != nil || len(wl) != 3 || wl[2].tag != "9F45" {
			return fmt.Errorf("vector: %X is not an envelope", w)
		}
		gl, err := katParse(g)
		if err != nil {
			return fmt.Errorf("envelope: %w", err)
		}
		if len(gl) != 3 || gl[2].tag != "9F45" {
			return fmt.Errorf("envelope objects %s, want [85 61 9F45]", tagList(gl))
		}
		if !bytes.Equal(g[:gl[2].start], w[:wl[2].start]) {
			if err := k.walk("envelope", wl[:2], gl[:2], nil, cmd, w, g, nil); err != nil {
				return err
			}
			return fmt.Errorf("envelope %X, want %X before its signature", g[:gl[2].start], w[:wl[2].start])
		}
		msg, sig := g[:gl[2].start], g[gl[2].valStart:gl[2].end]
		digest := sha256.Sum256(msg)
		if !ecdsa.VerifyASN1(k.devKey, digest[:], sig) {
			return fmt.Errorf("envelope signature %X does not verify with the device key", sig)
		}
		return nil
	case "signature-record":
		if parent == nil || parent.tag != "E1" {
			return errors.New("record signature outside E1")
		}
		msg = append([]byte("SPDLAB-PR1"), all[parent.valStart:obj.start]...)
	case "signature-authenticate":
		msg = append(append([]byte("SPDLAB-IA1"), k.id...), dataField(cmd)...)
	default:
		return fmt.Errorf("unknown check %q", v.Check)
	}
	digest := sha256.Sum256(msg)
	if !ecdsa.VerifyASN1(k.devKey, digest[:], g) {
		return fmt.Errorf("%s %X does not verify with the device key", v.Check, g)
	}
	return nil
}

// personalise makes the PERSONALISE of the vectors for the DUT's key
// (Annex A, substitution): a certificate with the vector certificate's
// fields for the DUT's key, in place of DF11, the body signed again with
// the CA key. A DUT with the vector device's key gets the command as is.
func (k *katRun) personalise(cmd []byte) ([]byte, error) {
	if k.devKey == nil {
		return nil, errors.New("scenarios: PERSONALISE before INITIALISE answered the device key")
	}
	if bytes.Equal(k.devRaw, k.vecPub) {
		k.cert = k.vecCert
		return cmd, nil
	}
	vc, err := x509.ParseCertificate(k.vecCert)
	if err != nil {
		return nil, fmt.Errorf("scenarios: vector certificate: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: vc.SerialNumber, Subject: vc.Subject, NotBefore: vc.NotBefore, NotAfter: vc.NotAfter,
		KeyUsage: vc.KeyUsage, SignatureAlgorithm: x509.ECDSAWithSHA256}
	parent := &x509.Certificate{RawSubject: vc.RawIssuer, SubjectKeyId: vc.AuthorityKeyId}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, parent, k.devKey, k.ca)
	if err != nil {
		return nil, fmt.Errorf("scenarios: certificate for the device key: %w", err)
	}
	data := dataField(cmd)
	objs, err := katParse(data)
	if err != nil {
		return nil, err
	}
	var body []byte
	for _, o := range objs {
		switch o.tag {
		case "9F45":
		case "DF11":
			body = append(body, katEncode([]byte{0xDF, 0x11}, cert)...)
		default:
			body = append(body, data[o.start:o.end]...)
		}
	}
	k.cert = cert
	AddReportEntry("substitution", "PERSONALISE: the DUT's own key "+hex.EncodeToString(k.devRaw)+
		" certified by the vectors' CA key in place of the vector device's (SPEC.md Annex A); every other command as in the file")
	return k.sealOrder(cmd, body)
}

// sealOrder makes the CA-signed order of SPD-KEY-3 for the vector device
// with cmd's header and body: body, then 9F45 over "SPDLAB-ISS1", INS,
// device ID and body, as a case 3 command (extended Lc over 255 bytes).
func (k *katRun) sealOrder(cmd, body []byte) ([]byte, error) {
	digest := sha256.Sum256(append(append(append([]byte("SPDLAB-ISS1"), cmd[1]), k.id...), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.ca, digest[:])
	if err != nil {
		return nil, fmt.Errorf("scenarios: signing %X: %w", cmd[:2], err)
	}
	data := append(bytes.Clone(body), katEncode([]byte{0x9F, 0x45}, sig)...)
	out := append([]byte(nil), cmd[:4]...)
	if len(data) > 255 {
		out = append(out, 0x00, byte(len(data)>>8), byte(len(data)))
	} else {
		out = append(out, byte(len(data)))
	}
	return append(out, data...), nil
}

// katTLV is one BER-TLV object of a buffer: offsets of its tag, value and
// end.
type katTLV struct {
	tag                  string
	start, valStart, end int
	valEnd               int
	children             []katTLV
}

func (o katTLV) constructed() bool {
	b, _ := hex.DecodeString(o.tag[:2])
	return b[0]&0x20 != 0
}

// katParse reads b as a sequence of BER-TLV objects (ISO/IEC 7816-4: tags
// of 1 to 3 bytes, definite lengths), constructed ones recursively.
func katParse(b []byte) ([]katTLV, error) { return katParseAt(b, 0, len(b), 0) }

func katParseAt(b []byte, from, to, depth int) ([]katTLV, error) {
	if depth > 8 {
		return nil, errors.New("scenarios: TLV nested too deep")
	}
	var out []katTLV
	for p := from; p < to; {
		o := katTLV{start: p}
		q := p + 1
		if b[p]&0x1F == 0x1F {
			for {
				if q >= to || q-p > 2 {
					return nil, fmt.Errorf("scenarios: TLV tag at %d too long or cut", p)
				}
				q++
				if b[q-1]&0x80 == 0 {
					break
				}
			}
		}
		o.tag = strings.ToUpper(hex.EncodeToString(b[p:q]))
		if q >= to {
			return nil, fmt.Errorf("scenarios: TLV %s at %d has no length", o.tag, p)
		}
		n := int(b[q])
		q++
		if n > 0x80 {
			m := n & 0x7F
			if m > 3 || q+m > to {
				return nil, fmt.Errorf("scenarios: TLV %s at %d: length cut or too long", o.tag, p)
			}
			n = 0
			for _, c := range b[q : q+m] {
				n = n<<8 | int(c)
			}
			q += m
		} else if n == 0x80 {
			return nil, fmt.Errorf("scenarios: TLV %s at %d: indefinite length", o.tag, p)
		}
		if q+n > to {
			return nil, fmt.Errorf("scenarios: TLV %s at %d: value of %d bytes cut", o.tag, p, n)
		}
		o.valStart, o.end, o.valEnd = q, q+n, q+n
		if o.constructed() {
			c, err := katParseAt(b, q, q+n, depth+1)
			if err != nil {
				return nil, err
			}
			o.children = c
		}
		out = append(out, o)
		p = q + n
	}
	return out, nil
}

// katEncode encodes one object with a minimal definite length.
func katEncode(tag, value []byte) []byte {
	out := append([]byte(nil), tag...)
	switch n := len(value); {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	default:
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	return append(out, value...)
}

// eraseShift is the erase counter of the blank sample f when the steps
// use TEST ERASE, else 0.
func (k *katRun) eraseShift(ctx context.Context, f *Fixture, steps []vectors.Step) uint32 {
	GinkgoHelper()
	uses := false
	for _, st := range steps {
		cmd := unhexKAT(st.Command)
		if len(cmd) >= 2 && cmd[0] == 0x80 && cmd[1] == byte(spd.INSTestErase) || readsEraseCounter(cmd) {
			uses = true
		}
	}
	if !uses {
		return 0
	}
	_, err := f.Client.Select(ctx)
	Expect(err).NotTo(HaveOccurred())
	resp, err := f.rec.Link().Exchange(ctx, []byte{0x00, 0xCA, 0xDF, 0x2F, 0x00})
	Expect(err).NotTo(HaveOccurred())
	Expect(resp).To(HaveLen(9), "GET DATA DF2F of a blank sample: % X", resp)
	Expect(resp[:3]).To(Equal([]byte{0xDF, 0x2F, 0x04}), "GET DATA DF2F of a blank sample: % X", resp)
	return binary.BigEndian.Uint32(resp[3:7])
}

// readsEraseCounter reports whether cmd reads the erase counter: GET DATA
// DF2F, or a GET DATA list (SPEC.md 4.2.1) that names DF2F.
func readsEraseCounter(cmd []byte) bool {
	if bytes.Equal(cmd, []byte{0x00, 0xCA, 0xDF, 0x2F, 0x00}) {
		return true
	}
	if len(cmd) < 5 || cmd[0] != 0x00 || cmd[1] != byte(spd.INSGetDataList) {
		return false
	}
	tags, err := spd.ParseGetDataList(dataField(cmd))
	return err == nil && slices.Contains(tags, spd.TagEraseCounter)
}

// shiftErase moves a TEST ERASE order's counter, re-signed with the
// vectors' CA key, and the DF2F object of a GET DATA or GET DATA list
// answer, up by shift.
func (k *katRun) shiftErase(cmd, want []byte, shift uint32) ([]byte, []byte, error) {
	switch {
	case len(cmd) >= 2 && cmd[0] == 0x80 && cmd[1] == byte(spd.INSTestErase):
		data := dataField(cmd)
		objs, err := katParse(data)
		if err != nil || len(objs) == 0 || objs[0].tag != "DF2F" || objs[0].valEnd-objs[0].valStart != 4 {
			return nil, nil, fmt.Errorf("TEST ERASE vector without a leading DF2F counter: %X", cmd)
		}
		n := binary.BigEndian.Uint32(data[objs[0].valStart:objs[0].valEnd]) + shift
		b, err := k.sealOrder(cmd, katEncode([]byte{0xDF, 0x2F}, binary.BigEndian.AppendUint32(nil, n)))
		return b, want, err
	case readsEraseCounter(cmd) && len(want) >= 2:
		// The answer's data objects, when it has them (a refusal is the
		// status word alone): DF2F's value moves up by shift.
		objs, err := katParse(want[:len(want)-2])
		if err != nil {
			return cmd, want, nil
		}
		w := bytes.Clone(want)
		for _, o := range objs {
			if o.tag == "DF2F" && o.valEnd-o.valStart == 4 {
				binary.BigEndian.PutUint32(w[o.valStart:o.valEnd], binary.BigEndian.Uint32(want[o.valStart:o.valEnd])+shift)
			}
		}
		return cmd, w, nil
	}
	return cmd, want, nil
}

// polarity labels a vector sequence Positive, and Negative too when one
// of its steps expects a refusal status word.
func polarity(seq vectors.Sequence) []string {
	for _, st := range seq.Steps {
		r, err := hex.DecodeString(st.Response)
		if err == nil && len(r) >= 2 && refusalWord(apdu.SW(uint16(r[len(r)-2])<<8|uint16(r[len(r)-1]))) {
			return []string{Positive, Negative}
		}
	}
	return []string{Positive}
}
