package reports

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// OutDirFiles accepts a missing directory and one holding an earlier
// report: spdlab's own report files and whatever its manifest lists (here
// a trace under another name). It refuses anything else, naming it.
// ClearOutDir removes the report and the directories it leaves empty.
func TestOutDir(t *testing.T) {
	key := newKey(t)
	if files, err := OutDirFiles(filepath.Join(t.TempDir(), "new")); err != nil || files != nil {
		t.Fatalf("a missing directory: %v, %v; want no files and no error", files, err)
	}
	dir, _ := writeRun(t, key)
	// What a later run of certify may also find: the earlier run's
	// divergences and media, and a trace a killed run left unfinished.
	for name, body := range map[string]string{
		FileDivergences:                 "[]\n",
		DirMedia + "/TC-X-001/1.png":    "png",
		"." + FileTrace + ".42.partial": "pcapng",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := OutDirFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if all := walkFiles(t, dir); !slices.Equal(slices.Sorted(slices.Values(files)), all) {
		t.Fatalf("OutDirFiles = %v, want every file of %v", files, all)
	}
	for _, foreign := range []string{"notes.txt", "lab-key.pem", "trace/other.pcapng", FileTrace + ".bak"} {
		p := filepath.Join(dir, filepath.FromSlash(foreign))
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := OutDirFiles(dir); err == nil || !strings.Contains(err.Error(), foreign) {
			t.Errorf("with %s in the directory: %v; want an error naming it", foreign, err)
		}
		os.Remove(p)
	}
	notDir := filepath.Join(dir, FileJUnit)
	if _, err := OutDirFiles(notDir); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file as the directory: %v", err)
	}
	if err := ClearOutDir(dir, files); err != nil {
		t.Fatal(err)
	}
	if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
		t.Fatalf("after ClearOutDir %s holds %v (%v); want it empty", dir, left, err)
	}
}

// walkFiles returns the files under dir, relative and slash-separated,
// sorted.
func walkFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}
