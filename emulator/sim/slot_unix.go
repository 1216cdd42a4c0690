//go:build unix

package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The vpcd slot lock, for every program that puts a card in a vpcd slot
// (README.md, "Sharing the vpcd slots", says the same for programs outside
// spdlab):
//
//   - The lock for the slot whose card side is ADDRESS is the file
//     SlotLockPath(ADDRESS): os.TempDir()/spdlab-vpcd-ADDRESS.lock with
//     every character other than letters, digits, '.' and '-' made '_'
//     (/tmp/spdlab-vpcd-127.0.0.1_35963.lock).
//   - Take flock(2) LOCK_EX on it before connecting to vpcd and keep it
//     until the card is out of the slot and pcscd has seen it leave. Open
//     the file with O_CREAT and mode 0666; never remove, rename or replace
//     it: a lock on a file that was unlinked guards nothing, and the next
//     claimant would lock a new file beside it.
//   - A holder may write a record into the file (spdlab does): lines
//     "pid=N", "since=RFC 3339 time" and "command=...". It truncates the
//     file before it unlocks. The kernel's lock table (/proc/locks) is the
//     authority on who holds the lock; the record only adds the command
//     and the time.
//   - Waiting: try LOCK_EX|LOCK_NB, and again every slotPoll until the wait
//     the program allows is over; spdlab reports the holder it waited for.
//   - A record found in the file on taking the lock was left by a holder
//     that ended without letting go (it exited or was killed, its card's
//     connection closed by the kernel): pcscd may not have seen that card
//     leave yet. spdlab's holders touch the file (its modification time)
//     every slotHeartbeat while they hold it, so the holder ended at most
//     slotHeartbeat after the file's time; spdlab keeps its card out of
//     the slot until its removal gap (Config.RemovalGap) has passed since
//     then, which is at once for a holder that ended a while ago.

// slotPoll is how often a waiting claimant tries the lock again.
const slotPoll = 20 * time.Millisecond

// slotHeartbeat is how often a holder touches the lock file.
const slotHeartbeat = 250 * time.Millisecond

// SlotLockPath returns the lock file that guards the vpcd slot at address.
func SlotLockPath(address string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, address)
	return filepath.Join(os.TempDir(), "spdlab-vpcd-"+name+".lock")
}

// claimSlot takes the advisory lock on the vpcd slot at address, waiting up
// to wait for another holder (in this process or another) to let go.
// waiting, when not nil, is told once who holds the slot when claimSlot
// has to wait. left is the holder whose record was still in the file when
// the lock was taken (PID 0 when none): it ended without letting go, at the
// latest at leftBy. The lock file is never removed (see the protocol
// above).
func claimSlot(ctx context.Context, address string, wait time.Duration, waiting func(Holder)) (release func(), left Holder, leftBy time.Time, err error) {
	path := SlotLockPath(address)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	writable := err == nil
	if err == nil {
		// Let other users' programs open it for writing too, whatever our
		// umask; a file someone else made may refuse this, which is fine.
		_ = f.Chmod(0o666)
	} else if errors.Is(err, os.ErrPermission) {
		// Another user made the file without write access for us: a
		// read-only descriptor locks just as well.
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, Holder{}, time.Time{}, fmt.Errorf("sim: vpcd slot lock %s: %w", path, err)
	}
	start := time.Now()
	told := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, Holder{}, time.Time{}, fmt.Errorf("sim: vpcd slot lock %s: %w", path, err)
		}
		if !told && waiting != nil && wait > 0 {
			waiting(slotHolder(f))
			told = true
		}
		if time.Since(start) >= wait {
			h := slotHolder(f)
			f.Close()
			return nil, Holder{}, time.Time{}, &SlotBusyError{Address: address, Reader: ReaderName(address), Holder: h, Waited: time.Since(start), Lock: path}
		}
		if !sleep(ctx, min(slotPoll, wait-time.Since(start))) {
			f.Close()
			return nil, Holder{}, time.Time{}, ctx.Err()
		}
	}
	left = readHolderRecord(f)
	if left.PID != 0 {
		if fi, err := f.Stat(); err == nil {
			leftBy = fi.ModTime().Add(slotHeartbeat)
		}
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	if writable {
		rec := writeHolderRecord(f)
		go func() {
			defer close(stopped)
			t := time.NewTicker(slotHeartbeat)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					// Writing the record's first byte again
					// moves the file's modification time on
					// every Unix with the descriptor we hold:
					// setting times needs ownership of the file,
					// which another user may have made.
					_, _ = f.WriteAt(rec[:1], 0)
				}
			}
		}()
	} else {
		close(stopped)
	}
	return func() {
		close(stop)
		<-stopped
		if writable {
			_ = f.Truncate(0)
		}
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		_ = f.Close()
	}, left, leftBy, nil
}

// writeHolderRecord replaces the file's content with this process's record.
func writeHolderRecord(f *os.File) []byte {
	cmd := commandLine(os.Getpid())
	rec := []byte(fmt.Sprintf("pid=%d\nsince=%s\ncommand=%s\n", os.Getpid(), time.Now().UTC().Format(time.RFC3339Nano), cmd))
	if f.Truncate(0) == nil {
		_, _ = f.WriteAt(rec, 0)
	}
	return rec
}

// slotHolder tells who holds the lock on f: the kernel's lock table names
// the process, the holder's record (when it is that process's) adds the
// time it took the slot.
func slotHolder(f *os.File) Holder {
	var h Holder
	rec := readHolderRecord(f)
	if pid := lockingPID(f); pid != 0 {
		h.PID = pid
	} else {
		h.PID = rec.PID
	}
	if h.PID != 0 {
		h.Command = commandLine(h.PID)
		if h.Command == "" && rec.PID == h.PID {
			h.Command = rec.Command
		}
		if rec.PID == h.PID {
			h.Since = rec.Since
		}
	}
	return h
}

// readHolderRecord parses the record a holder wrote into the lock file.
func readHolderRecord(f *os.File) Holder {
	var h Holder
	b := make([]byte, 4096)
	n, _ := f.ReadAt(b, 0)
	for _, line := range strings.Split(string(b[:n]), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "pid":
			h.PID, _ = strconv.Atoi(v)
		case "since":
			h.Since, _ = time.Parse(time.RFC3339Nano, v)
		case "command":
			h.Command = v
		}
	}
	return h
}

// lockingPID finds the process holding a flock on f in /proc/locks (Linux);
// 0 when it cannot tell.
func lockingPID(f *os.File) int {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return 0
	}
	locks, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer locks.Close()
	// "1: FLOCK  ADVISORY  WRITE 14707 fd:01:393219 0 EOF"; waiters have
	// "->" after the number.
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	sc := bufio.NewScanner(locks)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" || fields[1] != "FLOCK" {
			continue
		}
		if fields[5] == want {
			pid, _ := strconv.Atoi(fields[4])
			return pid
		}
	}
	return 0
}

// commandLine returns a process's command line (Linux), "" when unknown.
func commandLine(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}
