package curve

import (
	"crypto/rand"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
)

// KeySize is the size in bytes of a CURVE public or secret key.
const KeySize = 32

// KeyTextSize is the length of a key in Z85 text.
const KeyTextSize = 40

// PublicKey is a long-term Curve25519 public key. Its String form is Z85.
type PublicKey [KeySize]byte

// SecretKey is a long-term Curve25519 secret key. It has no String method so
// that it is not printed by accident; use Z85 to encode it on purpose.
type SecretKey [KeySize]byte

// KeyPair is a long-term key pair, as ZeroMQ's zmq_curve_keypair makes.
type KeyPair struct {
	Public PublicKey
	Secret SecretKey
}

// GenerateKeyPair returns a new random key pair.
func GenerateKeyPair() (KeyPair, error) {
	return generateKeyPair(rand.Reader)
}

func generateKeyPair(r io.Reader) (KeyPair, error) {
	pub, sec, err := box.GenerateKey(r)
	if err != nil {
		return KeyPair{}, fmt.Errorf("curve: generate key pair: %w", err)
	}
	return KeyPair{Public: *pub, Secret: *sec}, nil
}

// KeyPairFromSecret derives the public key of secret.
func KeyPairFromSecret(secret SecretKey) (KeyPair, error) {
	pub, err := curve25519.X25519(secret[:], curve25519.Basepoint)
	if err != nil {
		return KeyPair{}, fmt.Errorf("curve: derive public key: %w", err)
	}
	kp := KeyPair{Secret: secret}
	copy(kp.Public[:], pub)
	return kp, nil
}

// String returns the key as 40 characters of Z85.
func (k PublicKey) String() string {
	s, _ := Z85Encode(k[:]) // 32 bytes always encode
	return s
}

// MarshalText encodes the key as Z85.
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a Z85 key.
func (k *PublicKey) UnmarshalText(text []byte) error {
	p, err := ParsePublicKey(string(text))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// Z85 returns the secret key as 40 characters of Z85.
func (k SecretKey) Z85() string {
	s, _ := Z85Encode(k[:])
	return s
}

// ParsePublicKey decodes a public key from 40 characters of Z85.
func ParsePublicKey(text string) (PublicKey, error) {
	var k PublicKey
	err := parseKey(k[:], text)
	return k, err
}

// ParseSecretKey decodes a secret key from 40 characters of Z85.
func ParseSecretKey(text string) (SecretKey, error) {
	var k SecretKey
	err := parseKey(k[:], text)
	return k, err
}

func parseKey(dst []byte, text string) error {
	if len(text) != KeyTextSize {
		return fmt.Errorf("curve: parse key: want %d characters of z85, got %d", KeyTextSize, len(text))
	}
	b, err := Z85Decode(text)
	if err != nil {
		return fmt.Errorf("curve: parse key: %w", err)
	}
	copy(dst, b)
	return nil
}
