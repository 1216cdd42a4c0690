package link

// Abilities are the optional abilities of a link, nil where it lacks one.
type Abilities struct {
	Resetter    Resetter
	PowerCycler PowerCycler
	ATRer       ATRer
	Raw         RawExchanger
}

// AbilitiesOf finds l's abilities with As, under any wrappers.
func AbilitiesOf(l Link) Abilities {
	var a Abilities
	a.Resetter, _ = As[Resetter](l)
	a.PowerCycler, _ = As[PowerCycler](l)
	a.ATRer, _ = As[ATRer](l)
	a.Raw, _ = As[RawExchanger](l)
	return a
}

// Wrapper is a link that wraps another: what Compose builds on.
type Wrapper interface {
	Link
	Unwrapper
}

// Compose returns a link that is w with exactly the abilities a has: a
// link.Resetter only when a.Resetter is set, and so on. A wrapping link
// (a recorder, a gate, a twin) gives what it wraps no ability the wrapped
// link lacks, so that a caller asking for one is never told yes and then
// failed at run time.
//
// A wrapper that passes raw exchanges on must give its own RawExchanger
// (one that records, gates or follows them as it does exchanges), never
// the wrapped link's: a raw exchange that went round the wrapper would
// escape its recording or its gate.
func Compose(w Wrapper, a Abilities) Link {
	rs, pc, at, rw := a.Resetter, a.PowerCycler, a.ATRer, a.Raw
	var n int
	for i, set := range []bool{rs != nil, pc != nil, at != nil, rw != nil} {
		if set {
			n |= 1 << i
		}
	}
	type (
		R = Resetter
		P = PowerCycler
		A = ATRer
		X = RawExchanger
	)
	switch n {
	case 0b0001:
		return struct {
			Wrapper
			R
		}{w, rs}
	case 0b0010:
		return struct {
			Wrapper
			P
		}{w, pc}
	case 0b0011:
		return struct {
			Wrapper
			R
			P
		}{w, rs, pc}
	case 0b0100:
		return struct {
			Wrapper
			A
		}{w, at}
	case 0b0101:
		return struct {
			Wrapper
			R
			A
		}{w, rs, at}
	case 0b0110:
		return struct {
			Wrapper
			P
			A
		}{w, pc, at}
	case 0b0111:
		return struct {
			Wrapper
			R
			P
			A
		}{w, rs, pc, at}
	case 0b1000:
		return struct {
			Wrapper
			X
		}{w, rw}
	case 0b1001:
		return struct {
			Wrapper
			R
			X
		}{w, rs, rw}
	case 0b1010:
		return struct {
			Wrapper
			P
			X
		}{w, pc, rw}
	case 0b1011:
		return struct {
			Wrapper
			R
			P
			X
		}{w, rs, pc, rw}
	case 0b1100:
		return struct {
			Wrapper
			A
			X
		}{w, at, rw}
	case 0b1101:
		return struct {
			Wrapper
			R
			A
			X
		}{w, rs, at, rw}
	case 0b1110:
		return struct {
			Wrapper
			P
			A
			X
		}{w, pc, at, rw}
	case 0b1111:
		return struct {
			Wrapper
			R
			P
			A
			X
		}{w, rs, pc, at, rw}
	}
	return struct{ Wrapper }{w}
}
