//go:build cgo

package pcsc

import (
	"errors"
	"strings"
	"testing"

	"github.com/ebfe/scard"

	"github.com/spdlab/spdlab/rigs/link"
)

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		in   scard.Error
		is   error
		text string
	}{
		{scard.ErrNoService, ErrNoService, "pcsc: cannot reach pcscd (is the pcscd service running?"},
		{scard.ErrServiceStopped, ErrNoService, "pcsc: cannot reach pcscd"},
		{scard.ErrNoReadersAvailable, ErrNoReader, "no reader attached"},
		{scard.ErrUnknownReader, ErrNoReader, "pcsc: no such reader"},
		{scard.ErrNoSmartcard, link.ErrNoCard, "link: no device present (reader Virtual PCD 00 00)"},
		{scard.ErrRemovedCard, link.ErrRemoved, "removed"},
		{scard.ErrNotTransacted, link.ErrRemoved, "removed"},
		{scard.ErrUnresponsiveCard, link.ErrRemoved, "removed"},
		{scard.ErrSharingViolation, ErrInUse, "pcsc: reader in exclusive use by another program (reader Virtual PCD 00 00)"},
		{scard.ErrInvalidParameter, scard.ErrInvalidParameter, "pcsc"},
	}
	for _, tt := range tests {
		err := wrap(tt.in, "Virtual PCD 00 00")
		if !errors.Is(err, tt.is) {
			t.Errorf("wrap(%v) = %v, want it to match %v", tt.in, err, tt.is)
		}
		if !strings.Contains(err.Error(), tt.text) {
			t.Errorf("wrap(%v) = %q, want it to say %q", tt.in, err, tt.text)
		}
	}
}
