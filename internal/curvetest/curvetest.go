// Package curvetest gives tests fresh CURVE key pairs.
package curvetest

import (
	"testing"

	"github.com/logmesh/logmesh/curve"
)

// KeyPair returns a new key pair, failing tb if none can be made.
func KeyPair(tb testing.TB) curve.KeyPair {
	tb.Helper()
	kp, err := curve.GenerateKeyPair()
	if err != nil {
		tb.Fatal(err)
	}
	return kp
}

// KeyPairs returns n new key pairs.
func KeyPairs(tb testing.TB, n int) []curve.KeyPair {
	tb.Helper()
	out := make([]curve.KeyPair, n)
	for i := range out {
		out[i] = KeyPair(tb)
	}
	return out
}
