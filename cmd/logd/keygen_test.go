package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logmesh/logmesh/curve"
)

func TestKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"keygen", "--dir", dir, "--name", "n1"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	secPath := filepath.Join(dir, "n1"+curve.SecretKeyExt)
	fi, err := os.Stat(secPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key file: %v, %v", fi, err)
	}
	kp, allow, err := curve.LoadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "public key: "+kp.Public.String()) || !allow.Contains(kp.Public) {
		t.Fatalf("output %q does not match the key written", out.String())
	}
	// A second run does not overwrite the key: exit 1, key unchanged.
	errb.Reset()
	if code := run(context.Background(), []string{"keygen", "--dir", dir, "--name", "n1"}, &out, &errb); code != 1 || errb.Len() == 0 {
		t.Fatalf("second keygen: exit %d, stderr %q", code, errb.String())
	}
	if again, err := curve.LoadKeyPair(secPath); err != nil || again != kp {
		t.Fatalf("key changed: %v", err)
	}
	if code := run(context.Background(), []string{"keygen", "--bogus"}, &out, &errb); code != 2 {
		t.Fatalf("bad flag: exit %d, want 2", code)
	}
}
