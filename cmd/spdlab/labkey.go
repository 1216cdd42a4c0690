package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spdlab/spdlab/reports"
)

func runLabKey(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || (args[0] != "init" && args[0] != "show") {
		if len(args) > 0 && !isHelp(args[0]) {
			fmt.Fprintf(e.stderr, "spdlab labkey: unknown subcommand %q (want init or show)\n", args[0])
		}
		return subcommandHelp(e, len(args) > 0 && isHelp(args[0]),
			"spdlab labkey: make the lab's report signing key once (init), or show its name, fingerprint and public key (show).",
			func(e *env, a []string) error { return runLabKey(ctx, e, append([]string{"init"}, a...)) },
			func(e *env, a []string) error { return runLabKey(ctx, e, append([]string{"show"}, a...)) })
	}
	sub := args[0]
	flags := newFlags(e, "labkey "+sub, "[--key FILE]"+map[string]string{"init": " --name LAB", "show": ""}[sub])
	keyPath := flags.String("key", reports.DefaultLabKeyPath(), "the lab's private signing key (PEM, EC P-256); its public key goes beside it as *.pub.pem")
	var name *string
	if sub == "init" {
		name = flags.String("name", "", "the lab's name, recorded in every report it signs")
	}
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		flags.Usage()
		return errUsage
	}
	if sub == "init" {
		if *name == "" {
			flags.Usage()
			return errUsage
		}
		lab, err := reports.InitLab(*keyPath, *name)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "lab %q: key %s (keep it private)\npublic key: %s (give it to whoever verifies your reports)\nfingerprint: %s\n",
			lab.Name, *keyPath, reports.PublicKeyPath(*keyPath), lab.KeyFingerprint)
		return nil
	}
	lab, key, err := reports.OpenLab(*keyPath)
	if err != nil {
		return err
	}
	pub, err := reports.PublicKeyPEM(&key.PublicKey, lab.Name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "lab: %s\nkey: %s\nfingerprint: %s\n%s", lab.Name, *keyPath, lab.KeyFingerprint, pub)
	if _, err := os.Stat(reports.PublicKeyPath(*keyPath)); err == nil {
		fmt.Fprintf(e.stdout, "public key file: %s\n", reports.PublicKeyPath(*keyPath))
	}
	return nil
}
