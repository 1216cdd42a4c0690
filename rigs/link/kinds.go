package link

import (
	"context"
	"errors"
)

// errorKinds names the link errors a recording keeps across a file, so that
// an error read back still matches its sentinel with errors.Is.
var errorKinds = []struct {
	name string
	err  error
}{
	{"no-card", ErrNoCard},
	{"removed", ErrRemoved},
	{"closed", ErrClosed},
	{"deadline", context.DeadlineExceeded},
	{"canceled", context.Canceled},
}

// ErrorKind names the sentinel err wraps ("no-card", "removed", "closed",
// "deadline", "canceled"), or "" when it wraps none of them.
func ErrorKind(err error) string {
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return ""
}

// KindError returns the sentinel ErrorKind named, and whether the name is
// one of them.
func KindError(name string) (error, bool) {
	for _, k := range errorKinds {
		if k.name == name {
			return k.err, true
		}
	}
	return nil, false
}
