package device

// Sessions gives a device one session per logical channel of a card with
// logical channels (an eUICC, SPEC.md SPD-ESIM-2): selection, cardholder
// verification and the pending GET RESPONSE belong to a channel, while
// persistent memory is the device's one. The card OS that owns the
// channels (emulator/esim) strips the channel from the class byte before
// it calls Process.
type Sessions struct {
	d *Device
	s [MaxChannels]session

	// last is the session of the channel that answered last, which the
	// esim-*-shared mutants serve on every channel.
	last session
}

// MaxChannels is the number of logical channels a card offers: 0..3.
const MaxChannels = 4

// session is one channel's volatile state.
type session struct {
	selected, verified bool
	rest               []byte
}

// NewSessions serves d on MaxChannels channels.
func NewSessions(d *Device) *Sessions { return &Sessions{d: d} }

// Process answers command (its class byte without a channel) on channel
// ch. It returns nil after a tear, as Device.Process does.
func (s *Sessions) Process(ch int, command []byte) []byte {
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.powered || d.dead || ch < 0 || ch >= MaxChannels {
		return nil
	}
	d.selected, d.verified, d.rest = s.s[ch].selected, s.s[ch].verified, s.s[ch].rest
	if d.bug("esim-verified-shared") {
		d.verified = s.last.verified
	}
	if d.bug("esim-pending-shared") {
		d.rest = s.last.rest
	}
	resp := d.process(command)
	s.s[ch] = session{d.selected, d.verified, d.rest}
	s.last = s.s[ch]
	d.clearSession()
	if d.dead {
		s.s, s.last = [MaxChannels]session{}, session{}
		return nil
	}
	return resp
}

// Close ends the session of channel ch (MANAGE CHANNEL close, or another
// application selected on it).
func (s *Sessions) Close(ch int) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if ch >= 0 && ch < MaxChannels {
		s.s[ch] = session{}
	}
	if s.d.bug("esim-close-ends-all") {
		s.s, s.last = [MaxChannels]session{}, session{}
	}
}

func (s *Sessions) closeAll() {
	s.d.mu.Lock()
	s.s, s.last = [MaxChannels]session{}, session{}
	s.d.mu.Unlock()
}

// PowerOn applies power and ends every session.
func (s *Sessions) PowerOn() { s.closeAll(); s.d.PowerOn() }

// PowerOff removes power and ends every session.
func (s *Sessions) PowerOff() { s.closeAll(); s.d.PowerOff() }

// Reset is a warm reset: every session ends.
func (s *Sessions) Reset() { s.closeAll(); s.d.Reset() }

// TearAt arms a power cut, as Device.TearAt.
func (s *Sessions) TearAt(n int) { s.d.TearAt(n) }
