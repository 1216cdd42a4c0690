package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/spdlab/spdlab/reports"
)

// pendingFile is a file written under a temporary name beside path and
// given path's name by commit: until then a file already at path (an
// earlier run's trace, which its signed manifest digests) stays as it was,
// and discard leaves no trace of the new one.
type pendingFile struct {
	*os.File
	path string
}

// createPending creates the temporary file for path, in path's directory
// (a rename within one file system is atomic), readable as os.Create's
// files are.
func createPending(path string) (*pendingFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &pendingFile{File: f, path: path}, nil
}

// commit closes the file and renames it to its path, replacing any file
// there.
func (p *pendingFile) commit() error {
	err := p.Close()
	if err == nil {
		err = os.Rename(p.Name(), p.path)
	}
	if err != nil {
		os.Remove(p.Name())
	}
	return err
}

// discard closes and removes the file unless commit renamed it; it does
// nothing on a nil p.
func (p *pendingFile) discard() {
	if p == nil {
		return
	}
	p.Close()
	os.Remove(p.Name())
}

// makeDirs makes dir and its missing parents, and returns those it made,
// dir first, for removeDirs.
func makeDirs(dir string) ([]string, error) {
	var made []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || !errors.Is(err, os.ErrNotExist) {
			break
		}
		made = append(made, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return made, nil
}

// removeDirs removes the directories makeDirs made, dir first, while they
// are empty.
func removeDirs(made []string) {
	for _, d := range made {
		if os.Remove(d) != nil {
			return
		}
	}
}

// replaceOutDir makes dir ready for a report: it makes it if missing and
// removes an earlier report there; anything else in dir is an error
// (reports.OutDirFiles), and then dir is left as it was.
func replaceOutDir(dir string) error {
	stale, err := reports.OutDirFiles(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return reports.ClearOutDir(dir, stale)
}

// within reports whether path is dir or under it.
func within(path, dir string) bool {
	rel, ok := relTo(path, dir)
	return ok && rel != ".." && !strings.HasPrefix(rel, "../")
}

// clobbersReport reports whether path names a file that a report written
// to dir writes (its pages, certificate, manifest, Ginkgo report,
// divergences, media) other than its trace.
func clobbersReport(path, dir string) bool {
	rel, ok := relTo(path, dir)
	return ok && rel != reports.FileTrace && reports.IsReportFile(rel)
}

// relTo is path relative to dir, slash-separated, both made absolute
// first; false when that cannot be done.
func relTo(path, dir string) (string, bool) {
	p, err := filepath.Abs(path)
	if err != nil {
		return "", false
	}
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	rel, err := filepath.Rel(d, p)
	if err != nil {
		return "", false
	}
	return filepath.ToSlash(rel), true
}
