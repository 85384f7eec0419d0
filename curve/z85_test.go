package curve

import (
	"bytes"
	"errors"
	"testing"
)

func TestZ85RFC32Vector(t *testing.T) {
	data := []byte{0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B}
	s, err := Z85Encode(data)
	if err != nil || s != "HelloWorld" {
		t.Fatalf("Z85Encode = %q, %v; want HelloWorld", s, err)
	}
	back, err := Z85Decode("HelloWorld")
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("Z85Decode = %x, %v", back, err)
	}
}

// The example key pairs of libzmq's zmq_curve(7) manual: Z85 and
// Curve25519 must agree with libzmq's.
func TestKeyPairFromSecretLibzmqVectors(t *testing.T) {
	for _, v := range []struct{ pub, sec string }{
		{"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"},
		{"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID", "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"},
	} {
		sec, err := ParseSecretKey(v.sec)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := KeyPairFromSecret(sec)
		if err != nil {
			t.Fatal(err)
		}
		if kp.Public.String() != v.pub || kp.Secret.Z85() != v.sec {
			t.Fatalf("secret %s: public %s, want %s", v.sec, kp.Public, v.pub)
		}
		var pk PublicKey
		if err := pk.UnmarshalText([]byte(v.pub)); err != nil || pk != kp.Public {
			t.Fatalf("UnmarshalText(%s) = %s, %v", v.pub, pk, err)
		}
	}
}

func TestZ85RoundTrip(t *testing.T) {
	for n := 0; n <= 64; n += 4 {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*37 + n)
		}
		if n == 8 {
			data = bytes.Repeat([]byte{0xFF}, 8)
		}
		s, err := Z85Encode(data)
		if err != nil || len(s) != n/4*5 {
			t.Fatalf("encode %d bytes: %q, %v", n, s, err)
		}
		back, err := Z85Decode(s)
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("decode %q: %x, %v", s, back, err)
		}
	}
}

func TestZ85Errors(t *testing.T) {
	if _, err := Z85Encode([]byte{1, 2, 3}); !errors.Is(err, ErrZ85) {
		t.Fatalf("encode 3 bytes: %v", err)
	}
	for _, s := range []string{"Hell", "Hello Worl", "Hell\x00", "#####", "%nSc1"} {
		if _, err := Z85Decode(s); !errors.Is(err, ErrZ85) {
			t.Fatalf("decode %q: %v, want ErrZ85", s, err)
		}
	}
	if _, err := ParsePublicKey("HelloWorld"); err == nil {
		t.Fatal("10-character key accepted")
	}
}

func FuzzZ85(f *testing.F) {
	f.Add("HelloWorld")
	f.Add("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")
	f.Add("#####")
	f.Add("abc")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := Z85Decode(s)
		if err != nil {
			return
		}
		back, err := Z85Encode(b)
		if err != nil || back != s {
			t.Fatalf("%q decodes to %x, which encodes to %q, %v", s, b, back, err)
		}
	})
}
