//go:build cgo

package pcsc

// #cgo pkg-config: libpcsclite
// #include <winscard.h>
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/ebfe/scard"
)

// maxResponse is the longest response SCardTransmit can give: an extended
// APDU's 65,536 bytes and the status word, as pcsc-lite's
// MAX_BUFFER_SIZE_EXTENDED (the size scard.Card.Transmit allocates).
const maxResponse = C.MAX_BUFFER_SIZE_EXTENDED

// scardCard is the layout of scard.Card (github.com/ebfe/scard at the
// version go.mod pins): its PC/SC handle and the protocol SCardConnect
// chose. scard.Card.Transmit allocates a new 64 KiB response buffer for
// every command, which with tens of thousands of short commands a run
// (the conformance suite on pcsc-emu) is most of the process's
// allocation and garbage collection; transmitInto lets a Reader keep one.
type scardCard struct {
	handle uintptr
	proto  scard.Protocol
}

// scard.Card must still be that layout (an upgrade of the module that
// changes it fails to compile here, and every exchange test fails on a
// handle read from the wrong place).
var _ [unsafe.Sizeof(scard.Card{}) - unsafe.Sizeof(scardCard{})]struct{}
var _ [unsafe.Sizeof(scardCard{}) - unsafe.Sizeof(scard.Card{})]struct{}

// transmitInto is scard.Card.Transmit with the caller's response buffer
// (at least maxResponse bytes): it sends cmd and returns the response, a
// slice of rsp.
func transmitInto(card *scard.Card, cmd, rsp []byte) ([]byte, error) {
	c := (*scardCard)(unsafe.Pointer(card))
	if c.proto != scard.ProtocolT0 && c.proto != scard.ProtocolT1 {
		return nil, fmt.Errorf("pcsc: the card's protocol is %v, neither T=0 nor T=1", c.proto)
	}
	var sendpci, recvpci C.SCARD_IO_REQUEST
	sendpci.dwProtocol = C.DWORD(c.proto)
	sendpci.cbPciLength = C.sizeof_SCARD_IO_REQUEST
	n := C.DWORD(len(rsp))
	r := C.SCardTransmit(C.SCARDHANDLE(c.handle), &sendpci, (*C.BYTE)(unsafe.Pointer(&cmd[0])), C.DWORD(len(cmd)),
		&recvpci, (*C.BYTE)(unsafe.Pointer(&rsp[0])), &n)
	if r != C.SCARD_S_SUCCESS {
		return nil, scard.Error(r)
	}
	return rsp[:n], nil
}
