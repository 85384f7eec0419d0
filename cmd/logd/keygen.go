package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/logmesh/logmesh/curve"
)

func init() {
	register(command{name: "keygen", summary: "write a CURVE key pair for a closed mesh", run: runKeygen})
}

// runKeygen writes NAME.key (public, to copy to every node admitted to the
// mesh) and NAME.key_secret (mode 0600) into --dir, in czmq's certificate
// format. It never overwrites a key.
func runKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keygen", "Writes a new CURVE key pair into a key directory: NAME.key (public key:\n"+
		"copy it into the key directory of every node of the mesh) and NAME.key_secret\n"+
		"(secret key, mode 0600, stays on this host). Existing keys are never overwritten.", stderr)
	host, _ := os.Hostname()
	if host == "" {
		host = "logd"
	}
	dir := fs.String("dir", filepath.Join(defaultDataDir(), "keys"), "key directory (created with mode 0700)")
	name := fs.String("name", host, "base name of the key files")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "logd keygen: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	kp, err := curve.GenerateKeyPair()
	if err != nil {
		return err
	}
	pub, sec, err := curve.SaveKeyPair(*dir, *name, kp)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "public key: %s\npublic key file: %s\nsecret key file: %s\n", kp.Public, pub, sec)
	return nil
}
