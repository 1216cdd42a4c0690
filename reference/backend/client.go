package backend

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls a backend over HTTP: the terminal's and the CLI's way in.
// Every method honours ctx; a non-2xx answer comes back as *APIError.
type Client struct {
	base string
	hc   *http.Client
	// Credential is the token sent as "Authorization: Bearer TOKEN": the
	// issuer's (Config.IssuerToken) or a terminal's (Config.TerminalToken).
	Credential string
}

// NewClient returns a client of the backend at baseURL (for example
// "http://127.0.0.1:8080"). A nil hc gets an http.Client with a 10 s timeout.
func NewClient(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("backend: base URL %q: want http(s)://host[:port]", baseURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}, nil
}

// maxAnswer bounds the size of an answer the client reads.
const maxAnswer = 8 << 20

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("backend: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Credential != "" {
		req.Header.Set("Authorization", "Bearer "+c.Credential)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("backend: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("backend: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(b, &ae.ErrorBody) != nil || ae.Code == "" {
			ae.Code, ae.Reason = CodeInternal, strings.TrimSpace(string(b))
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("backend: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func esc(s string) string { return url.PathEscape(s) }

// Health returns nil when the backend serves.
func (c *Client) Health(ctx context.Context) error {
	var h Health
	return c.do(ctx, http.MethodGet, "/healthz", nil, &h)
}

// PublicKey fetches the key that checks the backend's signed answers.
func (c *Client) PublicKey(ctx context.Context) (*ecdsa.PublicKey, error) {
	var k PublicKey
	if err := c.do(ctx, http.MethodGet, "/v1/keys", nil, &k); err != nil {
		return nil, err
	}
	return parseECPublicKey(k.PKIX)
}

// Register personalises a device at the issuer.
func (c *Client) Register(ctx context.Context, reg Registration) (Device, error) {
	var d Device
	err := c.do(ctx, http.MethodPost, "/v1/devices", reg, &d)
	return d, err
}

// Device returns the issuer's view of a device.
func (c *Client) Device(ctx context.Context, id string) (Device, error) {
	var d Device
	err := c.do(ctx, http.MethodGet, "/v1/devices/"+esc(id), nil, &d)
	return d, err
}

// Contact reports a device's contact and returns the parameter updates
// queued for it since c.Applied.
func (c *Client) Contact(ctx context.Context, id string, ct Contact) (ContactReply, error) {
	var r ContactReply
	err := c.do(ctx, http.MethodPost, "/v1/devices/"+esc(id)+"/contact", ct, &r)
	return r, err
}

// QueueParameter queues a parameter update for a device's next contact and
// returns it with its counter.
func (c *Client) QueueParameter(ctx context.Context, id string, u ParameterUpdate) (ParameterUpdate, error) {
	var out ParameterUpdate
	err := c.do(ctx, http.MethodPost, "/v1/devices/"+esc(id)+"/parameters", u, &out)
	return out, err
}

// Authorise asks for an online authorisation. The result's signature is
// not checked here; use AuthorisationResult.Verify with PublicKey.
func (c *Client) Authorise(ctx context.Context, req AuthorisationRequest) (AuthorisationResult, error) {
	var r AuthorisationResult
	err := c.do(ctx, http.MethodPost, "/v1/authorisations", req, &r)
	return r, err
}

// Settle hands over a batch of pending records and returns the signed
// acknowledgement.
func (c *Client) Settle(ctx context.Context, batch SettlementBatch) (SettlementAck, error) {
	var a SettlementAck
	err := c.do(ctx, http.MethodPost, "/v1/settlements", batch, &a)
	return a, err
}

// MintToken mints (or registers) a payment token with domain controls.
func (c *Client) MintToken(ctx context.Context, req TokenRequest) (Token, error) {
	var t Token
	err := c.do(ctx, http.MethodPost, "/v1/tokens", req, &t)
	return t, err
}

// Token returns a vault entry.
func (c *Client) Token(ctx context.Context, token string) (Token, error) {
	var t Token
	err := c.do(ctx, http.MethodGet, "/v1/tokens/"+esc(token), nil, &t)
	return t, err
}

// RequestOTP has a one-time code sent to the device's phone.
func (c *Client) RequestOTP(ctx context.Context, req OTPRequest) (OTPChallenge, error) {
	var ch OTPChallenge
	err := c.do(ctx, http.MethodPost, "/v1/otp", req, &ch)
	return ch, err
}

// VerifyOTP checks a one-time code.
func (c *Client) VerifyOTP(ctx context.Context, a OTPAnswer) (OTPVerdict, error) {
	var v OTPVerdict
	err := c.do(ctx, http.MethodPost, "/v1/otp/verify", a, &v)
	return v, err
}

// Revoke puts a device or certificate on the revocation list.
func (c *Client) Revoke(ctx context.Context, rv Revocation) (Revocation, error) {
	var out Revocation
	err := c.do(ctx, http.MethodPost, "/v1/revocations", rv, &out)
	return out, err
}

// Revocations returns the revocation list.
func (c *Client) Revocations(ctx context.Context) ([]Revocation, error) {
	var list []Revocation
	err := c.do(ctx, http.MethodGet, "/v1/revocations", nil, &list)
	return list, err
}

// Transfer hands the backend an online transfer the payer's device made
// (its medium and transfer-out record): the debit settles and the medium
// waits for the payee's device.
func (c *Client) Transfer(ctx context.Context, req TransferRequest) (Transfer, error) {
	var t Transfer
	err := c.do(ctx, http.MethodPost, "/v1/transfers", req, &t)
	return t, err
}

// TransferState returns a transfer.
func (c *Client) TransferState(ctx context.Context, id string) (Transfer, error) {
	var t Transfer
	err := c.do(ctx, http.MethodGet, "/v1/transfers/"+esc(id), nil, &t)
	return t, err
}

// ClaimTransfer settles the payee device's import of an online transfer
// (a.Record, its transfer-in record).
func (c *Client) ClaimTransfer(ctx context.Context, id string, a TransferAction) (Transfer, error) {
	var t Transfer
	err := c.do(ctx, http.MethodPost, "/v1/transfers/"+esc(id)+"/claim", a, &t)
	return t, err
}

// ReclaimTransfer asks for the RECLAIM of an expired, unclaimed online
// transfer; a is signed by the payer (TransferActionChallenge with
// TransferReclaimed).
func (c *Client) ReclaimTransfer(ctx context.Context, id string, a TransferAction) (Transfer, error) {
	var t Transfer
	err := c.do(ctx, http.MethodPost, "/v1/transfers/"+esc(id)+"/reclaim", a, &t)
	return t, err
}

// OrderReclaim asks for the host-signed RECLAIM of an expired offline
// transfer nobody imported (the medium as TRANSFER SHOW answers it).
func (c *Client) OrderReclaim(ctx context.Context, req ReclaimRequest) (ReclaimOrder, error) {
	var o ReclaimOrder
	err := c.do(ctx, http.MethodPost, "/v1/reclaims", req, &o)
	return o, err
}

// Reverse reverses a payment the issuer will not settle (issuer
// credential): the device is given back what it paid at its next contact.
func (c *Client) Reverse(ctx context.Context, req ReversalRequest) (Reversal, error) {
	var r Reversal
	err := c.do(ctx, http.MethodPost, "/v1/reversals", req, &r)
	return r, err
}

// RegisterPayee registers a payee (issuer credential); the answer holds
// the payee's own credential, shown once.
func (c *Client) RegisterPayee(ctx context.Context, req PayeeRegistration) (RegisteredPayee, error) {
	var p RegisteredPayee
	err := c.do(ctx, http.MethodPost, "/v1/payees", req, &p)
	return p, err
}

// Audit returns the conservation audit.
func (c *Client) Audit(ctx context.Context) (Audit, error) {
	var a Audit
	err := c.do(ctx, http.MethodGet, "/v1/audit", nil, &a)
	return a, err
}

// Payee returns a payee's account at the issuer.
func (c *Client) Payee(ctx context.Context, payee string) (Payee, error) {
	var p Payee
	err := c.do(ctx, http.MethodGet, "/v1/payees/"+url.PathEscape(payee), nil, &p)
	return p, err
}

// Bill returns the bill of the designated account of a device for a
// period ("YYYY-MM"; "" for the current month).
func (c *Client) Bill(ctx context.Context, deviceID, period string) (Bill, error) {
	var b Bill
	path := "/v1/accounts/" + url.PathEscape(deviceID) + "/bill"
	if period != "" {
		path += "?period=" + url.QueryEscape(period)
	}
	err := c.do(ctx, http.MethodGet, path, nil, &b)
	return b, err
}
