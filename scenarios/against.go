package scenarios

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
	"github.com/spdlab/spdlab/rigs/link"
)

// Against runs a DUT and a reference device in lockstep (`--against ref`):
// every command the suite sends the DUT also goes to a reference device
// opened beside it, and the first response that differs is reported when
// the device is closed, so a vendor sees a divergence even where no case
// asserts. What differs by design is not compared: device keys and
// certificates, signatures, challenges and the random part of tokens.
// Commands that carry device-specific values (PERSONALISE's certificate, a
// token in PAY) are translated for the reference. A power cut (TearAt)
// ends the comparison for that device: where a write count falls is the
// DUT's own business.
func Against(dut, ref Driver) Driver { return &againstDriver{dut: dut, ref: ref} }

type againstDriver struct{ dut, ref Driver }

func (a *againstDriver) Profile() Profile    { return a.dut.Profile() }
func (a *againstDriver) Issuer() *spd.Issuer { return a.dut.Issuer() }

func (a *againstDriver) Open(ctx context.Context) (*Device, error) {
	d, err := a.dut.Open(ctx)
	if err != nil {
		return nil, err
	}
	r, err := a.ref.Open(ctx)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("scenarios: opening the reference to run against: %w", err)
	}
	l := &lockstep{dut: d.Link, ref: r.Link, issuer: a.dut.Issuer(), tokens: map[string][]byte{}}
	dev := &Device{Link: l, Close: func() error {
		errs := []error{d.Close(), r.Close()}
		if div := l.Divergence(); div != nil {
			errs = append(errs, div)
		}
		return errors.Join(errs...)
	}}
	if d.TearAt != nil {
		dev.TearAt = func(n int) {
			if n > 0 {
				l.stop("a power cut was armed")
			}
			d.TearAt(n)
		}
	}
	return dev, nil
}

// lockstep is the Link of Against.
type lockstep struct {
	dut, ref link.Link
	issuer   *spd.Issuer

	mu       sync.Mutex
	stopped  string // why the comparison ended, if it did
	first    error  // the first divergence
	n        int    // exchanges compared
	chained  []byte // the DUT's response so far, while it answers 61xx
	pending  apdu.Command
	refWhole apdu.Response // the reference's whole response to pending
	refKey   []byte        // the reference's public key from INITIALISE
	id       []byte        // the device ID INITIALISE loaded
	tokens   map[string][]byte
}

var (
	_ link.Link        = (*lockstep)(nil)
	_ link.PowerCycler = (*lockstep)(nil)
	_ link.Resetter    = (*lockstep)(nil)
)

// Divergence is the first response in which the DUT differed from the
// reference, or nil.
func (l *lockstep) Divergence() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

func (l *lockstep) stop(why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped == "" {
		l.stopped = why
	}
}

func (l *lockstep) String() string { return l.dut.String() + " against " + l.ref.String() }

func (l *lockstep) Close() error { return errors.Join(l.dut.Close(), l.ref.Close()) }

func (l *lockstep) Exchange(ctx context.Context, raw []byte) ([]byte, error) {
	resp, err := l.dut.Exchange(ctx, raw)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped != "" || l.first != nil {
		return resp, err
	}
	cmd, perr := apdu.ParseCommand(raw)
	if perr != nil {
		// Malformed on purpose: both must answer it alike.
		refResp, rerr := l.ref.Exchange(ctx, raw)
		if err == nil && rerr == nil && !bytes.Equal(resp, refResp) {
			l.diverge(raw, fmt.Sprintf("answered % X, the reference % X", resp, refResp))
		}
		return resp, err
	}
	if err != nil {
		l.stopped = "the DUT gave no answer: " + err.Error()
		return resp, err
	}
	dut, perr := apdu.ParseResponse(resp)
	if perr != nil {
		l.diverge(raw, "answered something that is no response APDU: "+perr.Error())
		return resp, err
	}
	isGetResponse := cmd.CLA == 0x00 && spd.INS(cmd.INS) == spd.INSGetResponse && len(cmd.Data) == 0 && cmd.P1 == 0 && cmd.P2 == 0
	if isGetResponse && l.chained != nil {
		l.chained = append(l.chained, dut.Data...)
	} else {
		l.chained = append([]byte(nil), dut.Data...)
		l.pending = cmd
		l.refWhole, err = l.refTransmit(ctx, l.forRef(cmd))
		if err != nil {
			l.stopped = "the reference gave no answer: " + err.Error()
			return resp, nil
		}
	}
	if dut.SW.SW1() == 0x61 {
		return resp, nil
	}
	whole := apdu.Response{Data: l.chained, SW: dut.SW}
	l.chained = nil
	l.n++
	if why := l.compare(l.pending, whole, l.refWhole); why != "" {
		l.diverge(rawCmdBytes(l.pending), why)
	}
	return resp, nil
}

