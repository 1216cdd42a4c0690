package sim

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

// vpcdFirstPort is the card-side port of vpcd's first slot in Debian's
// /etc/reader.conf.d/vpcd (CHANNELID 0x8C7B); slot n listens on
// vpcdFirstPort+n and pcscd names it "Virtual PCD 00 0n".
const vpcdFirstPort = 35963

// ReaderName returns the PC/SC reader name pcscd gives the vpcd slot whose
// card side listens at address ("Virtual PCD 00 01" for port 35964), or ""
// when address is not one of vpcd's slots as Debian configures them.
func ReaderName(address string) string {
	_, p, err := net.SplitHostPort(address)
	if err != nil {
		return ""
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < vpcdFirstPort || port >= vpcdFirstPort+16 {
		return ""
	}
	return fmt.Sprintf("Virtual PCD 00 %02X", port-vpcdFirstPort)
}

// Holder is a process holding a vpcd slot, as far as the machine tells.
type Holder struct {
	PID     int       // 0 when unknown
	Command string    // its command line, "" when unknown
	Since   time.Time // when it took the slot (from its lock record), zero when unknown
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "an unknown process"
	}
	s := "pid " + strconv.Itoa(h.PID)
	if h.Command != "" {
		s += " (" + h.Command + ")"
	}
	if !h.Since.IsZero() {
		s += " since " + h.Since.UTC().Format(time.RFC3339)
	}
	return s
}

// SlotBusyError is Run's error when another holder kept the vpcd slot for
// longer than Config.SlotWait. It matches ErrSlotBusy.
type SlotBusyError struct {
	Address string        // the slot tried (vpcd's card-side address)
	Reader  string        // its PC/SC reader name, "" when not a Debian vpcd slot
	Holder  Holder        // who holds it
	Waited  time.Duration // how long Run waited
	Lock    string        // the lock file
}

func (e *SlotBusyError) Error() string {
	slot := e.Address
	if e.Reader != "" {
		slot += fmt.Sprintf(" (reader %q)", e.Reader)
	}
	return fmt.Sprintf("sim: vpcd slot %s is held by %s; waited %v (lock %s)", slot, e.Holder, e.Waited.Round(time.Millisecond), e.Lock)
}

// Is makes SlotBusyError match ErrSlotBusy.
func (e *SlotBusyError) Is(target error) bool { return target == ErrSlotBusy }

var _ error = (*SlotBusyError)(nil)
