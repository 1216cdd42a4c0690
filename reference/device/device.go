// Package device is the reference SPD application: the SPD profile of
// reference/SPEC.md made executable.
//
// A Device answers one command APDU at a time (Process) and takes the
// power events of a card (PowerOn, PowerOff, Reset). Everything it must
// remember lives in a store.Store; every state-changing command makes its
// changes in one store transaction, so a power cut at any persistent write
// leaves the old state or the new one (SPD-STO-1). The PIN and biometric
// try counters are written on their own, before the comparison (SPD-PIN-2).
//
// It follows ISO/IEC 7816-4 for command structure and status words, BER-TLV
// for data fields (reference/tlv), the signed coded media of
// reference/medium, and the wire formats of reference/spd.
package device

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
)

// Config sets the device's capacities and, for tests, its randomness.
// Zero values take the defaults named on each field.
type Config struct {
	// Seed, when set, makes the device key and every random value
	// (challenges, tokens) a deterministic function of it (the device
	// signs with deterministic ECDSA, RFC 6979, seeded or not), so that
	// the known-answer vectors of SPEC.md Annex A replay byte for byte.
	// Tests only: a real device draws from crypto/rand.
	Seed []byte
	// MaxLedger bounds the pending ledger (default 64 records).
	MaxLedger int
	// MaxTokens bounds the live tokens (default 8).
	MaxTokens int
	// MaxTransfers bounds the outgoing transfers kept (default 16).
	MaxTransfers int
	// MaxImports bounds the imported-transfer replay list (default 256).
	MaxImports int
	// BioTryLimit is the biometric try limit (default 5).
	BioTryLimit int
	// PUKTryLimit is the PUK try limit (default 10).
	PUKTryLimit int
	// Mutant, when set, names an entry of Mutants: the device then has
	// that deliberate defect. For proving the conformance suite fails such
	// a device; never set on a device under certification.
	Mutant string
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxLedger, 64)
	def(&c.MaxTokens, 8)
	def(&c.MaxTransfers, 16)
	def(&c.MaxImports, 256)
	def(&c.BioTryLimit, 5)
	def(&c.PUKTryLimit, 10)
	if c.BioTryLimit > 15 {
		c.BioTryLimit = 15
	}
	if c.PUKTryLimit > 15 {
		c.PUKTryLimit = 15
	}
	return c
}

// Device is the reference SPD application.
type Device struct {
	mu  sync.Mutex
	st  store.Store
	cfg Config
	rng io.Reader

	// Mirror of persistent memory, loaded at power-on and updated only
	// after a transaction commits.
	id       []byte
	caPub    *ecdsa.PublicKey
	key      *ecdsa.PrivateKey
	pubBytes []byte
	prof     *spd.Profile
	hostPub  *ecdsa.PublicKey
	pin      string
	c        counters
	pend     []record // by ATC
	tokens   map[string]token
	xfers    map[uint64]transfer
	imports  int

	// Volatile (RAM) state.
	powered  bool
	dead     bool // torn: silent until PowerOn
	broken   bool // persistent memory unreadable: 6581 to everything
	selected bool
	verified bool
	rest     []byte // the part of the last response not yet fetched
	mut      mutantState
	memo     sigMemo
	certs    certMemo
}

// New returns a powered device on st. A new store holds a blank device.
func New(st store.Store, cfg Config) *Device {
	d := &Device{st: st, cfg: cfg.withDefaults()}
	if len(cfg.Seed) > 0 {
		d.rng = newDRBG(cfg.Seed)
	} else {
		d.rng = rand.Reader
	}
	d.powerOn()
	return d
}

// Store returns the device's persistent memory.
func (d *Device) Store() store.Store { return d.st }

// TearAt arms a power cut at the nth persistent write from now (see
// store.Store.TearAt). The command that reaches it gets no answer, and
// the device stays silent until PowerOn.
func (d *Device) TearAt(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.TearAt(n)
}

// PowerOn applies power: the store recovers (rolling a committed journal
// forward or dropping an uncommitted one) and the device reloads its state.
func (d *Device) PowerOn() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.powerOn()
}

func (d *Device) powerOn() {
	rest := d.rest
	d.clearSession()
	if d.bug("power-keeps-pending") {
		d.rest = rest
	}
	d.powered, d.dead, d.broken = true, false, false
	d.mut.deferred = nil // volatile memory is gone
	if err := d.st.Recover(); err != nil {
		d.broken = true
		return
	}
	if err := d.load(); err != nil {
		d.broken = true
	}
	if d.bug("pin-tries-volatile") && d.prof != nil && d.tries(keyPINTries) < d.prof.PINTryLimit {
		_ = d.put(keyPINTries, []byte{byte(d.prof.PINTryLimit)})
	}
}

