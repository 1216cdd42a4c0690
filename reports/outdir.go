package reports

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// A report's manifest signs every file in its directory (Write), so the
// directory a report is written to must hold nothing but the report: an
// earlier run's divergences or media, or anything else left there, would
// be signed as this run's evidence. OutDirFiles and ClearOutDir keep it so.

// OutDirFiles returns the files under dir (slash-separated, relative to
// it) that a report written there replaces: those spdlab writes in a
// report directory (the manifest, certificate, pages, Ginkgo report,
// trace, divergences, media, and a trace a run left unfinished) and those
// the manifest of the report there lists. A missing dir holds none. Any
// other file is an error naming it, and so is a dir that is not a
// directory.
func OutDirFiles(dir string) ([]string, error) {
	if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("reports: %s is not a directory", dir)
	}
	listed := map[string]bool{}
	if m, err := ReadManifest(dir); err == nil {
		for _, f := range m.Files {
			listed[f.Name] = true
		}
	}
	var files, foreign []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if listed[rel] || IsReportFile(rel) {
			files = append(files, rel)
		} else {
			foreign = append(foreign, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	if len(foreign) > 0 {
		if len(foreign) > 5 {
			foreign = append(foreign[:5], fmt.Sprintf("and %d more", len(foreign)-5))
		}
		return nil, fmt.Errorf("reports: %s holds %s, which a report does not: give a new or empty directory for the report (its manifest signs every file in it)",
			dir, strings.Join(foreign, ", "))
	}
	return files, nil
}

// IsReportFile reports whether rel (slash-separated, relative to a report
// directory) names a file spdlab writes there.
func IsReportFile(rel string) bool {
	switch rel {
	case FileManifest, FileCertificate, FileHTML, FileJUnit, FileGinkgo, FileTrace, FileDivergences:
		return true
	}
	base := path.Base(rel)
	return strings.HasPrefix(rel, DirMedia+"/") ||
		(path.Dir(rel) == "." && strings.HasPrefix(base, "."+FileTrace+".") && strings.HasSuffix(base, ".partial"))
}

// ClearOutDir removes files (OutDirFiles' answer for dir) from dir, and
// then the directories under dir they leave empty.
func ClearOutDir(dir string, files []string) error {
	dirs := map[string]bool{}
	for _, f := range files {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(f))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("reports: %w", err)
		}
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	// Deepest first: a directory goes once those under it have.
	sorted := slices.Sorted(maps.Keys(dirs))
	slices.Reverse(sorted)
	for _, d := range sorted {
		os.Remove(filepath.Join(dir, filepath.FromSlash(d))) // only while empty
	}
	return nil
}
