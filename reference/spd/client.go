package spd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/tlv"
)

// Link is what a Client needs of a transport: rigs/link.Link satisfies it.
// reference/ does not import rigs/, so the interface is restated here, with
// its contract: Exchange returns the final response, 61xx and 6Cxx already
// resolved (rigs/link.Resolve).
type Link interface {
	Exchange(ctx context.Context, command []byte) ([]byte, error)
}

// Client drives an SPD over a link (any rigs/link.Link) with the profile's
// typed commands.
// It never closes the link. A status word other than 9000 comes back as an
// *apdu.SWError (errors.Is(err, apdu.ErrPINBlocked) and friends).
type Client struct {
	Link Link
}

// NewClient returns a Client on l.
func NewClient(l Link) *Client { return &Client{Link: l} }

// Transmit sends cmd and returns the response. The link resolves 61xx
// with GET RESPONSE (SPD-APP-5) and 6Cxx by resending with the exact Le, as
// the Link contract of rigs/link says, so the response is already whole.
func (c *Client) Transmit(ctx context.Context, cmd apdu.Command) (apdu.Response, error) {
	raw, err := cmd.Bytes()
	if err != nil {
		return apdu.Response{}, err
	}
	return c.exchange(ctx, raw)
}

func (c *Client) exchange(ctx context.Context, raw []byte) (apdu.Response, error) {
	b, err := c.Link.Exchange(ctx, raw)
	if err != nil {
		return apdu.Response{}, err
	}
	return apdu.ParseResponse(b)
}

