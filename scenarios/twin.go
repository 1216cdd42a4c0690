package scenarios

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
	"github.com/spdlab/spdlab/reference/vectors"
	"github.com/spdlab/spdlab/rigs/dut"
	"github.com/spdlab/spdlab/rigs/link"
)

// A differential run (`--against ref`) gives every device the suite opens
// a twin: a new reference device that receives the same commands in
// twinLink. The first response in which the device under test and its twin
// differ is reported, even where no case asserts anything, so a vendor sees
// divergence early. Every byte of every response is compared but for the
// device's own values of SPEC.md section 1.3 (ownValue): signatures are
// skipped; the device's key, certificate, challenges, token values and
// payment nonces are paired with the twin's at their first appearance and
// must then stay consistent. Where a command carries something of the
// device's own (its certificate in PERSONALISE, a token it generated), the
// twin is sent its own instead.

// Divergence is the first response in which a device and its reference
// twin differed.
type Divergence struct {
	Case      string `json:"case"`
	Command   string `json:"command"`                // hex, as sent to the device under test
	Name      string `json:"name"`                   // the command's name in SPEC.md
	Device    string `json:"device"`                 // hex response of the device under test
	Reference string `json:"reference"`              // hex response of the reference twin
	Why       string `json:"why"`                    // what differs
	TwinCmd   string `json:"twin_command,omitempty"` // hex, when the twin was sent its own form
}

func (v Divergence) String() string {
	s := fmt.Sprintf("%s: %s %s\n  device    %s\n  reference %s\n  (%s)", v.Case, v.Name, v.Command, v.Device, v.Reference, v.Why)
	if v.TwinCmd != "" {
		s += "\n  twin sent " + v.TwinCmd
	}
	return s
}

// differential collects the divergences of a run.
type differential struct {
	mu    sync.Mutex
	found []Divergence
}

// Divergences lists the first divergence of each device that diverged,
// in the order found.
func (d *DUTDriver) Divergences() []Divergence {
	d.diff.mu.Lock()
	defer d.diff.mu.Unlock()
	return append([]Divergence(nil), d.diff.found...)
}

func (d *DUTDriver) twin(ctx context.Context, dev *Device) (*Device, error) {
	if d.Against == "" {
		return dev, nil
	}
	if d.Against != "ref" {
		return nil, fmt.Errorf("scenarios: --against %q: only ref is a reference", d.Against)
	}
	// The reference twin has the capacities the DUT's statement declares:
	// it is the device the statement describes.
	ref, err := dut.Open(ctx, "ref", dut.Options{Device: withCapacities(device.Config{}, d.statement().Capacities)})
	if err != nil {
		return nil, err
	}
	l := &twinLink{dut: dev.Link, ref: ref.Link, diff: &d.diff, issuers: d.knownIssuers(), tokens: map[string][]byte{}}
	// The twin has exactly the DUT link's abilities (link.Compose): a
	// reset or power cycle goes to both devices, and one the DUT's link
	// lacks is not offered.
	var a link.Abilities
	has := link.AbilitiesOf(dev.Link)
	if has.Resetter != nil {
		a.Resetter = l
	}
	if has.PowerCycler != nil {
		a.PowerCycler = l
	}
	if has.ATRer != nil {
		a.ATRer = l
	}
	if has.Raw != nil {
		// The device's own chaining is checked against the twin's whole
		// answers (twinRaw, exchange).
		l.dutRaw = has.Raw
		a.Raw = twinRaw{l}
	}
	closeDUT := dev.Close
	return &Device{Link: link.Compose(l, a), TearAt: dev.TearAt, Close: func() error {
		return errors.Join(closeDUT(), ref.Close())
	}}, nil
}

