package link

// Abilities are the optional abilities of a link, nil where it lacks one.
type Abilities struct {
	Resetter    Resetter
	PowerCycler PowerCycler
	ATRer       ATRer
}

// AbilitiesOf finds l's abilities with As, under any wrappers.
func AbilitiesOf(l Link) Abilities {
	var a Abilities
	a.Resetter, _ = As[Resetter](l)
	a.PowerCycler, _ = As[PowerCycler](l)
	a.ATRer, _ = As[ATRer](l)
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
func Compose(w Wrapper, a Abilities) Link {
	rs, pc, at := a.Resetter, a.PowerCycler, a.ATRer
	switch {
	case rs != nil && pc != nil && at != nil:
		return struct {
			Wrapper
			Resetter
			PowerCycler
			ATRer
		}{w, rs, pc, at}
	case rs != nil && pc != nil:
		return struct {
			Wrapper
			Resetter
			PowerCycler
		}{w, rs, pc}
	case rs != nil && at != nil:
		return struct {
			Wrapper
			Resetter
			ATRer
		}{w, rs, at}
	case pc != nil && at != nil:
		return struct {
			Wrapper
			PowerCycler
			ATRer
		}{w, pc, at}
	case rs != nil:
		return struct {
			Wrapper
			Resetter
		}{w, rs}
	case pc != nil:
		return struct {
			Wrapper
			PowerCycler
		}{w, pc}
	case at != nil:
		return struct {
			Wrapper
			ATRer
		}{w, at}
	}
	return struct{ Wrapper }{w}
}
