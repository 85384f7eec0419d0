package mesh

import "testing"

func TestServiceEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://0.0.0.0:4100":   "tcp://*:4100",
		"tcp://[::]:4100":      "tcp://*:4100",
		"0.0.0.0:7070":         "*:7070",
		"[::]:80":              "*:80",
		"tcp://127.0.0.1:4100": "tcp://127.0.0.1:4100",
		"127.0.0.1:7070":       "127.0.0.1:7070",
		"ipc:///run/logd.sock": "ipc:///run/logd.sock",
		"junk":                 "junk",
	} {
		if got := ServiceEndpoint(in); got != want {
			t.Errorf("ServiceEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResolveEndpoint(t *testing.T) {
	cases := []struct{ adv, mailbox, want string }{
		{"tcp://0.0.0.0:4100", "tcp://10.0.0.7:5670", "tcp://10.0.0.7:4100"},
		{"tcp://*:4100", "tcp://10.0.0.7:5670", "tcp://10.0.0.7:4100"},
		{"*:7070", "tcp://10.0.0.7:5670", "10.0.0.7:7070"},
		{"tcp://*:4100", "tcp://[fd00::7]:5670", "tcp://[fd00::7]:4100"},
		{"tcp://10.1.1.1:4100", "tcp://10.0.0.7:5670", "tcp://10.1.1.1:4100"},
		{"tcp://*:4100", "garbage", "tcp://*:4100"},
		{"ipc:///run/x.sock", "tcp://10.0.0.7:5670", "ipc:///run/x.sock"},
		{"garbage", "tcp://10.0.0.7:5670", "garbage"},
	}
	for _, c := range cases {
		if got := ResolveEndpoint(c.adv, c.mailbox); got != c.want {
			t.Errorf("ResolveEndpoint(%q, %q) = %q, want %q", c.adv, c.mailbox, got, c.want)
		}
	}
}
