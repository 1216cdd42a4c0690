package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/spdlab/spdlab/scenarios"
)

// childArgsEnv carries the arguments of spdlab to the test binary
// run as a child: Ginkgo builds one spec tree per process.
const childArgsEnv = "SPDLAB_TEST_CHILD_ARGS"

// TestSpdlabChild is spdlab inside a child process of the tests, for the
// commands that build the suite's spec tree (cases, certify).
func TestSpdlabChild(t *testing.T) {
	args := os.Getenv(childArgsEnv)
	if args == "" {
		t.Skip("runs only as the child of the catalogue and certify tests")
	}
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		t.Fatal(err)
	}
	os.Exit(run(context.Background(), &env{stdin: strings.NewReader(""), stdout: os.Stdout, stderr: os.Stderr}, argv))
}

// cases runs spdlab cases with args in a child process.
func cases(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := child(append([]string{"cases"}, args...)...)
	if err != nil {
		t.Fatalf("spdlab cases %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// child runs spdlab with args in a child process and returns its standard
// output and error.
func child(args ...string) (string, string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestSpdlabChild$")
	argv, err := json.Marshal(args)
	if err != nil {
		return "", "", err
	}
	cmd.Env = append(os.Environ(), childArgsEnv+"="+string(argv))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// The catalogue lists every case once with what it needs, in each format,
// and narrows by label without running anything.
func TestCasesFormatsAndNeeds(t *testing.T) {
	var all []catalogueCase
	if err := json.Unmarshal([]byte(cases(t, "--format", "json")), &all); err != nil {
		t.Fatal(err)
	}
	if len(all) < 70 {
		t.Fatalf("%d cases listed, the suite has more", len(all))
	}
	byID := map[string]catalogueCase{}
	for _, c := range all {
		if _, dup := byID[c.ID]; dup {
			t.Errorf("%s listed twice", c.ID)
		}
		byID[c.ID] = c
		if c.Title == "" || c.Area == "" || !strings.HasPrefix(c.ID, c.Area+"-") || !strings.HasPrefix(c.Source, "scenarios/") || c.Line == 0 {
			t.Errorf("incomplete entry %+v", c)
		}
	}
	has := func(cs []scenarios.Capability, c scenarios.Capability) bool {
		for _, x := range cs {
			if x == c {
				return true
			}
		}
		return false
	}
	for _, w := range []struct {
		id   string
		need scenarios.Capability
	}{
		{"TC-INV-002", scenarios.Tearing},    // need(d, Tearing) in the body
		{"TC-PIN-006", scenarios.Tearing},    // in a closure of the body
		{"TC-SVC-009", scenarios.PowerCycle}, // inside a nested container
		{"TC-PAY-001", scenarios.Fresh},      // through personalised -> needFresh
		{"TC-PIN-001", scenarios.Fresh},      // through its ordered container's BeforeAll
		{"TC-TOK-001", scenarios.Tokens},     // cites SPD-TOK-1
		{"TC-XFR-001", scenarios.Transfers},  // cites SPD-XFR-1
		{"TC-BIO-001", scenarios.Biometric},  // need(d, Biometric)
	} {
		c, ok := byID[w.id]
		if !ok {
			t.Errorf("%s is not listed", w.id)
			continue
		}
		if !has(c.Features, w.need) && !has(c.RigAbilities, w.need) {
			t.Errorf("%s: needs %s, listed with features %v, rig abilities %v", w.id, w.need, c.Features, c.RigAbilities)
		}
	}
	for _, c := range []string{"TC-APP-001", "TC-APP-002"} {
		if e := byID[c]; len(e.Features)+len(e.RigAbilities) != 0 {
			t.Errorf("%s needs nothing, listed with %v %v", c, e.Features, e.RigAbilities)
		}
	}
	if app := byID["TC-APP-001"]; len(app.Requirements) == 0 || app.Requirements[0] != "SPD-APP-1" || len(app.Claims) == 0 {
		t.Errorf("TC-APP-001: %+v", app)
	}

	var pay []catalogueCase
	if err := yaml.Unmarshal([]byte(cases(t, "--format", "yaml", "--label-filter", "TC-PAY-001 || TC-PIN-005")), &pay); err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, c := range pay {
		got = append(got, c.ID)
	}
	if strings.Join(got, " ") != "TC-PAY-001 TC-PIN-005" {
		t.Errorf("--label-filter 'TC-PAY-001 || TC-PIN-005' lists %v", got)
	}
}
