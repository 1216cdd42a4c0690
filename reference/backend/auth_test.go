package backend

import (
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// route is one endpoint and the weakest role that may call it.
type route struct {
	method, path string
	body         any
	need         Role
}

// routes lists every endpoint of the API with a body that would change
// state if the call were allowed.
func authRoutes(d *simDevice, rec []byte) []route {
	top := ParameterUpdate{TopUp: 1 << 52}
	return []route{
		{"GET", "/healthz", nil, RoleNone},
		{"GET", "/v1/keys", nil, RoleNone},
		{"POST", "/v1/devices", Registration{DeviceID: devID("intruder"), PublicKey: d.pkix(), Account: "X", Currency: 156, InitialBalance: 1 << 52}, RoleIssuer},
		{"GET", "/v1/devices/" + d.id, nil, RoleTerminal},
		{"POST", "/v1/devices/" + d.id + "/contact", map[string]any{"applied": 0, "balance": 1 << 40, "atc": 9}, RoleTerminal},
		{"POST", "/v1/devices/" + d.id + "/parameters", top, RoleIssuer},
		{"POST", "/v1/authorisations", AuthorisationRequest{Record: rec, Channel: "qr"}, RoleTerminal},
		{"POST", "/v1/settlements", SettlementBatch{Records: [][]byte{rec}}, RoleTerminal},
		{"POST", "/v1/tokens", TokenRequest{DeviceID: d.id}, RoleTerminal},
		{"GET", "/v1/tokens/AA", nil, RoleTerminal},
		{"POST", "/v1/otp", OTPRequest{DeviceID: d.id}, RoleTerminal},
		{"POST", "/v1/otp/verify", OTPAnswer{ID: "x", Code: "123456"}, RoleTerminal},
		{"POST", "/v1/revocations", Revocation{DeviceID: d.id}, RoleIssuer},
		{"GET", "/v1/revocations", nil, RoleTerminal},
		{"POST", "/v1/transfers", TransferRequest{TransferID: "t", Medium: []byte{1}, Record: rec}, RoleTerminal},
		{"GET", "/v1/transfers/t", nil, RoleTerminal},
		{"POST", "/v1/transfers/t/claim", TransferAction{DeviceID: d.id}, RoleTerminal},
		{"POST", "/v1/transfers/t/reclaim", TransferAction{DeviceID: d.id}, RoleTerminal},
		{"POST", "/v1/reclaims", ReclaimRequest{Medium: []byte{1}}, RoleTerminal},
		{"POST", "/v1/reversals", ReversalRequest{Record: rec, Reason: "x"}, RoleIssuer},
		{"POST", "/v1/payees", PayeeRegistration{Payee: "SHOP-Z"}, RoleIssuer},
		{"GET", "/v1/audit", nil, RoleIssuer},
	}
}

func call(t *testing.T, l *lab, rt route, auth, contentType string) (int, ErrorBody) {
	t.Helper()
	var body *strings.Reader
	if rt.body != nil {
		b, err := json.Marshal(rt.body)
		if err != nil {
			t.Fatal(err)
		}
		body = strings.NewReader(string(b))
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequest(rt.method, l.http.URL+rt.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb
}

// TestAuthEveryCall: without the right credential no call is served and no
// stored byte changes: the issuer's operations (the only ones that create
// value) refuse a terminal's credential too.
func TestAuthEveryCall(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "guarded")
	l.register(d, 1000, "+100")
	rec := d.record(5, "", l.clock.Now())
	before := l.snapshot()
	for _, rt := range authRoutes(d, rec) {
		if rt.need == RoleNone {
			if status, eb := call(t, l, rt, "", ""); status != 200 {
				t.Errorf("%s %s without credential: %d %+v, want 200", rt.method, rt.path, status, eb)
			}
			continue
		}
		for _, tc := range []struct {
			name, auth string
			status     int
			code       string
		}{
			{"no credential", "", 401, CodeUnauthorised},
			{"wrong token", "Bearer " + strings.Repeat("x", 40), 401, CodeUnauthorised},
			{"basic scheme", "Basic " + testIssuerToken, 401, CodeUnauthorised},
			{"token without scheme", testIssuerToken, 401, CodeUnauthorised},
		} {
			status, eb := call(t, l, rt, tc.auth, "application/json")
			if status != tc.status || eb.Code != tc.code || eb.Reason == "" {
				t.Errorf("%s %s, %s: %d %+v, want %d %s", rt.method, rt.path, tc.name, status, eb, tc.status, tc.code)
			}
		}
		if rt.need == RoleIssuer {
			status, eb := call(t, l, rt, "Bearer "+testTerminalToken, "application/json")
			if status != 403 || eb.Code != CodeForbidden {
				t.Errorf("%s %s with a terminal's credential: %d %+v, want 403 %s", rt.method, rt.path, status, eb, CodeForbidden)
			}
		}
		if rt.method == "POST" {
			for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=latin1"} {
				status, eb := call(t, l, rt, "Bearer "+testIssuerToken, ct)
				if status != 415 || eb.Code != CodeMediaType {
					t.Errorf("%s %s as %q: %d %+v, want 415 %s", rt.method, rt.path, ct, status, eb, CodeMediaType)
				}
			}
		}
	}
	if l.snapshot() != before {
		t.Fatal("refused calls changed the stored state")
	}
	a := l.audit()
	if a.Issued != 1000 {
		t.Fatalf("issued %d after refused calls, want 1000", a.Issued)
	}
}

// TestAuthAnonymousTopUp is the attack: a top-up of 2^53 with no
// credential is refused and creates no value.
func TestAuthAnonymousTopUp(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "victim")
	l.register(d, 1000, "")
	anon, _ := NewClient(l.http.URL, nil)
	_, err := anon.QueueParameter(bg, d.id, ParameterUpdate{TopUp: 1 << 53})
	wantCode(t, err, 401, CodeUnauthorised)
	_, err = l.term.QueueParameter(bg, d.id, ParameterUpdate{TopUp: 1 << 53})
	wantCode(t, err, 403, CodeForbidden)
	_, err = anon.Register(bg, Registration{DeviceID: devID("mint"), PublicKey: newSimDevice(t, "mint").pkix(), Account: "M", Currency: 156, InitialBalance: 1 << 53})
	wantCode(t, err, 401, CodeUnauthorised)
	if a := l.audit(); a.Issued != 1000 {
		t.Fatalf("issued %d, want 1000", a.Issued)
	}
}

