package device

import (
	"crypto/subtle"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

func (d *Device) doGetChallenge(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	if len(cmd.Data) != 0 || (cmd.Ne != spd.ChallengeLen && cmd.Ne != apdu.MaxShortLe && !d.bug("challenge-any-le")) {
		return nil, apdu.SWWrongLength
	}
	if d.bug("challenge-repeats") {
		return make([]byte, spd.ChallengeLen), apdu.SWOK
	}
	return d.randBytes(spd.ChallengeLen), apdu.SWOK
}

func (d *Device) doInternalAuthenticate(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	if len(cmd.Data) < 1 || (len(cmd.Data) > 64 && !(d.bug("intauth-65") && len(cmd.Data) == 65)) {
		return nil, apdu.SWWrongLength
	}
	id := d.id
	if d.bug("intauth-no-id") {
		id = nil
	}
	sig, err := d.signDigest(spd.AuthenticationDigest(id, cmd.Data))
	if err != nil {
		return nil, apdu.SWUnknown
	}
	return sig, apdu.SWOK
}

// checkSecret runs the try-counter protocol (SPD-PIN-2): the counter is
// decremented and written before the comparison, and restored after a
// match. match is only called once the decrement is persistent.
func (d *Device) checkSecret(triesKey string, limit int, match func() bool) apdu.SW {
	left := d.tries(triesKey)
	if left <= 0 && !(d.bug("blocked-accepts-right") && match()) {
		return apdu.SWAuthBlocked
	}
	if ((d.bug("verify-compare-first") && triesKey == keyPINTries) || (d.bug("puk-compare-first") && triesKey == keyPUKTries)) && match() {
		return d.put(triesKey, []byte{byte(limit)})
	}
	if sw := d.put(triesKey, []byte{byte(max(left-1, 0))}); sw != apdu.SWOK {
		return sw
	}
	if !match() {
		if d.bug("verify-tries-before") || (d.bug("bio-tries-before") && triesKey == keyBioTries) {
			return apdu.VerifyFailed(left)
		}
		return apdu.VerifyFailed(left - 1)
	}
	if d.bug("pin-match-keeps-count") && triesKey == keyPINTries {
		return d.put(triesKey, []byte{byte(left)})
	}
	return d.put(triesKey, []byte{byte(limit)})
}

func pinDigits(b []byte, min, max int) bool {
	if len(b) < min || len(b) > max {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func equalSecret(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (d *Device) doVerify(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	switch cmd.P2 {
	case spd.P2PIN:
		if len(cmd.Data) == 0 {
			left := d.tries(keyPINTries)
			switch {
			case d.bug("status-verified-first") && d.verified:
				return nil, apdu.SWOK
			case left == 0:
				return nil, apdu.SWAuthBlocked
			case d.verified && !d.bug("verify-status-verified"):
				return nil, apdu.SWOK
			}
			return nil, apdu.VerifyFailed(left)
		}
		if !pinDigits(cmd.Data, 4, 12) && !d.bug("verify-malformed-try") && !(d.bug("pin-13-digits") && pinDigits(cmd.Data, 13, 13)) {
			if d.bug("verify-malformed-ends-session") {
				d.verified = false
			}
			return nil, apdu.SWWrongData
		}
		if d.bug("blocked-keeps-session") && d.tries(keyPINTries) == 0 {
			return nil, apdu.SWAuthBlocked
		}
		was := d.verified && d.bug("verify-fail-keeps-session")
		d.verified = false
		pin := string(cmd.Data)
		limit := d.prof.PINTryLimit
		if d.bug("pin-limit-3") {
			limit = 3
		}
		sw := d.checkSecret(keyPINTries, limit, func() bool { return equalSecret(pin, d.pin) })
		d.verified = sw == apdu.SWOK || was
		return nil, sw
	case spd.P2Biometric:
		if len(d.prof.BioTemplate) == 0 && d.bug("bio-no-template-63c") {
			return nil, apdu.VerifyFailed(d.tries(keyBioTries))
		}
		if len(d.prof.BioTemplate) == 0 {
			if d.bug("bio-no-template-ends-session") {
				d.verified = false
			}
			return nil, apdu.SWRefDataNotFound
		}
		if len(cmd.Data) == 0 {
			left := d.tries(keyBioTries)
			switch {
			case d.bug("status-verified-first") && d.verified:
				return nil, apdu.SWOK
			case left == 0:
				return nil, apdu.SWAuthBlocked
			case d.verified:
				return nil, apdu.SWOK
			}
			return nil, apdu.VerifyFailed(left)
		}
		if len(cmd.Data) != spd.BioTemplateLen {
			return nil, apdu.SWWrongLength
		}
		if d.bug("blocked-keeps-session") && d.tries(keyBioTries) == 0 {
			return nil, apdu.SWAuthBlocked
		}
		was := d.verified && d.bug("bio-fail-keeps-session")
		d.verified = false
		sample := cmd.Data
		matches := func() bool {
			dist := BioDistance(sample, d.prof.BioTemplate)
			return dist <= uint64(d.prof.BioThreshold) && !(d.bug("bio-threshold-strict") && dist == uint64(d.prof.BioThreshold))
		}
		if d.bug("bio-no-try") && !matches() && d.tries(keyBioTries) > 0 {
			return nil, apdu.VerifyFailed(d.tries(keyBioTries))
		}
		key, limit := keyBioTries, d.cfg.BioTryLimit
		if d.bug("bio-spends-pin") {
			key, limit = keyPINTries, d.prof.PINTryLimit
		}
		sw := d.checkSecret(key, limit, matches)
		d.verified = sw == apdu.SWOK || was
		return nil, sw
	}
	return nil, apdu.SWIncorrectP1P2
}

// BioDistance is the match score of SPEC.md SPD-BIO-1: the squared
// Euclidean distance between two feature vectors of 16 unsigned bytes.
func BioDistance(a, b []byte) uint64 {
	var sum uint64
	for i := range a {
		if i >= len(b) {
			break
		}
		diff := int64(a[i]) - int64(b[i])
		sum += uint64(diff * diff)
	}
	return sum
}

func (d *Device) doChangePIN(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != spd.P2PIN {
		return nil, apdu.SWIncorrectP1P2
	}
	c, err := spd.ParseChangePIN(cmd.Data)
	if err != nil {
		if d.bug("change-pin-malformed-ends-session") {
			d.verified = false
		}
		return nil, parseErr(err)
	}
	d.verified = false
	if d.bug("change-pin-no-try") && !equalSecret(c.Old, d.pin) && d.tries(keyPINTries) > 0 {
		return nil, apdu.VerifyFailed(d.tries(keyPINTries))
	}
	var sw apdu.SW
	if d.bug("change-pin-compare-first") && equalSecret(c.Old, d.pin) {
		sw = d.put(keyPINTries, []byte{byte(d.prof.PINTryLimit)})
	} else {
		sw = d.checkSecret(keyPINTries, d.prof.PINTryLimit, func() bool { return equalSecret(c.Old, d.pin) || d.bug("change-pin-any-old") })
	}
	if sw != apdu.SWOK {
		return nil, sw
	}
	tx := d.st.Begin()
	tx.Put(keyPIN, []byte(c.NewPIN))
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.pin = c.NewPIN
	d.verified = !d.bug("change-pin-unverified")
	return nil, apdu.SWOK
}

func (d *Device) doResetRetryCounter(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P2 != spd.P2PIN {
		return nil, apdu.SWIncorrectP1P2
	}
	switch cmd.P1 {
	case spd.P1UnblockPUK:
		c, err := spd.ParseUnblockPUK(cmd.Data)
		if err != nil {
			if d.bug("puk-malformed-try") {
				if left := d.tries(keyPUKTries); left > 0 {
					d.put(keyPUKTries, []byte{byte(left - 1)})
				}
			}
			return nil, parseErr(err)
		}
		if d.bug("puk-no-try") && !equalSecret(c.PUK, d.prof.PUK) && d.tries(keyPUKTries) > 0 {
			return nil, apdu.VerifyFailed(d.tries(keyPUKTries))
		}
		sw := d.checkSecret(keyPUKTries, d.cfg.PUKTryLimit, func() bool { return equalSecret(c.PUK, d.prof.PUK) })
		if sw != apdu.SWOK {
			return nil, sw
		}
		tx := d.begin(spd.INSResetRetryCounter)
		if !d.bug("puk-keeps-block") {
			tx.Put(keyPINTries, []byte{byte(d.prof.PINTryLimit)})
		}
		if d.bug("puk-resets-bio") {
			tx.Put(keyBioTries, []byte{byte(d.cfg.BioTryLimit)})
		}
		if c.NewPIN != "" {
			tx.Put(keyPIN, []byte(c.NewPIN))
		}
		if sw := d.commit(tx); sw != apdu.SWOK {
			return nil, sw
		}
		if c.NewPIN != "" {
			d.pin = c.NewPIN
		}
		if d.bug("puk-verifies") {
			d.verified = true
		}
		return nil, apdu.SWOK
	case spd.P1UnblockHost:
		body, err := d.openHost(spd.INSResetRetryCounter, cmd.Data)
		if err != nil {
			return nil, parseErr(err)
		}
		u, err := spd.ParseUnblock(body)
		if err != nil {
			return nil, parseErr(err)
		}
		if u.Counter <= d.c.UpdateCounter && !d.bug("host-unblock-replay") {
			return nil, apdu.SWRefDataNotUsable
		}
		nc := d.c
		nc.UpdateCounter = u.Counter
		tx := d.st.Begin()
		tx.Put(keyCounters, nc.marshal())
		tx.Put(keyPINTries, []byte{byte(d.prof.PINTryLimit)})
		if !d.bug("host-unblock-keeps-puk") {
			tx.Put(keyPUKTries, []byte{byte(d.cfg.PUKTryLimit)})
		}
		if d.bug("host-unblock-resets-bio") {
			tx.Put(keyBioTries, []byte{byte(d.cfg.BioTryLimit)})
		}
		if u.NewPIN != "" {
			tx.Put(keyPIN, []byte(u.NewPIN))
		}
		if sw := d.commit(tx); sw != apdu.SWOK {
			return nil, sw
		}
		d.c = nc
		if u.NewPIN != "" {
			d.pin = u.NewPIN
		}
		return nil, apdu.SWOK
	}
	return nil, apdu.SWIncorrectP1P2
}
