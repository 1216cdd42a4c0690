package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/scenarios"
	"github.com/spdlab/spdlab/scenarios/ics"
)

func runVersion(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "version", "")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		flags.Usage()
		return errUsage
	}
	t := reports.ToolInfo()
	fmt.Fprintf(e.stdout, "spdlab %s\ncommit %s\nsuite %s, SPD profile %d\n%s %s/%s\n",
		t.Version, t.Commit, scenarios.SuiteVersion, ics.ProfileVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