// PowerOff removes power: the session ends and Process answers nothing.
func (d *Device) PowerOff() {
	d.mu.Lock()
	defer d.mu.Unlock()
	rest := d.rest
	d.clearSession()
	if d.bug("power-keeps-pending") {
		d.rest = rest
	}
	d.powered = false
}

// Reset is a warm reset: the session ends (selection, verification). A
// device silenced by a tear stays silent until PowerOn.
func (d *Device) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	rest := d.rest
	if !d.bug("reset-keeps-session") {
		d.clearSession()
	}
	if d.bug("reset-keeps-pending") {
		d.rest = rest
	}
}

func (d *Device) clearSession() {
	d.selected, d.verified, d.rest = false, false, nil
}

// load reads persistent memory into the mirror.
func (d *Device) load() error {
	d.id, d.caPub, d.key, d.pubBytes, d.prof, d.hostPub, d.pin = nil, nil, nil, nil, nil, nil, ""
	d.c = counters{}
	d.pend, d.tokens, d.xfers, d.imports = nil, map[string]token{}, map[uint64]transfer{}, 0
	if b, ok := d.st.Get(keyCounters); ok {
		c, err := parseCounters(b)
		if err != nil {
			return err
		}
		d.c = c
	}
	if b, ok := d.st.Get(keyInit); ok {
		if len(b) != spd.DeviceIDLen+65+32 {
			return errCorrupt
		}
		pub, err := spd.ParsePublicKey(b[8:73])
		if err != nil {
			return errCorrupt
		}
		key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b[73:])
		if err != nil {
			return errCorrupt
		}
		d.id, d.caPub, d.key = append([]byte(nil), b[:8]...), pub, key
		d.pubBytes = spd.PublicKeyBytes(&key.PublicKey)
	}
	if b, ok := d.st.Get(keyProfile); ok {
		p, err := spd.ParseProfile(b)
		if err != nil {
			return errCorrupt
		}
		d.prof = &p
		d.hostPub = p.HostPublicKey
		if d.hostPub == nil {
			d.hostPub = d.caPub
		}
	}
	if b, ok := d.st.Get(keyPIN); ok {
		d.pin = string(b)
	}
	for _, k := range d.st.Keys(prefixPend) {
		b, _ := d.st.Get(k)
		r, err := parseRecord(b)
		if err != nil {
			return err
		}
		d.pend = append(d.pend, r)
	}
	sort.Slice(d.pend, func(i, j int) bool { return d.pend[i].ATC < d.pend[j].ATC })
	for _, k := range d.st.Keys(prefixTok) {
		b, _ := d.st.Get(k)
		t, err := parseToken(b)
		if err != nil {
			return err
		}
		d.tokens[strings.TrimPrefix(k, prefixTok)] = t
	}
	for _, k := range d.st.Keys(prefixXfer) {
		b, _ := d.st.Get(k)
		t, err := parseTransfer(b)
		if err != nil {
			return err
		}
		serial, err := strconv.ParseUint(strings.TrimPrefix(k, prefixXfer), 16, 64)
		if err != nil {
			return errCorrupt
		}
		d.xfers[serial] = t
	}
	d.imports = len(d.st.Keys(prefixImp))
	return nil
}

// Process answers one command APDU. It returns nil when power was cut
// during the command (a tear) and until the next PowerOn.
func (d *Device) Process(command []byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.powered || d.dead {
		return nil
	}
	d.noteBeforeCommand(command)
	resp := d.process(command)
	if d.dead {
		d.clearSession()
		return d.mutateResponse(command, nil)
	}
	return d.mutateResponse(command, resp)
}

func swOnly(sw apdu.SW) []byte { return []byte{sw.SW1(), sw.SW2()} }

func (d *Device) process(raw []byte) []byte {
	d.commitDeferred()
	cmd, err := apdu.ParseCommand(raw)
	if err != nil {
		var pe *apdu.ParseError
		if errors.As(err, &pe) {
			return swOnly(pe.SW)
		}
		return swOnly(apdu.SWWrongLength)
	}
	if d.broken {
		return swOnly(apdu.SWMemoryFailure)
	}
	if cmd.CLA == spd.CLAISO && spd.INS(cmd.INS) == spd.INSGetResponse {
		return d.getResponse(cmd)
	}
	if !d.bug("command-keeps-pending") {
		d.rest = nil
	}
	data, sw := d.dispatch(cmd)
	if sw != apdu.SWOK {
		return swOnly(sw)
	}
	return d.chain(data, cmd.Ne)
}

