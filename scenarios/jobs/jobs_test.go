// Package jobs holds the job definitions that run spdlab certification
// shards on engines labs already use (a LAVA test job, a Kubernetes Indexed
// Job); its test checks that they parse, have the shape their engines
// need, and run the commands the README gives.
package jobs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// flagsOf lists the --flags of the first line in text that runs
// `spdlab <sub>`.
func flagsOf(t *testing.T, text, sub string) []string {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, "spdlab "+sub); i >= 0 {
			var out []string
			for _, m := range regexp.MustCompile(`--[a-z-]+`).FindAllString(line[i:], -1) {
				if !slices.Contains(out, m) {
					out = append(out, m)
				}
			}
			slices.Sort(out)
			return out
		}
	}
	t.Fatalf("no `spdlab %s` line in:\n%s", sub, text)
	return nil
}

// readmeShards is the README's section on shards.
func readmeShards(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "### Many stations: shards")
	if i < 0 {
		t.Fatal("README has no section \"### Many stations: shards\"")
	}
	s = s[i:]
	if j := strings.Index(s[4:], "\n#"); j >= 0 {
		s = s[:j+4]
	}
	return s
}

func load(t *testing.T, name string) []map[string]any {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			if err.Error() == "EOF" {
				return docs
			}
			t.Fatalf("%s: %v", name, err)
		}
		docs = append(docs, d)
	}
}

// get walks a decoded YAML document.
func get(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %q: not a mapping", k)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at [%d]: not a list of that length", k)
			}
			v = l[k]
		}
	}
	return v
}

func TestLAVAJob(t *testing.T) {
	docs := load(t, "lava-shard.yaml")
	if len(docs) != 1 {
		t.Fatalf("%d documents, want 1", len(docs))
	}
	job := docs[0]
	for _, k := range []string{"job_name", "device_type", "timeouts", "actions", "visibility"} {
		if job[k] == nil {
			t.Errorf("LAVA job has no %s", k)
		}
	}
	var steps string
	for _, a := range job["actions"].([]any) {
		if test, ok := a.(map[string]any)["test"]; ok {
			def := get(t, test, "definitions", 0)
			if get(t, def, "from") != "inline" || get(t, def, "repository", "metadata", "format") != "Lava-Test Test Definition 1.0" {
				t.Fatal("the test definition is not an inline Lava-Test Test Definition 1.0")
			}
			params := get(t, def, "parameters").(map[string]any)
			for _, p := range []string{"SHARD", "SHARDS", "DUT", "ICS", "LAB_KEY"} {
				if params[p] == nil {
					t.Errorf("the test definition takes no parameter %s", p)
				}
			}
			for _, s := range get(t, def, "repository", "run", "steps").([]any) {
				steps += s.(string) + "\n"
			}
		}
	}
	readme := readmeShards(t)
	if got, want := flagsOf(t, steps, "certify"), flagsOf(t, readme, "certify"); !slices.Equal(got, want) {
		t.Errorf("LAVA job runs certify with %v, the README with %v", got, want)
	}
	if !strings.Contains(steps, `--shard "$SHARD/$SHARDS"`) {
		t.Error("the LAVA job does not pass its shard")
	}
}

func TestKubernetesIndexedJob(t *testing.T) {
	docs := load(t, "kubernetes-shards.yaml")
	kinds := map[string]map[string]any{}
	for _, d := range docs {
		kinds[d["kind"].(string)+"/"+get(t, d, "metadata", "name").(string)] = d
	}
	shards, merge := kinds["Job/spdlab-shards"], kinds["Job/spdlab-merge"]
	if shards == nil || merge == nil || kinds["PersistentVolumeClaim/spdlab-results"] == nil {
		t.Fatalf("documents %v: want the results claim and the shards and merge jobs", kinds)
	}
	if get(t, shards, "apiVersion") != "batch/v1" || get(t, shards, "spec", "completionMode") != "Indexed" {
		t.Fatal("spdlab-shards is not a batch/v1 Indexed Job")
	}
	n := get(t, shards, "spec", "completions").(int)
	if get(t, shards, "spec", "parallelism").(int) > n {
		t.Error("more parallelism than completions")
	}
	script := get(t, shards, "spec", "template", "spec", "containers", 0, "command", 2).(string)
	mergeScript := get(t, merge, "spec", "template", "spec", "containers", 0, "command", 2).(string)
	readme := readmeShards(t)
	if got, want := flagsOf(t, script, "certify"), flagsOf(t, readme, "certify"); !slices.Equal(got, want) {
		t.Errorf("the Indexed Job runs certify with %v, the README with %v", got, want)
	}
	if got, want := flagsOf(t, mergeScript, "report"), flagsOf(t, readme, "report --merge"); !slices.Equal(got, want) {
		t.Errorf("the merge Job runs report with %v, the README with %v", got, want)
	}

	// Run each completion's script with a stand-in spdlab that records its
	// arguments: completion index i must certify shard i+1 of n.
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "spdlab")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$ARGS\"\nwhile [ $# -gt 0 ]; do [ \"$1\" = --out ] && mkdir -p \"$2\" && touch \"$2/manifest.json\"; shift; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	results := filepath.Join(dir, "results")
	for i := 0; i < n; i++ {
		args := filepath.Join(dir, "args")
		cmd := exec.Command("sh", "-c", strings.ReplaceAll(script, "/results", results))
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "ARGS="+args,
			"JOB_COMPLETION_INDEX="+string(rune('0'+i)), "SHARDS="+string(rune('0'+n)), "DUT=pcsc:Reader")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("completion %d: %v: %s", i, err, out)
		}
		b, _ := os.ReadFile(args)
		want := "--shard\n" + string(rune('1'+i)) + "/" + string(rune('0'+n)) + "\n"
		if !strings.Contains(string(b), want) {
			t.Errorf("completion %d ran spdlab %q, want --shard %d/%d", i, b, i+1, n)
		}
	}
}
