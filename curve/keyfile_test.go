package curve

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveLoadKeyPair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	kp := mustKeys(t)
	pubPath, secPath, err := SaveKeyPair(dir, "node1", kp)
	if err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{pubPath: 0o644, secPath: 0o600, dir: 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Fatalf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	pub, _ := os.ReadFile(pubPath)
	if strings.Contains(string(pub), kp.Secret.Z85()) || !strings.Contains(string(pub), kp.Public.String()) {
		t.Fatalf("public key file:\n%s", pub)
	}
	got, err := LoadKeyPair(secPath)
	if err != nil || got != kp {
		t.Fatalf("LoadKeyPair: %v", err)
	}
	if k, err := LoadPublicKey(pubPath); err != nil || k != kp.Public {
		t.Fatalf("LoadPublicKey: %s, %v", k, err)
	}
	if _, _, err := SaveKeyPair(dir, "node1", mustKeys(t)); !errors.Is(err, os.ErrExist) {
		t.Fatalf("overwrite: %v, want ErrExist", err)
	}
	if again, _ := LoadKeyPair(secPath); again != kp {
		t.Fatal("key pair changed by a refused save")
	}
}

func TestLoadKeyPairRefusesOpenModeAndMismatch(t *testing.T) {
	dir := t.TempDir()
	kp := mustKeys(t)
	_, secPath, err := SaveKeyPair(dir, "n", kp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyPair(secPath); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("world-readable secret: %v, want ErrKeyFile", err)
	}
	other := mustKeys(t)
	bad := filepath.Join(dir, "bad"+SecretKeyExt)
	content := "curve\n    public-key = \"" + other.Public.String() + "\"\n    secret-key = \"" + kp.Secret.Z85() + "\"\n"
	if err := os.WriteFile(bad, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyPair(bad); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("mismatched keys: %v, want ErrKeyFile", err)
	}
	trunc := filepath.Join(dir, "trunc"+SecretKeyExt)
	if err := os.WriteFile(trunc, []byte(content[:len(content)/2]), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyPair(trunc); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("truncated file: %v, want ErrKeyFile", err)
	}
}

func TestLoadKeyDir(t *testing.T) {
	dir := t.TempDir()
	self, peer := mustKeys(t), mustKeys(t)
	if _, _, err := SaveKeyPair(dir, "self", self); err != nil {
		t.Fatal(err)
	}
	peerDir := t.TempDir()
	peerPub, _, err := SaveKeyPair(peerDir, "peer", peer)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(peerPub)
	if err := os.WriteFile(filepath.Join(dir, "peer.key"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	kp, allow, err := LoadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if kp != self || !allow.Contains(self.Public) || !allow.Contains(peer.Public) || len(allow.Keys()) != 2 {
		t.Fatalf("key dir: self ok=%v, allow %v", kp == self, allow.Keys())
	}
	if err := allow.Authorize(mustKeys(t).Public, nil); err == nil {
		t.Fatal("unknown key authorized")
	}
	allow.Remove(peer.Public)
	if allow.Authorize(peer.Public, nil) == nil {
		t.Fatal("removed key authorized")
	}

	if err := os.WriteFile(filepath.Join(dir, "junk.key"), []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadKeyDir(dir); !errors.Is(err, ErrKeyFile) || !strings.Contains(err.Error(), "junk.key") {
		t.Fatalf("bad public key file: %v", err)
	}
	if _, _, err := LoadKeyDir(peerDir + "-missing"); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("no secret key: %v", err)
	}
	if _, _, err := SaveKeyPair(dir, "second", mustKeys(t)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadKeyDir(dir); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("two secret keys: %v", err)
	}
}