// TestAuthTerminalRole: a terminal's credential serves the device side and
// reads; what it reads never holds an account number in full.
func TestAuthTerminalRole(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "shop")
	if _, err := l.c.Register(bg, Registration{DeviceID: d.id, PublicKey: d.pkix(), Account: "6222020200112233445", Currency: 156, InitialBalance: 1000}); err != nil {
		t.Fatal(err)
	}
	res, err := l.term.Authorise(bg, AuthorisationRequest{Record: d.record(100, "", l.clock.Now()), Channel: "qr"})
	if err != nil || res.Status != Approved {
		t.Fatalf("%+v %v", res, err)
	}
	ack, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{d.record(50, "", l.clock.Now())}})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := l.term.Device(bg, d.id)
	if err != nil {
		t.Fatal(err)
	}
	for what, got := range map[string]string{"device": dev.Account, "authorisation": res.Account, "settlement": ack.Entries[0].Account} {
		if got != "***************3445" {
			t.Errorf("%s answer shows account %q, want ***************3445", what, got)
		}
	}
	raw, _ := json.Marshal([]any{dev, res, ack})
	if strings.Contains(string(raw), "6222020200112233445") {
		t.Fatal("the full account number left the backend")
	}
	if _, err := l.term.Audit(bg); err == nil {
		t.Fatal("a terminal read the audit")
	} else {
		wantCode(t, err, 403, CodeForbidden)
	}
}

func TestOpenRefusesNoCredential(t *testing.T) {
	db := filepath.Join(t.TempDir(), "b.db")
	if _, err := Open(Config{DBPath: db}); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open without a credential: %v, want ErrOpen", err)
	}
	for _, cfg := range []Config{
		{DBPath: db, IssuerToken: "short"},
		{DBPath: db, IssuerToken: testIssuerToken, TerminalToken: testIssuerToken},
		{DBPath: db, IssuerToken: testIssuerToken + " x"},
	} {
		if s, err := Open(cfg); err == nil {
			s.Close()
			t.Fatalf("Open(%+v) accepted", cfg)
		}
	}
	var logged []string
	s, err := Open(Config{DBPath: db, DevOpen: true, Log: func(f string, a ...any) { logged = append(logged, f) }})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if len(logged) == 0 || !strings.Contains(logged[0], "DEVELOPMENT MODE") {
		t.Fatalf("an open backend started without a warning: %q", logged)
	}
}

func TestMaskAccount(t *testing.T) {
	for in, want := range map[string]string{"": "", "12": "*2", "1234567": "****567", "12345678": "****5678", "6222020200112233445": "***************3445"} {
		if got := MaskAccount(in); got != want {
			t.Errorf("MaskAccount(%q) = %q, want %q", in, got, want)
		}
	}
}
