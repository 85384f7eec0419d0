package curve

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Key files use czmq's certificate format (ZPL, as zcert_save writes and
// pyzmq's zmq.auth reads): NAME.key holds the public key, NAME.key_secret
// (mode 0600) the public and the secret key.
const (
	PublicKeyExt = ".key"
	SecretKeyExt = ".key_secret"

	maxKeyFile = 64 << 10
)

// ErrKeyFile reports a key file that cannot be used.
var ErrKeyFile = errors.New("curve: bad key file")

// SaveKeyPair writes dir/name.key and dir/name.key_secret (mode 0600),
// creating dir (mode 0700) if needed. It never overwrites a key file.
func SaveKeyPair(dir, name string, kp KeyPair) (publicPath, secretPath string, err error) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return "", "", fmt.Errorf("curve: save key pair: invalid name %q", name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("curve: save key pair: %w", err)
	}
	publicPath = filepath.Join(dir, name+PublicKeyExt)
	secretPath = filepath.Join(dir, name+SecretKeyExt)
	stamp := time.Now().UTC().Format("2006-01-02 15:04:05")
	pub := fmt.Sprintf("#   ****  Generated on %s by logmesh  ****\n"+
		"#   ZeroMQ CURVE Public Certificate\n"+
		"#   Exchange securely, or use a secure mechanism to verify the contents\n"+
		"#   of this file after exchange.\n\n"+
		"metadata\ncurve\n    public-key = \"%s\"\n", stamp, kp.Public)
	sec := fmt.Sprintf("#   ****  Generated on %s by logmesh  ****\n"+
		"#   ZeroMQ CURVE **Secret** Certificate\n"+
		"#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"+
		"metadata\ncurve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n", stamp, kp.Public, kp.Secret.Z85())
	if err := writeNew(secretPath, sec, 0o600); err != nil {
		return "", "", err
	}
	if err := writeNew(publicPath, pub, 0o644); err != nil {
		_ = os.Remove(secretPath)
		return "", "", err
	}
	return publicPath, secretPath, nil
}

func writeNew(path, content string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("curve: save key file: %w", err)
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("curve: save key file %s: %w", path, err)
	}
	return nil
}

// LoadKeyPair reads a secret key file (NAME.key_secret). Like ssh, it
// refuses a file that others than its owner may read.
func LoadKeyPair(path string) (KeyPair, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return KeyPair{}, fmt.Errorf("curve: load key pair: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return KeyPair{}, fmt.Errorf("%w: %s has mode %v, want 0600", ErrKeyFile, path, fi.Mode().Perm())
	}
	pub, sec, err := readCert(path)
	if err != nil {
		return KeyPair{}, err
	}
	if sec == "" {
		return KeyPair{}, fmt.Errorf("%w: %s has no secret-key", ErrKeyFile, path)
	}
	sk, err := ParseSecretKey(sec)
	if err != nil {
		return KeyPair{}, fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	kp, err := KeyPairFromSecret(sk)
	if err != nil {
		return KeyPair{}, err
	}
	if pub != "" && pub != kp.Public.String() {
		return KeyPair{}, fmt.Errorf("%w: %s: public-key does not match secret-key", ErrKeyFile, path)
	}
	return kp, nil
}

// LoadPublicKey reads the public key of a key file (public or secret).
func LoadPublicKey(path string) (PublicKey, error) {
	pub, _, err := readCert(path)
	if err != nil {
		return PublicKey{}, err
	}
	k, err := ParsePublicKey(pub)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	return k, nil
}

// LoadAllowList reads every public key file (*.key) of dir.
func LoadAllowList(dir string) (*AllowList, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*"+PublicKeyExt))
	if err != nil {
		return nil, fmt.Errorf("curve: load allow-list %s: %w", dir, err)
	}
	a := NewAllowList()
	for _, p := range paths {
		k, err := LoadPublicKey(p)
		if err != nil {
			return nil, fmt.Errorf("curve: load allow-list: %w", err)
		}
		a.Add(k)
	}
	return a, nil
}

// LoadKeyDir reads a key directory as `logd --keys DIR` uses it: exactly
// one secret key file (this node's key pair) and the public key files of
// the nodes admitted to the mesh, this node's included.
func LoadKeyDir(dir string) (KeyPair, *AllowList, error) {
	secrets, err := filepath.Glob(filepath.Join(dir, "*"+SecretKeyExt))
	if err != nil {
		return KeyPair{}, nil, fmt.Errorf("curve: load key dir %s: %w", dir, err)
	}
	sort.Strings(secrets)
	if len(secrets) != 1 {
		return KeyPair{}, nil, fmt.Errorf("%w: %s holds %d secret key files (%s), want 1", ErrKeyFile, dir, len(secrets), strings.Join(secrets, ", "))
	}
	kp, err := LoadKeyPair(secrets[0])
	if err != nil {
		return KeyPair{}, nil, err
	}
	allow, err := LoadAllowList(dir)
	if err != nil {
		return KeyPair{}, nil, err
	}
	return kp, allow, nil
}

func readCert(path string) (pub, sec string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("curve: read key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", "", fmt.Errorf("curve: read key file %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return "", "", fmt.Errorf("%w: %s is over %d bytes", ErrKeyFile, path, maxKeyFile)
	}
	pub, sec, err = parseCert(data)
	if err != nil {
		return "", "", fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	return pub, sec, nil
}

// parseCert reads the curve section of a czmq ZPL certificate: the values
// of public-key and secret-key. It is lenient about the rest of the file.
func parseCert(data []byte) (pub, sec string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxKeyFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		switch strings.TrimSpace(name) {
		case "public-key":
			pub = value
		case "secret-key":
			sec = value
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", err
	}
	if pub == "" && sec == "" {
		return "", "", errors.New("no public-key or secret-key")
	}
	if pub != "" && len(pub) != KeyTextSize {
		return "", "", fmt.Errorf("public-key of %d characters, want %d", len(pub), KeyTextSize)
	}
	if sec != "" && len(sec) != KeyTextSize {
		return "", "", fmt.Errorf("secret-key of %d characters, want %d", len(sec), KeyTextSize)
	}
	return pub, sec, nil
}