func rawCmdBytes(c apdu.Command) []byte {
	b, _ := c.Bytes()
	return b
}

func (l *lockstep) diverge(cmd []byte, why string) {
	if l.first == nil {
		l.first = fmt.Errorf("scenarios: the DUT differs from the reference at exchange %d, command % X: %s", l.n, cmd, why)
	}
}

// refTransmit sends cmd to the reference and follows 61xx to the whole
// response.
func (l *lockstep) refTransmit(ctx context.Context, cmd apdu.Command) (apdu.Response, error) {
	resp, err := spd.NewClient(l.ref).Transmit(ctx, cmd)
	if err != nil {
		return apdu.Response{}, err
	}
	return resp, nil
}

// forRef translates the device-specific values of a command for the
// reference.
func (l *lockstep) forRef(cmd apdu.Command) apdu.Command {
	c := cmd
	c.Data = bytes.Clone(cmd.Data)
	switch {
	case cmd.CLA == 0x80 && spd.INS(cmd.INS) == spd.INSPersonalise && l.refKey != nil && l.issuer != nil:
		if data, ok := l.recertify(cmd.Data); ok {
			c.Data = data
		}
	case cmd.CLA == 0x80 && spd.INS(cmd.INS) == spd.INSPay:
		for dutTok, refTok := range l.tokens {
			c.Data = bytes.ReplaceAll(c.Data, []byte(dutTok), refTok)
		}
	}
	return c
}

// recertify re-signs a PERSONALISE for the reference's own key: the
// profile is the DUT's, the certificate names the reference's key.
func (l *lockstep) recertify(data []byte) ([]byte, bool) {
	body, ok := signedBody(data)
	if !ok || l.id == nil {
		return nil, false
	}
	p, err := spd.ParseProfile(body)
	if err != nil {
		return nil, false
	}
	pub, err := spd.ParsePublicKey(l.refKey)
	if err != nil {
		return nil, false
	}
	p.DeviceID = l.id
	if p.Certificate, err = l.issuer.Certify(l.id, pub); err != nil {
		return nil, false
	}
	nb, err := p.Marshal()
	if err != nil {
		return nil, false
	}
	out, err := spd.SealIssuerData(l.issuer.CA, spd.INSPersonalise, l.id, nb)
	return out, err == nil
}

// signedBody is an issuer order's body, without its 9F45 signature.
func signedBody(data []byte) ([]byte, bool) {
	rest, n := data, 0
	for len(rest) > 0 {
		obj, r, err := tlv.Next(rest)
		if err != nil {
			return nil, false
		}
		if obj.Tag == spd.TagSignature {
			return data[:n], true
		}
		n, rest = len(data)-len(r), r
	}
	return nil, false
}