// chain answers data, splitting it at Ne (256 when absent) with 61xx
// (SPD-APP-5).
func (d *Device) chain(data []byte, ne int) []byte {
	if ne == 0 {
		ne = apdu.MaxShortLe
	}
	if len(data) <= ne {
		return apdu.Response{Data: data, SW: apdu.SWOK}.Bytes()
	}
	d.rest = data[ne:]
	n := len(d.rest)
	if d.bug("more-count-total") {
		n = len(data)
	}
	return apdu.Response{Data: data[:ne], SW: d.moreSW(n)}.Bytes()
}

// moreSW is 61xx for n bytes remaining: xx = n, 00 for 256 or more.
func (d *Device) moreSW(n int) apdu.SW {
	switch {
	case n > 255 && d.bug("more-count-wraps"):
		n &= 0xFF
	case n > 255:
		n = 0
	}
	return apdu.SWBytesAvailable | apdu.SW(n)
}

func (d *Device) getResponse(cmd apdu.Command) []byte {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		if d.bug("getresponse-p1p2-6985") && len(d.rest) > 0 {
			d.rest = nil
			return swOnly(apdu.SWConditionsNotSat)
		}
		if !d.bug("getresponse-6a86-keeps") {
			d.rest = nil
		}
		return swOnly(apdu.SWIncorrectP1P2)
	}
	if d.bug("getresponse-idle-9000") && len(d.rest) == 0 {
		return swOnly(apdu.SWOK)
	}
	if len(d.rest) == 0 || len(cmd.Data) != 0 {
		if !d.bug("getresponse-data-keeps") || len(d.rest) == 0 {
			d.rest = nil
		}
		return swOnly(apdu.SWConditionsNotSat)
	}
	rest := d.rest
	d.rest = nil
	if d.bug("getresponse-ignores-le") {
		return d.chain(rest, 0) // Ne 256, whatever the Le
	}
	return d.chain(rest, cmd.Ne)
}

type handler func(d *Device, cmd apdu.Command) ([]byte, apdu.SW)

var isoHandlers = map[spd.INS]handler{
	spd.INSSelect:               (*Device).doSelect,
	spd.INSGetData:              (*Device).doGetData,
	spd.INSGetDataList:          (*Device).doGetDataList,
	spd.INSGetChallenge:         (*Device).doGetChallenge,
	spd.INSInternalAuthenticate: (*Device).doInternalAuthenticate,
	spd.INSVerify:               (*Device).doVerify,
	spd.INSChangeReferenceData:  (*Device).doChangePIN,
	spd.INSResetRetryCounter:    (*Device).doResetRetryCounter,
}

var proprietaryHandlers = map[spd.INS]handler{
	spd.INSInitialise:       (*Device).doInitialise,
	spd.INSPersonalise:      (*Device).doPersonalise,
	spd.INSActivate:         (*Device).doActivate,
	spd.INSPay:              (*Device).doPay,
	spd.INSReadPending:      (*Device).doReadPending,
	spd.INSAcknowledge:      (*Device).doAcknowledge,
	spd.INSUpdateParameters: (*Device).doUpdate,
	spd.INSGenerateMedium:   (*Device).doGenerateMedium,
	spd.INSGenerateToken:    (*Device).doGenerateToken,
	spd.INSTransfer:         (*Device).doTransfer,
	spd.INSTransferIn:       (*Device).doTransferIn,
	spd.INSReclaim:          (*Device).doReclaim,
	spd.INSParseMedium:      (*Device).doParse,
	spd.INSStoreMedium:      (*Device).doStoreMedium,
	spd.INSReadMedia:        (*Device).doReadMedia,
	spd.INSTestErase:        (*Device).doTestErase,
	spd.INSPresentCode:      (*Device).doPresentCode,
	spd.INSExchange:         (*Device).doExchange,
}