// Do sends cmd and returns the response data, or an *apdu.SWError for a
// status word other than 9000.
func (c *Client) Do(ctx context.Context, cmd apdu.Command) ([]byte, error) {
	resp, err := c.Transmit(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if err := resp.Err(); err != nil {
		return nil, fmt.Errorf("spd: %s: %w", INS(cmd.INS), err)
	}
	return resp.Data, nil
}

// Run sends each command in turn and stops at the first failure.
func (c *Client) Run(ctx context.Context, cmds []apdu.Command) error {
	for _, cmd := range cmds {
		if _, err := c.Do(ctx, cmd); err != nil {
			return err
		}
	}
	return nil
}

// Select selects the SPD application.
func (c *Client) Select(ctx context.Context) (SelectResult, error) {
	data, err := c.Do(ctx, Select())
	if err != nil {
		return SelectResult{}, err
	}
	return ParseSelectResponse(data)
}

// GetData reads the value of one data object.
func (c *Client) GetData(ctx context.Context, tag tlv.Tag) ([]byte, error) {
	data, err := c.Do(ctx, GetData(tag))
	if err != nil {
		return nil, err
	}
	return ParseDataObject(tag, data)
}

// GetDataList reads the values of several data objects in one command
// (SPEC.md 4.2.1, ICS feature get-data-list), in the order of tags.
func (c *Client) GetDataList(ctx context.Context, tags ...tlv.Tag) ([][]byte, error) {
	data, err := c.Do(ctx, GetDataList(tags...))
	if err != nil {
		return nil, err
	}
	return ParseDataObjects(tags, data)
}

func (c *Client) getUint(ctx context.Context, tag tlv.Tag, size int) (uint64, error) {
	v, err := c.GetData(ctx, tag)
	if err != nil {
		return 0, err
	}
	if len(v) != size {
		return 0, malformed("tag %s of %d bytes, want %d", tag, len(v), size)
	}
	return Uint(v)
}

// Balance reads the stored balance.
func (c *Client) Balance(ctx context.Context) (int64, error) {
	v, err := c.getUint(ctx, TagBalance, 8)
	return int64(v), err
}

// Uses reads the remaining consumption count.
func (c *Client) Uses(ctx context.Context) (uint32, error) {
	v, err := c.getUint(ctx, TagUses, 4)
	return uint32(v), err
}

// ATC reads the transaction counter.
func (c *Client) ATC(ctx context.Context) (uint32, error) {
	v, err := c.getUint(ctx, TagATC, 4)
	return uint32(v), err
}

// Pending reads the pending total (unacknowledged payment records).
func (c *Client) Pending(ctx context.Context) (int64, error) {
	v, err := c.getUint(ctx, TagPending, 8)
	return int64(v), err
}

// PendingCount reads the number of records in the ledger.
func (c *Client) PendingCount(ctx context.Context) (int, error) {
	v, err := c.getUint(ctx, TagPendingCount, 2)
	return int(v), err
}

// State reads the life-cycle state.
func (c *Client) State(ctx context.Context) (State, error) {
	v, err := c.getUint(ctx, TagState, 1)
	return State(v), err
}

// PINTries reads the PIN tries left.
func (c *Client) PINTries(ctx context.Context) (int, error) {
	v, err := c.getUint(ctx, TagPINTries, 1)
	return int(v), err
}

// UpdateCounter reads the last applied update counter.
func (c *Client) UpdateCounter(ctx context.Context) (uint32, error) {
	v, err := c.getUint(ctx, TagUpdateCounter, 4)
	return uint32(v), err
}

// DeviceID reads the device ID.
func (c *Client) DeviceID(ctx context.Context) ([]byte, error) {
	v, err := c.GetData(ctx, TagDeviceID)
	if err == nil && len(v) != DeviceIDLen {
		return nil, malformed("device ID of %d bytes", len(v))
	}
	return v, err
}

// Certificate reads the device certificate (DER).
func (c *Client) Certificate(ctx context.Context) ([]byte, error) {
	return c.GetData(ctx, TagCertificate)
}

// Limits reads the offline risk limits.
func (c *Client) Limits(ctx context.Context) (Limits, error) {
	v, err := c.GetData(ctx, TagLimits)
	if err != nil {
		return Limits{}, err
	}
	return ParseLimits(v)
}

// GetChallenge asks the device for a random challenge.
func (c *Client) GetChallenge(ctx context.Context) ([]byte, error) {
	v, err := c.Do(ctx, GetChallenge())
	if err == nil && len(v) != ChallengeLen {
		return nil, malformed("challenge of %d bytes", len(v))
	}
	return v, err
}

// InternalAuthenticate has the device sign challenge and returns the
// DER signature.
func (c *Client) InternalAuthenticate(ctx context.Context, challenge []byte) ([]byte, error) {
	return c.Do(ctx, InternalAuthenticate(challenge))
}

// AuthenticationDigest is what INTERNAL AUTHENTICATE signs (SPD-KEY-4).
func AuthenticationDigest(deviceID, challenge []byte) []byte {
	h := sha256.New()
	h.Write([]byte("SPDLAB-IA1"))
	h.Write(deviceID)
	h.Write(challenge)
	return h.Sum(nil)
}

// Authenticate checks that the device holds a certificate from the issuer
// CA ca and the private key it certifies (C33): it reads the certificate,
// verifies it, and has the device sign a fresh challenge. It returns the
// device ID the certificate names.
func (c *Client) Authenticate(ctx context.Context, ca *ecdsa.PublicKey, challenge []byte) ([]byte, error) {
	cert, err := c.Certificate(ctx)
	if err != nil {
		return nil, err
	}
	pub, id, err := VerifyDeviceCertificate(cert, ca)
	if err != nil {
		return nil, err
	}
	sig, err := c.InternalAuthenticate(ctx, challenge)
	if err != nil {
		return nil, err
	}
	if !ecdsa.VerifyASN1(pub, AuthenticationDigest(id, challenge), sig) {
		return nil, fmt.Errorf("%w: INTERNAL AUTHENTICATE answer", ErrBadSignature)
	}
	return id, nil
}

// VerifyPIN presents the PIN. A wrong PIN is an *apdu.SWError 63Cx; a
// blocked PIN matches apdu.ErrPINBlocked.
func (c *Client) VerifyPIN(ctx context.Context, pin string) error {
	_, err := c.Do(ctx, VerifyPIN(pin))
	return err
}

// VerifyBiometric presents a biometric sample.
func (c *Client) VerifyBiometric(ctx context.Context, sample []byte) error {
	_, err := c.Do(ctx, VerifyBiometric(sample))
	return err
}

// ChangePIN changes the PIN.
func (c *Client) ChangePIN(ctx context.Context, old, new string) error {
	_, err := c.Do(ctx, ChangePIN(old, new))
	return err
}

// UnblockPIN resets the try counter with the PUK (and sets newPIN if not empty).
func (c *Client) UnblockPIN(ctx context.Context, puk, newPIN string) error {
	_, err := c.Do(ctx, UnblockPIN(puk, newPIN))
	return err
}

// Initialise loads the CA key and device ID and returns the device public key.
func (c *Client) Initialise(ctx context.Context, ca *ecdsa.PublicKey, deviceID []byte) (*ecdsa.PublicKey, error) {
	data, err := c.Do(ctx, Initialise(ca, deviceID))
	if err != nil {
		return nil, err
	}
	return ParseInitialiseResponse(data)
}

// Activate activates a personalised device.
func (c *Client) Activate(ctx context.Context) error {
	_, err := c.Do(ctx, Activate())
	return err
}

// ErrDeclined is returned (wrapped, with the reason) by Pay and the other
// value commands when the device answered a signed failure result.
var ErrDeclined = errors.New("spd: declined")

// Result is a signed medium the device answered: a payment result, a
// stored-value, token or transfer medium.
type Result struct {
	Envelope []byte         // the signed envelope as received
	Medium   *medium.Medium // parsed, signature not yet checked
}

// Info is the medium's service information.
func (r Result) Info() medium.ServiceInfo { return r.Medium.Info }

// Success reports whether a payment result says success (C31).
func (r Result) Success() bool { return r.Medium.Info.Result != nil && *r.Medium.Info.Result == 0 }

// Verify checks the medium's signature with the device key.
func (r Result) Verify(pub *ecdsa.PublicKey) error { return r.Medium.Verify(pub) }

// ParseResult parses a medium answered by the device and checks its kind.
func ParseResult(data []byte, kind medium.Kind) (Result, error) {
	m, err := medium.Parse(data)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if m.Info.Kind != kind {
		return Result{}, malformed("medium of kind %s, want %s", m.Info.Kind, kind)
	}
	return Result{Envelope: bytes.Clone(data), Medium: m}, nil
}

func (c *Client) result(ctx context.Context, cmd apdu.Command, kind medium.Kind) (Result, error) {
	data, err := c.Do(ctx, cmd)
	if err != nil {
		return Result{}, err
	}
	r, err := ParseResult(data, kind)
	if err != nil {
		return Result{}, err
	}
	if kind == medium.KindPaymentResult && !r.Success() {
		return r, fmt.Errorf("%w: %s", ErrDeclined, r.Medium.Info.Reason)
	}
	return r, nil
}

// Pay makes a payment and returns its signed result (C29-C31). A decline
// returns the signed failure result together with an error wrapping
// ErrDeclined.
func (c *Client) Pay(ctx context.Context, r PayRequest) (Result, error) {
	return c.result(ctx, Pay(r), medium.KindPaymentResult)
}

// GenerateMedium asks for a stored-value medium (C8, C12).
func (c *Client) GenerateMedium(ctx context.Context, r MediumRequest) (Result, error) {
	return c.result(ctx, GenerateMedium(r), medium.KindStoredValue)
}

// GenerateToken asks for a token medium with domain controls (C20, C22).
func (c *Client) GenerateToken(ctx context.Context, r TokenRequest) (Result, error) {
	return c.result(ctx, GenerateToken(r), medium.KindToken)
}

// TransferOut debits the balance and returns the transfer medium (C13, C17).
func (c *Client) TransferOut(ctx context.Context, r TransferRequest) (Result, error) {
	return c.result(ctx, TransferOut(r), medium.KindTransfer)
}

// TransferShow shows an outstanding transfer medium again.
func (c *Client) TransferShow(ctx context.Context, s SerialAt) (Result, error) {
	return c.result(ctx, TransferShow(s.Serial, s.Time), medium.KindTransfer)
}

// TransferIn imports a transfer medium and returns the signed result.
func (c *Client) TransferIn(ctx context.Context, t TransferImport) (Result, error) {
	return c.result(ctx, TransferIn(t.Medium, t.Time), medium.KindPaymentResult)
}

// Send sends a prepared command (host-signed orders: Acknowledge,
// UpdateParameters, UnblockByHost) and checks for 9000.
func (c *Client) Send(ctx context.Context, cmd apdu.Command) error {
	_, err := c.Do(ctx, cmd)
	return err
}

// Reclaim sends a host-signed RECLAIM and returns the signed result.
func (c *Client) Reclaim(ctx context.Context, cmd apdu.Command) (Result, error) {
	return c.result(ctx, cmd, medium.KindPaymentResult)
}

// ReadPending reads the pending record at index.
func (c *Client) ReadPending(ctx context.Context, index int) (PendingRecord, error) {
	data, err := c.Do(ctx, ReadPending(index))
	if err != nil {
		return PendingRecord{}, err
	}
	return ParsePendingRecord(data)
}

// PendingRecords reads the whole ledger, oldest first.
func (c *Client) PendingRecords(ctx context.Context) ([]PendingRecord, error) {
	n, err := c.PendingCount(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PendingRecord, 0, n)
	for i := 0; i < n; i++ {
		r, err := c.ReadPending(ctx, i)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// ParseMedium has the device parse and verify a coded medium (C1, C6) and
// returns its service information. The device's answer must be the
// medium's own template, byte for byte.
func (c *Client) ParseMedium(ctx context.Context, envelope []byte) (medium.ServiceInfo, error) {
	data, err := c.Do(ctx, ParseMedium(envelope))
	if err != nil {
		return medium.ServiceInfo{}, err
	}
	m, err := medium.Parse(envelope)
	if err != nil {
		return medium.ServiceInfo{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	obj, rest, err := tlv.Next(m.Signed)
	if err != nil || !bytes.Equal(data, rest) || obj.Tag != medium.TagPayloadFormat {
		return medium.ServiceInfo{}, malformed("PARSE MEDIUM answered another template")
	}
	return m.Info, nil
}

// EraseCounter reads the last applied TEST ERASE counter (GET DATA DF2F).
func (c *Client) EraseCounter(ctx context.Context) (uint32, error) {
	v, err := c.getUint(ctx, TagEraseCounter, 4)
	return uint32(v), err
}