// compare returns why the DUT's whole response differs from the
// reference's, or "".
func (l *lockstep) compare(cmd apdu.Command, dut, ref apdu.Response) string {
	if dut.SW != ref.SW {
		return fmt.Sprintf("status %s, the reference %s", dut.SW, ref.SW)
	}
	if dut.SW != apdu.SWOK {
		return ""
	}
	ins := spd.INS(cmd.INS)
	switch {
	case cmd.CLA == 0x00 && ins == spd.INSGetChallenge, cmd.CLA == 0x00 && ins == spd.INSInternalAuthenticate:
		if len(dut.Data) == 0 {
			return "no data"
		}
		if ins == spd.INSGetChallenge && len(dut.Data) != len(ref.Data) {
			return fmt.Sprintf("%d challenge bytes, the reference %d", len(dut.Data), len(ref.Data))
		}
		return ""
	case cmd.CLA == 0x80 && ins == spd.INSInitialise:
		if _, id, err := spd.ParseInitialise(cmd.Data); err == nil {
			l.id = id
		}
		if len(ref.Data) == 3+65 {
			l.refKey = bytes.Clone(ref.Data[3:])
		}
		if len(dut.Data) != len(ref.Data) {
			return fmt.Sprintf("a public key object of %d bytes, the reference %d", len(dut.Data), len(ref.Data))
		}
		return ""
	case cmd.CLA == 0x00 && ins == spd.INSGetData && (cmd.P2 == 0x24 || cmd.P2 == 0x11) && cmd.P1 == 0xDF:
		if len(dut.Data) < 3 || !bytes.Equal(dut.Data[:2], ref.Data[:2]) {
			return fmt.Sprintf("object % X, the reference % X", head(dut.Data), head(ref.Data))
		}
		return ""
	case cmd.CLA == 0x80 && ins == spd.INSReadPending:
		a, err := spd.ParsePendingRecord(dut.Data)
		if err != nil {
			return "a pending record that does not parse: " + err.Error()
		}
		b, err := spd.ParsePendingRecord(ref.Data)
		if err != nil {
			return ""
		}
		a.Signature, b.Signature = nil, nil
		a.Token = l.refToken(a.Token)
		if !reflect.DeepEqual(a, b) {
			return fmt.Sprintf("record %+v, the reference %+v", a, b)
		}
		return ""
	case cmd.CLA == 0x80 && (ins == spd.INSPay || ins == spd.INSGenerateMedium || ins == spd.INSGenerateToken ||
		ins == spd.INSTransfer || ins == spd.INSTransferIn || ins == spd.INSReclaim):
		a, err := medium.Parse(dut.Data)
		if err != nil {
			return "a medium that does not parse: " + err.Error()
		}
		b, err := medium.Parse(ref.Data)
		if err != nil {
			return ""
		}
		ai, bi := a.Info, b.Info
		ai.Certificate, bi.Certificate = nil, nil
		if ins == spd.INSGenerateToken && len(ai.Token) == 16 && len(bi.Token) == 16 {
			l.tokens[string(ai.Token)] = bytes.Clone(bi.Token)
			if !bytes.Equal(ai.Token[12:], bi.Token[12:]) {
				return fmt.Sprintf("token ending % X, the reference % X (the ATC that made it)", ai.Token[12:], bi.Token[12:])
			}
			ai.Token, bi.Token = nil, nil
		}
		ai.Token = l.refToken(ai.Token)
		if !reflect.DeepEqual(ai, bi) {
			return fmt.Sprintf("medium %+v, the reference %+v", ai, bi)
		}
		return ""
	}
	if !bytes.Equal(dut.Data, ref.Data) {
		return fmt.Sprintf("data % X, the reference % X", head(dut.Data), head(ref.Data))
	}
	return ""
}

// refToken is the reference's token for a token of the DUT.
func (l *lockstep) refToken(t []byte) []byte {
	if r, ok := l.tokens[string(t)]; ok {
		return r
	}
	return t
}

func head(b []byte) []byte {
	if len(b) > 48 {
		return b[:48]
	}
	return b
}

func (l *lockstep) PowerOff(ctx context.Context) error {
	pc, ok := l.dut.(link.PowerCycler)
	if !ok {
		return fmt.Errorf("scenarios: %s cannot power-cycle", l.dut)
	}
	if err := pc.PowerOff(ctx); err != nil {
		return err
	}
	if r, ok := l.ref.(link.PowerCycler); ok {
		return r.PowerOff(ctx)
	}
	return nil
}

func (l *lockstep) PowerOn(ctx context.Context) ([]byte, error) {
	pc, ok := l.dut.(link.PowerCycler)
	if !ok {
		return nil, fmt.Errorf("scenarios: %s cannot power-cycle", l.dut)
	}
	atr, err := pc.PowerOn(ctx)
	if err != nil {
		return nil, err
	}
	if r, ok := l.ref.(link.PowerCycler); ok {
		if _, err := r.PowerOn(ctx); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	l.chained = nil
	l.mu.Unlock()
	return atr, nil
}

func (l *lockstep) Reset(ctx context.Context, cold bool) ([]byte, error) {
	rs, ok := l.dut.(link.Resetter)
	if !ok {
		return nil, fmt.Errorf("scenarios: %s cannot reset", l.dut)
	}
	atr, err := rs.Reset(ctx, cold)
	if err != nil {
		return nil, err
	}
	if r, ok := l.ref.(link.Resetter); ok {
		if _, err := r.Reset(ctx, cold); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	l.chained = nil
	l.mu.Unlock()
	return atr, nil
}