// allowed lists the states each command runs in (SPEC.md section 2).
var allowed = map[spd.INS][]spd.State{
	spd.INSGetChallenge:         {spd.StatePersonalised, spd.StateActive, spd.StateBlocked},
	spd.INSInternalAuthenticate: {spd.StatePersonalised, spd.StateActive, spd.StateBlocked},
	spd.INSVerify:               {spd.StatePersonalised, spd.StateActive, spd.StateBlocked},
	spd.INSChangeReferenceData:  {spd.StatePersonalised, spd.StateActive, spd.StateBlocked},
	spd.INSResetRetryCounter:    {spd.StatePersonalised, spd.StateActive, spd.StateBlocked},
	spd.INSInitialise:           {spd.StateBlank, spd.StateInitialised},
	spd.INSPersonalise:          {spd.StateInitialised},
	spd.INSActivate:             {spd.StatePersonalised},
	spd.INSPay:                  {spd.StateActive},
	spd.INSPresentCode:          {spd.StateActive},
	spd.INSExchange:             {spd.StateActive},
	spd.INSReadPending:          {spd.StatePersonalised, spd.StateActive, spd.StateBlocked, spd.StateTerminated},
	spd.INSAcknowledge:          {spd.StatePersonalised, spd.StateActive, spd.StateBlocked, spd.StateTerminated},
	spd.INSUpdateParameters:     {spd.StatePersonalised, spd.StateActive, spd.StateBlocked},
	spd.INSGenerateMedium:       {spd.StateActive},
	spd.INSGenerateToken:        {spd.StateActive},
	spd.INSTransfer:             {spd.StateActive, spd.StateBlocked},
	spd.INSTransferIn:           {spd.StateActive},
	spd.INSReclaim:              {spd.StateActive, spd.StateBlocked},
	spd.INSParseMedium:          {spd.StatePersonalised, spd.StateActive, spd.StateBlocked},
	spd.INSStoreMedium:          {spd.StatePersonalised, spd.StateActive, spd.StateBlocked},
	spd.INSReadMedia:            {spd.StatePersonalised, spd.StateActive, spd.StateBlocked},
	spd.INSTestErase:            {spd.StateInitialised, spd.StatePersonalised, spd.StateActive, spd.StateBlocked, spd.StateTerminated},
}

func (d *Device) dispatch(cmd apdu.Command) ([]byte, apdu.SW) {
	var table map[spd.INS]handler
	switch cmd.CLA {
	case spd.CLAISO:
		table = isoHandlers
	case spd.CLAProprietary:
		table = proprietaryHandlers
	default:
		if d.bug("cla-6d00") {
			return nil, apdu.SWInsNotSupported
		}
		return nil, apdu.SWClaNotSupported
	}
	ins := spd.INS(cmd.INS)
	if d.bug("selection-before-ins") && !d.selected && ins != spd.INSSelect {
		return nil, apdu.SWConditionsNotSat
	}
	h, ok := table[ins]
	if !ok {
		return nil, apdu.SWInsNotSupported
	}
	if d.bug("p1p2-before-state") && ins == spd.INSPay && (cmd.P1 == 0 || cmd.P1 > 3 || cmd.P2 > 1) {
		return nil, apdu.SWIncorrectP1P2
	}
	if d.bug("erase-p1p2-before-state") && ins == spd.INSTestErase && d.selected && (cmd.P1 != 0 || cmd.P2 != 0) {
		return nil, apdu.SWIncorrectP1P2
	}
	if ins != spd.INSSelect {
		if !d.selected && !(d.bug("getdata-unselected") && ins == spd.INSGetData) {
			return nil, apdu.SWConditionsNotSat
		}
		if states, ok := allowed[ins]; ok {
			in := false
			for _, s := range states {
				if s == d.c.State {
					in = true
					break
				}
			}
			if (!in && !d.stateBypass(ins)) || d.stateRefusal(ins) {
				return nil, apdu.SWConditionsNotSat
			}
		}
	}
	return h(d, cmd)
}

// fail turns a store error into the answer: a tear silences the device;
// any other failure reloads the mirror and answers 6581.
func (d *Device) fail(err error) apdu.SW {
	if errors.Is(err, store.ErrTorn) {
		d.dead = true
		return apdu.SWMemoryFailure
	}
	if lerr := d.load(); lerr != nil {
		d.broken = true
	}
	return apdu.SWMemoryFailure
}

// put writes one key outside a transaction (the try counters).
func (d *Device) put(key string, value []byte) apdu.SW {
	if err := d.st.Put(key, value); err != nil {
		return d.fail(err)
	}
	return apdu.SWOK
}

func (d *Device) commit(tx store.Tx) apdu.SW {
	if err := tx.Commit(); err != nil {
		return d.fail(err)
	}
	return apdu.SWOK
}

func (d *Device) tries(key string) int {
	b, ok := d.st.Get(key)
	if !ok || len(b) != 1 {
		return 0
	}
	return int(b[0])
}

func (d *Device) randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(d.rng, b); err != nil {
		panic("device: random source failed: " + err.Error())
	}
	return b
}

// drbg is a deterministic byte stream, SHA-256 in counter mode over a seed,
// for reproducible tests (Config.Seed).
type drbg struct {
	seed []byte
	ctr  uint64
	buf  []byte
}

