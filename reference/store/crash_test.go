package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestProcessKilled kills a real process (SIGKILL) while it commits
// transfers between two keys, then reopens its store: the two keys still sum
// to the total (old or new, never a mix) and every transfer the process
// reported as committed is there.
func TestProcessKilled(t *testing.T) {
	if os.Getenv("STORE_CRASH_CHILD") != "" {
		crashChild(os.Getenv("STORE_CRASH_CHILD"))
		return
	}
	path := filepath.Join(t.TempDir(), "card.state")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestProcessKilled$")
		cmd.Env = append(os.Environ(), "STORE_CRASH_CHILD="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill the child after it has acknowledged some commits, at
		// whatever write it has reached by then.
		sc := bufio.NewScanner(out)
		acked := -1
		for sc.Scan() {
			n, err := strconv.Atoi(sc.Text())
			if err != nil {
				continue
			}
			acked = n
			if n >= 40*(round+1) {
				break
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		if acked < 0 {
			t.Fatal("child acknowledged nothing")
		}
		s, err := OpenFile(path)
		if err != nil {
			t.Fatalf("round %d: reopening after a kill: %v", round, err)
		}
		a, b, seq := num(s, "a"), num(s, "b"), num(s, "seq")
		s.Close()
		if a+b != 1000 {
			t.Fatalf("round %d: a=%d b=%d: value not conserved", round, a, b)
		}
		if seq < acked {
			t.Fatalf("round %d: transfer %d acknowledged but the store holds %d", round, acked, seq)
		}
	}
}

func num(s Store, k string) int {
	v, _ := s.Get(k)
	n, _ := strconv.Atoi(string(v))
	return n
}

// crashChild moves one unit from a to b per transaction, forever, and
// prints the sequence number of each after Commit returns.
func crashChild(path string) {
	s, err := OpenFile(path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	if _, ok := s.Get("a"); !ok {
		tx := s.Begin()
		tx.Put("a", []byte("1000"))
		tx.Put("b", []byte("0"))
		tx.Put("seq", []byte("0"))
		if err := tx.Commit(); err != nil {
			os.Exit(1)
		}
	}
	for {
		a, b, seq := num(s, "a"), num(s, "b"), num(s, "seq")
		if a == 0 {
			a, b = b, a
		}
		tx := s.Begin()
		tx.Put("a", []byte(strconv.Itoa(a-1)))
		tx.Put("b", []byte(strconv.Itoa(b+1)))
		tx.Put("seq", []byte(strconv.Itoa(seq+1)))
		if err := tx.Commit(); err != nil {
			fmt.Println("commit:", err)
			os.Exit(1)
		}
		fmt.Println(seq + 1)
	}
}
