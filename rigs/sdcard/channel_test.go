package sdcard

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/wire/sdblock"
	"github.com/spdlab/spdlab/rigs/link"
)

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "absent")); !errors.Is(err, link.ErrNoCard) {
		t.Fatalf("missing directory: %v", err)
	}
	if _, err := Open(dir); !errors.Is(err, link.ErrNoCard) {
		t.Fatalf("directory without channel: %v", err)
	}
	ch := filepath.Join(dir, sdblock.ChannelDir)
	os.Mkdir(ch, 0o755)
	os.WriteFile(filepath.Join(ch, sdblock.CommandFile), make([]byte, sdblock.BlockSize), 0o644)
	os.WriteFile(filepath.Join(ch, sdblock.ResponseFile), make([]byte, 10), 0o644)
	if _, err := Open(dir); !errors.Is(err, link.ErrNoCard) {
		t.Fatalf("short response file: %v", err)
	}
	// Channel files but no card behind them: nobody answers.
	os.WriteFile(filepath.Join(ch, sdblock.ResponseFile), make([]byte, sdblock.BlockSize), 0o644)
	start := time.Now()
	_, err := OpenConfig(context.Background(), dir, Config{SilenceTimeout: 50 * time.Millisecond})
	if !errors.Is(err, link.ErrNoCard) {
		t.Fatalf("silent card: %v", err)
	}
	t.Logf("silent card detected after %v: %v", time.Since(start).Round(time.Millisecond), err)
}