// knownIssuers are the CA keys the lab holds: its test issuer's, the
// known-answer vectors' and those of the issuers cases made themselves to
// initialise devices with (newIssuer).
func (d *DUTDriver) knownIssuers() []*ecdsa.PrivateKey {
	keys := []*ecdsa.PrivateKey{d.Issuer().CA}
	caseIssuers.Lock()
	keys = append(keys, caseIssuers.keys...)
	caseIssuers.Unlock()
	if f, err := vectors.Load(); err == nil {
		if b, err := hex.DecodeString(f.Keys.CA.Private); err == nil {
			if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b); err == nil {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// caseIssuers are the CA keys of the issuers cases made with newIssuer.
var caseIssuers struct {
	sync.Mutex
	keys []*ecdsa.PrivateKey
}

// newIssuer makes an issuer for a case that initialises a device with its
// CA key, and lets a reference twin (--against ref) know the key, as it
// knows the lab's: the twin then personalises itself with that issuer's
// certificates as the device under test is, rather than diverging at
// every PERSONALISE that follows.
func newIssuer(name string) (*issuer.Issuer, error) {
	is, err := issuer.Generate(name)
	if err != nil {
		return nil, err
	}
	caseIssuers.Lock()
	caseIssuers.keys = append(caseIssuers.keys, is.CA)
	caseIssuers.Unlock()
	return is, nil
}

// twinLink is a device under test and its reference twin behind one link.
type twinLink struct {
	dut, ref link.Link
	diff     *differential
	issuers  []*ecdsa.PrivateKey

	ca       *ecdsa.PrivateKey // the CA loaded by the last INITIALISE, when the lab holds it
	id       []byte            // device ID of the last INITIALISE
	dutKey   []byte            // the device's public key (INITIALISE answer)
	refKey   []byte            // the twin's
	tokens   map[string][]byte // the device's token -> the twin's (commands are translated)
	nonces   map[string]bool   // the terminal nonces (9F37) PAY and PRESENT CODE carried
	pairs    map[string][]byte // a value of the twin's own -> the device's (SPEC.md 1.3)
	shown    map[string][]byte // a value of the device's own -> the twin's
	chain    *twinChain        // a long answer the device is handing out
	dutRaw   link.RawExchanger // the device's raw exchanges, nil without
	eraseOff uint32            // the device's erase counter minus the twin's
	diverged bool              // compare no more: reported, or lost step
}

var _ link.Wrapper = (*twinLink)(nil)

func (l *twinLink) String() string { return l.dut.String() + " (against ref)" }
func (l *twinLink) Close() error   { return nil } // the Device's Close closes both
func (l *twinLink) Unwrap() link.Link {
	return l.dut
}

func (l *twinLink) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	return l.exchange(ctx, cmd, l.dut.Exchange, false)
}

// twinRaw is the twin's link.RawExchanger.
type twinRaw struct{ l *twinLink }

func (r twinRaw) ExchangeRaw(ctx context.Context, cmd []byte) ([]byte, error) {
	return r.l.exchange(ctx, cmd, r.l.dutRaw.ExchangeRaw, true)
}

// exchange sends cmd to the device with send (its Exchange, or its
// ExchangeRaw when raw) and the same command to the twin, answered whole
// (twinLink.whole): a long answer the device hands out in parts (61xx) is
// compared once whole, where its own values (SPEC.md 1.3) can be told
// apart. Of raw parts, each part's length and 61xx count are checked
// against the whole (SPD-APP-5), and a GET RESPONSE the device refuses
// while parts are pending ends them: it goes to the twin, which has none
// pending and answers it the same way (6A86 for P1-P2 not 00 00, 6985 with
// a data field).
func (l *twinLink) exchange(ctx context.Context, cmd []byte, send func(context.Context, []byte) ([]byte, error), raw bool) ([]byte, error) {
	got, err := send(ctx, cmd)
	if l.diverged {
		return got, err
	}
	if err != nil {
		// A tear or a removal: the twin cannot follow the device's state.
		l.diverged = true
		return got, err
	}
	if c := l.chain; c != nil && isGetResponse(cmd) && (!raw || more(got) || okSW(got)) {
		// The device hands out the rest of a long answer; the twin's whole
		// answer is already here.
		c.add(cmd, got)
		if more(got) {
			return got, nil
		}
		l.chain = nil
		if raw {
			if i, why := c.counts(); why != "" {
				l.report(c.cmds[i], c.cmds[i], c.answers[i], nil, why)
				return got, nil
			}
		}
		l.check(c.cmd, c.twinCmd, append(c.data, got[len(got)-2:]...), c.twin)
		return got, nil
	}
	l.chain = nil
	l.noteNonce(cmd)
	twinCmd := l.translate(cmd)
	want, rerr := l.whole(ctx, twinCmd)
	if rerr != nil {
		l.diverged = true
		return got, nil
	}
	// (Where the twin refused the command, a raw 61xx of the device's is a
	// divergence at once: check reports it.)
	if len(got) >= 2 && more(got) && (!raw || okSW(want)) {
		l.chain = &twinChain{cmd: cmd, twinCmd: twinCmd, twin: want}
		l.chain.add(cmd, got)
		return got, nil
	}
	l.check(cmd, twinCmd, got, want)
	return got, nil
}

// noteNonce keeps the terminal nonce (9F37) a PAY, PRESENT CODE or EXCHANGE carries:
// a record showing it holds the terminal's, not one of the device's own.
func (l *twinLink) noteNonce(cmd []byte) {
	c, err := apdu.ParseCommand(cmd)
	if err != nil || c.CLA != spd.CLAProprietary || (spd.INS(c.INS) != spd.INSPay && spd.INS(c.INS) != spd.INSPresentCode && spd.INS(c.INS) != spd.INSExchange) {
		return
	}
	if n := tagIn(c.Data, spd.TagTerminalNonce); n != nil {
		if l.nonces == nil {
			l.nonces = map[string]bool{}
		}
		l.nonces[string(n)] = true
	}
}

// twinChain is a long answer the device hands out in parts (61xx).
type twinChain struct {
	cmd, twinCmd, data, twin []byte
	// The parts the device answered: each command and its answer.
	cmds, answers [][]byte
}

// add keeps a part the device answered to cmd.
func (c *twinChain) add(cmd, answer []byte) {
	c.data = append(c.data, answer[:len(answer)-2]...)
	c.cmds = append(c.cmds, bytes.Clone(cmd))
	c.answers = append(c.answers, bytes.Clone(answer))
}

// counts checks the parts against the whole (SPD-APP-5): each part but
// the last is its command's Ne bytes, with 61xx counting the bytes left
// after it (00 for 256 or more); the last is at most its command's Ne. It
// returns the first part that breaks this and why.
func (c *twinChain) counts() (int, string) {
	left := len(c.data)
	for i, a := range c.answers {
		n := len(a) - 2
		left -= n
		ne := apdu.MaxShortLe
		if p, err := apdu.ParseCommand(c.cmds[i]); err == nil && p.Ne > 0 {
			ne = p.Ne
		}
		if !more(a) {
			if n > ne {
				return i, fmt.Sprintf("the last part is %d bytes, more than the command's Ne %d", n, ne)
			}
			continue
		}
		want := byte(left)
		if left >= 256 {
			want = 0
		}
		switch {
		case n != ne:
			return i, fmt.Sprintf("part %d is %d bytes where the command's Ne is %d and more remained", i+1, n, ne)
		case a[n+1] != want:
			return i, fmt.Sprintf("part %d ends 61%02X, but %d bytes remained (61%02X)", i+1, a[n+1], left, want)
		}
	}
	return 0, ""
}

func more(r []byte) bool { return len(r) >= 2 && r[len(r)-2] == 0x61 }

func isGetResponse(cmd []byte) bool {
	return len(cmd) >= 2 && cmd[0] == 0x00 && cmd[1] == byte(spd.INSGetResponse)
}

// whole sends cmd to the twin and fetches every part of its answer.
func (l *twinLink) whole(ctx context.Context, cmd []byte) ([]byte, error) {
	resp, err := l.ref.Exchange(ctx, cmd)
	var data []byte
	for i := 0; err == nil && more(resp) && i < 256; i++ {
		data = append(data, resp[:len(resp)-2]...)
		resp, err = l.ref.Exchange(ctx, []byte{0x00, byte(spd.INSGetResponse), 0x00, 0x00, resp[len(resp)-1]})
	}
	if err != nil {
		return nil, err
	}
	return append(data, resp...), nil
}

// check compares the device's whole answer to cmd with the twin's and
// records the first divergence.
func (l *twinLink) check(cmd, twinCmd, got, want []byte) {
	l.learn(cmd, got, want)
	if why := l.compare(cmd, got, want); why != "" {
		l.report(cmd, twinCmd, got, want, why)
	}
}

// report records the first divergence: the device's answer got to cmd
// differs from the twin's want to twinCmd, as why says.
func (l *twinLink) report(cmd, twinCmd, got, want []byte, why string) {
	l.diverged = true
	v := Divergence{Case: currentCase(), Command: strings.ToUpper(hex.EncodeToString(cmd)), Name: commandName(cmd),
		Device: strings.ToUpper(hex.EncodeToString(got)), Reference: strings.ToUpper(hex.EncodeToString(want)), Why: why}
	if !bytes.Equal(cmd, twinCmd) {
		v.TwinCmd = strings.ToUpper(hex.EncodeToString(twinCmd))
	}
	l.diff.mu.Lock()
	l.diff.found = append(l.diff.found, v)
	l.diff.mu.Unlock()
	if CurrentSpecReport().LeafNodeText != "" {
		AddReportEntry("divergence from the reference device", v.String())
	}
}

func currentCase() string {
	if id := CurrentCase(); id != "" {
		return id
	}
	return "(outside a case)"
}

func commandName(cmd []byte) string {
	if len(cmd) < 2 {
		return "malformed APDU"
	}
	return spd.INS(cmd[1]).String()
}

// translate gives the twin its own form of a command: PERSONALISE with a
// certificate of the twin's key, tokens the twin generated.
func (l *twinLink) translate(cmd []byte) []byte {
	out := cmd
	if len(cmd) >= 2 && cmd[0] == 0x80 && cmd[1] == byte(spd.INSPersonalise) && l.ca != nil && l.refKey != nil {
		if t, ok := l.personalise(cmd); ok {
			out = t
		}
	}
	if len(cmd) >= 2 && cmd[0] == 0x80 && cmd[1] == byte(spd.INSTestErase) && l.ca != nil && l.eraseOff != 0 {
		if t, ok := l.testErase(cmd); ok {
			out = t
		}
	}
	for dutTok, refTok := range l.tokens {
		out = bytes.ReplaceAll(out, []byte(dutTok), refTok)
	}
	return out
}

// testErase moves a TEST ERASE order the lab's CA signed to the twin's
// erase counter.
func (l *twinLink) testErase(cmd []byte) ([]byte, bool) {
	c, err := apdu.ParseCommand(cmd)
	if err != nil {
		return nil, false
	}
	body, err := spd.OpenIssuerData(&l.ca.PublicKey, spd.INSTestErase, l.id, c.Data)
	if err != nil {
		return nil, false
	}
	n, err := spd.ParseTestErase(body)
	if err != nil {
		return nil, false
	}
	t, err := spd.TestErase(l.ca, l.id, n-l.eraseOff)
	if err != nil {
		return nil, false
	}
	c.Data = t.Data // the rest of the command, right or wrong, as the device got it
	b, err := c.Bytes()
	return b, err == nil
}

// personalise re-issues a PERSONALISE the lab's CA signed for the device's
// own key as the same order for the twin's key.
func (l *twinLink) personalise(cmd []byte) ([]byte, bool) {
	c, err := apdu.ParseCommand(cmd)
	if err != nil {
		return nil, false
	}
	body, err := spd.OpenIssuerData(&l.ca.PublicKey, spd.INSPersonalise, l.id, c.Data)
	if err != nil {
		return nil, false
	}
	objs, err := tlv.Parse(body)
	if err != nil {
		return nil, false
	}
	pub, id, err := spd.VerifyDeviceCertificate(objValue(objs, spd.TagCertificate), &l.ca.PublicKey)
	if err != nil || !bytes.Equal(id, l.id) || !bytes.Equal(spd.PublicKeyBytes(pub), l.dutKey) {
		return nil, false // not an order for this device's key: the twin gets it as it is
	}
	refPub, err := spd.ParsePublicKey(l.refKey)
	if err != nil {
		return nil, false
	}
	is, err := issuer.New("reference twin", l.ca, nil)
	if err != nil {
		return nil, false
	}
	cert, err := is.Certify(l.id, refPub)
	if err != nil {
		return nil, false
	}
	for i := range objs {
		if objs[i].Tag == spd.TagCertificate {
			objs[i] = tlv.TLV{Tag: spd.TagCertificate, Value: cert}
		}
	}
	nb, err := tlv.Encode(objs...)
	if err != nil {
		return nil, false
	}
	data, err := spd.SealIssuerData(l.ca, spd.INSPersonalise, l.id, nb)
	if err != nil {
		return nil, false
	}
	c.Data = data
	b, err := c.Bytes()
	return b, err == nil
}

func objValue(objs []tlv.TLV, tag tlv.Tag) []byte {
	for _, o := range objs {
		if o.Tag == tag {
			return o.Value
		}
	}
	return nil
}

// learn keeps what later commands need: the CA, device ID and keys of
// INITIALISE, and the tokens GENERATE TOKEN made.
func (l *twinLink) learn(cmd, got, want []byte) {
	if !okSW(got) || !okSW(want) || len(cmd) < 2 {
		return
	}
	if bytes.Equal(cmd[:min(len(cmd), 4)], []byte{0x00, 0xCA, 0xDF, 0x2F}) {
		d, r := tagIn(got[:len(got)-2], spd.TagEraseCounter), tagIn(want[:len(want)-2], spd.TagEraseCounter)
		if len(d) == 4 && len(r) == 4 {
			l.eraseOff = binary.BigEndian.Uint32(d) - binary.BigEndian.Uint32(r)
		}
		return
	}
	if cmd[0] != 0x80 {
		return
	}
	switch spd.INS(cmd[1]) {
	case spd.INSInitialise:
		c, err := apdu.ParseCommand(cmd)
		if err != nil {
			return
		}
		ca, id, err := spd.ParseInitialise(c.Data)
		if err != nil {
			return
		}
		l.ca, l.id = nil, id
		for _, k := range l.issuers {
			if k.PublicKey.Equal(ca) {
				l.ca = k
			}
		}
		l.dutKey = tagIn(got[:len(got)-2], spd.TagDevicePublicKey)
		l.refKey = tagIn(want[:len(want)-2], spd.TagDevicePublicKey)
	}
}

func okSW(r []byte) bool { return len(r) >= 2 && r[len(r)-2] == 0x90 && r[len(r)-1] == 0x00 }

// tagIn finds the first object with tag anywhere in a TLV tree.
func tagIn(b []byte, tag tlv.Tag) []byte {
	objs, err := tlv.Parse(b)
	if err != nil {
		return nil
	}
	var find func([]tlv.TLV) []byte
	find = func(os []tlv.TLV) []byte {
		for _, o := range os {
			if o.Tag == tag {
				return o.Value
			}
			if v := find(o.Children); v != nil {
				return v
			}
		}
		return nil
	}
	return find(objs)
}

// Own values (SPEC.md section 1.3): what two conforming devices given the
// same commands answer differently. A signature differs every time and is
// not compared; the erase counter counts a sample's history and TEST ERASE
// orders are moved by the difference (learn, translate); every other own
// value is paired with the twin's at its first appearance (pair).
type own int

const (
	notOwn own = iota
	ownSignature
	ownHistory
	ownPaired
)

// ownValue classifies the object tag, a child of parent (0 at the top),
// among its siblings, in the answer to cmd, by SPEC.md section 1.3.
func (l *twinLink) ownValue(cmd []byte, parent tlv.Tag, siblings []tlv.TLV, tag tlv.Tag, twin []byte) own {
	if len(cmd) >= 2 && cmd[0] == spd.CLAProprietary && (spd.INS(cmd[1]) == spd.INSParseMedium || spd.INS(cmd[1]) == spd.INSReadMedia) {
		// What PARSE MEDIUM and SHOW MEDIUM answer is another's medium, or
		// one stored on the device, exactly: none of it is the device's own.
		return notOwn
	}
	switch {
	case tag == spd.TagSignature:
		return ownSignature
	case tag == spd.TagEraseCounter:
		return ownHistory
	case tag == spd.TagDevicePublicKey, tag == spd.TagCertificate:
		return ownPaired
	case tag == spd.TagToken && parent == medium.TagAppTemplate && bytes.Equal(objValue(siblings, medium.TagKind), []byte{byte(medium.KindToken)}):
		return ownPaired // a token the device made: 12 random bytes, then the ATC
	case tag == spd.TagTerminalNonce && parent == spd.TagRecord && !l.nonces[string(twin)]:
		return ownPaired // the twin drew it: the command carried none
	}
	return notOwn
}

// pair checks a value of the device's own (what, g) against the twin's
// (w), of the same length unless it is a certificate: the first time either appears they are paired; from then on the
// device must show g wherever the twin shows w, and never show g for
// another of the twin's values.
func (l *twinLink) pair(what string, g, w []byte, sameLength bool) string {
	if sameLength && len(g) != len(w) {
		return fmt.Sprintf("%s of %d bytes, the reference's of %d", what, len(g), len(w))
	}
	if l.pairs == nil {
		l.pairs, l.shown = map[string][]byte{}, map[string][]byte{}
	}
	if p, ok := l.pairs[string(w)]; ok {
		if !bytes.Equal(p, g) {
			return fmt.Sprintf("%s is %X, where the device showed %X before", what, g, p)
		}
		return ""
	}
	if q, ok := l.shown[string(g)]; ok && !bytes.Equal(q, w) {
		return fmt.Sprintf("%s %X repeats a value the device showed for another of the reference's", what, g)
	}
	l.pairs[string(w)], l.shown[string(g)] = bytes.Clone(g), bytes.Clone(w)
	return ""
}

// compare says how the device's answer differs from the twin's, or "".
func (l *twinLink) compare(cmd, got, want []byte) string {
	if len(got) < 2 || len(want) < 2 {
		return fmt.Sprintf("answers of %d and %d bytes", len(got), len(want))
	}
	gsw, wsw := got[len(got)-2:], want[len(want)-2:]
	if !bytes.Equal(gsw, wsw) {
		return fmt.Sprintf("status word %X, the reference answers %X", gsw, wsw)
	}
	gd, wd := got[:len(got)-2], want[:len(want)-2]
	if len(cmd) >= 2 && cmd[0] == 0x00 {
		// Answers that are one own value whole (SPEC.md 1.3).
		switch spd.INS(cmd[1]) {
		case spd.INSGetChallenge:
			return l.pair("the challenge", gd, wd, true)
		case spd.INSInternalAuthenticate:
			if len(gd) == 0 != (len(wd) == 0) {
				return "one answered a signature, the other none"
			}
			return ""
		}
	}
	if bytes.Equal(gd, wd) {
		return ""
	}
	go1, err1 := tlv.Parse(gd)
	wo, err2 := tlv.Parse(wd)
	if err1 != nil || err2 != nil {
		if err1 != nil && err2 != nil {
			return "response data differs"
		}
		return "one answer is BER-TLV, the other is not"
	}
	return l.diffTLV(cmd, "", 0, go1, wo)
}

// diffTLV compares two TLV lists, children of parent, object by object,
// under the rule of SPEC.md 1.3.
func (l *twinLink) diffTLV(cmd []byte, path string, parent tlv.Tag, g, w []tlv.TLV) string {
	if len(g) != len(w) {
		return fmt.Sprintf("%s holds %d objects, the reference's %d", topOr(path), len(g), len(w))
	}
	for i := range g {
		p := path + "/" + g[i].Tag.String()
		if g[i].Tag != w[i].Tag {
			return fmt.Sprintf("object %d of %s is %s, the reference's %s", i+1, topOr(path), g[i].Tag, w[i].Tag)
		}
		if g[i].Tag.Constructed() {
			if why := l.diffTLV(cmd, p, g[i].Tag, g[i].Children, w[i].Children); why != "" {
				return why
			}
			continue
		}
		switch l.ownValue(cmd, parent, w, w[i].Tag, w[i].Value) {
		case ownSignature, ownHistory:
			continue
		case ownPaired:
			if g[i].Tag == spd.TagToken && len(g[i].Value) == spd.TokenLen && len(w[i].Value) == spd.TokenLen &&
				!bytes.Equal(g[i].Value[spd.TokenLen-4:], w[i].Value[spd.TokenLen-4:]) {
				return fmt.Sprintf("%s ends in the ATC %X, the reference's %X", p, g[i].Value[spd.TokenLen-4:], w[i].Value[spd.TokenLen-4:])
			}
			if why := l.pair(p, g[i].Value, w[i].Value, g[i].Tag != spd.TagCertificate); why != "" {
				return why
			}
			if g[i].Tag == spd.TagToken {
				l.tokens[string(g[i].Value)] = bytes.Clone(w[i].Value)
			}
			continue
		}
		if bytes.Equal(g[i].Value, w[i].Value) {
			continue
		}
		if d, ok := l.pairs[string(w[i].Value)]; ok {
			// The twin shows an own value of its (a token paid under, say)
			// where the device must show its pair.
			if !bytes.Equal(g[i].Value, d) {
				return fmt.Sprintf("%s is %X, where the device showed %X before", p, g[i].Value, d)
			}
			continue
		}
		// The result medium a payment code or an exchange carries whole
		// (E5/DF60, E6/DF60) is the device's own signed medium: compared
		// object by object, so that its signature is skipped as everywhere
		// else.
		if (parent != spd.TagPaymentCode && parent != spd.TagExchangeResult) || g[i].Tag != spd.TagTransferMedium {
			return fmt.Sprintf("%s is %X, the reference's %X", p, g[i].Value, w[i].Value)
		}
		if gn, wn, ok := nested(g[i].Value, w[i].Value); ok {
			if why := l.diffTLV(cmd, p, g[i].Tag, gn, wn); why != "" {
				return why
			}
			continue
		}
		return fmt.Sprintf("%s is %X, the reference's %X", p, g[i].Value, w[i].Value)
	}
	return ""
}

// nested parses two primitive values as BER-TLV, both whole, or says not.
func nested(g, w []byte) ([]tlv.TLV, []tlv.TLV, bool) {
	gn, err1 := tlv.Parse(g)
	wn, err2 := tlv.Parse(w)
	if err1 != nil || err2 != nil || len(gn) == 0 || len(wn) == 0 {
		return nil, nil, false
	}
	return gn, wn, true
}

func topOr(p string) string {
	if p == "" {
		return "the answer"
	}
	return p
}

// The twin follows power: resets and power cycles reach both.
func (l *twinLink) Reset(ctx context.Context, cold bool) ([]byte, error) {
	r, ok := l.dut.(link.Resetter)
	if !ok {
		return nil, fmt.Errorf("scenarios: %s cannot reset", l.dut)
	}
	atr, err := r.Reset(ctx, cold)
	l.chain = nil
	if rr, ok := l.ref.(link.Resetter); ok && err == nil {
		_, _ = rr.Reset(ctx, cold)
	}
	return atr, err
}

func (l *twinLink) PowerOff(ctx context.Context) error {
	p, ok := l.dut.(link.PowerCycler)
	if !ok {
		return fmt.Errorf("scenarios: %s cannot cycle power", l.dut)
	}
	l.chain = nil
	if rp, ok := l.ref.(link.PowerCycler); ok {
		_ = rp.PowerOff(ctx)
	}
	return p.PowerOff(ctx)
}

func (l *twinLink) PowerOn(ctx context.Context) ([]byte, error) {
	p, ok := l.dut.(link.PowerCycler)
	if !ok {
		return nil, fmt.Errorf("scenarios: %s cannot cycle power", l.dut)
	}
	l.chain = nil
	if rp, ok := l.ref.(link.PowerCycler); ok {
		_, _ = rp.PowerOn(ctx)
	}
	return p.PowerOn(ctx)
}

func (l *twinLink) ATR() []byte {
	if a, ok := l.dut.(link.ATRer); ok {
		return a.ATR()
	}
	return nil
}

// divergenceSummary is the differential run's result for people.
func divergenceSummary(ds []Divergence) string {
	if len(ds) == 0 {
		return "against ref: no response differed from the reference device's"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "against ref: %d device(s) diverged from the reference; the first:\n%s", len(ds), ds[0])
	return b.String()
}

// DivergenceSummary is divergenceSummary for the command line.
func DivergenceSummary(ds []Divergence) string { return divergenceSummary(ds) }