func newDRBG(seed []byte) *drbg { return &drbg{seed: bytes.Clone(seed)} }

func (g *drbg) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(g.buf) == 0 {
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], g.ctr)
			g.ctr++
			h := sha256.Sum256(append(append([]byte("SPDLAB-DRBG"), g.seed...), c[:]...))
			g.buf = h[:]
		}
		k := copy(p[n:], g.buf)
		g.buf = g.buf[k:]
		n += k
	}
	return n, nil
}

// signDigest signs a SHA-256 digest with the device key, RFC 6979
// deterministic ECDSA: the signature is a function of the key and the
// digest, so a record that READ PENDING exports again carries the same
// bytes every time, and the device answers a digest it has signed under
// the same key from its memo (sigMemo) instead of signing it again.
func (d *Device) signDigest(digest []byte) ([]byte, error) {
	if d.key == nil || len(digest) != sha256.Size {
		return d.key.Sign(nil, digest, crypto.SHA256)
	}
	if d.memo.key == nil || !d.memo.key.Equal(d.key) {
		d.memo = sigMemo{key: d.key, sigs: map[[sha256.Size]byte][]byte{}}
	}
	k := [sha256.Size]byte(digest)
	if sig, ok := d.memo.sigs[k]; ok {
		return slices.Clone(sig), nil
	}
	sig, err := d.key.Sign(nil, digest, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	if len(d.memo.sigs) >= sigMemoSize {
		clear(d.memo.sigs)
	}
	d.memo.sigs[k] = sig
	return slices.Clone(sig), nil
}

// sigMemo holds the signatures the device made under one key, by digest
// (volatile, like a cache in RAM: it changes no answer, since RFC 6979
// signs a digest the same way every time). Its size bounds it; the
// ledger's 64 records, read again and again, fit with room to spare.
type sigMemo struct {
	key  *ecdsa.PrivateKey
	sigs map[[sha256.Size]byte][]byte
}

const sigMemoSize = 256

// certMemo holds the device certificates that verified under one issuer
// CA (spd.VerifyDeviceCertificate), with the key and device ID each
// certifies: a pure function of the certificate and the CA, memoised in
// RAM so that the media of one payer (TRANSFER IN, PARSE MEDIUM) do not
// have their certificate's signature checked again. Only certificates
// that verified are kept; any other is checked every time.
type certMemo struct {
	ca    *ecdsa.PublicKey
	certs map[string]certified
}

type certified struct {
	pub                 *ecdsa.PublicKey
	id                  []byte
	notBefore, notAfter time.Time
}

// verify checks a medium carrying the certificate, as
// medium.VerifyCertificate does after the certificate's own checks (which
// it passed when it was memoised: signed by the CA with ECDSA-SHA256, a
// P-256 key): the medium issued within the certificate's validity (a 9A
// of 0 as 1970-01-01, SPD-MED-6), and signed by the certified key.
func (c certified) verify(m *medium.Medium) error {
	iss := m.Info.Issued
	if iss.IsZero() {
		iss = time.Unix(0, 0).UTC()
	}
	if iss.Before(c.notBefore) || iss.After(c.notAfter) {
		return errors.New("device: medium issued outside its device certificate's validity")
	}
	return m.Verify(c.pub)
}

const certMemoSize = 64

func (m *certMemo) get(cert []byte, ca *ecdsa.PublicKey) (certified, bool) {
	if ca == nil || m.ca == nil || !m.ca.Equal(ca) {
		return certified{}, false
	}
	c, ok := m.certs[string(cert)]
	return c, ok
}

func (m *certMemo) put(cert []byte, ca *ecdsa.PublicKey, c certified) {
	if ca == nil {
		return
	}
	if m.ca == nil || !m.ca.Equal(ca) || len(m.certs) >= certMemoSize {
		m.ca, m.certs = ca, map[string]certified{}
	}
	m.certs[string(cert)] = c
}

// signer is the device key as medium.Sign uses it.
type signer struct{ d *Device }

func (s signer) Public() crypto.PublicKey { return &s.d.key.PublicKey }

func (s signer) Sign(_ io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	return s.d.signDigest(digest)
}

// generateKey makes the device key pair: from crypto/rand, or derived from
// Config.Seed and the device ID for tests.
func (d *Device) generateKey(id []byte) (*ecdsa.PrivateKey, error) {
	if len(d.cfg.Seed) == 0 {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	for i := 0; ; i++ {
		h := sha256.Sum256(append(append(append([]byte("SPDLAB-KEY"), d.cfg.Seed...), id...), byte(i)))
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), h[:]); err == nil {
			return k, nil
		}
	}
}
