package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpAndBadCommandLines runs the dispatcher as a user would meet it:
// help that lists the commands and flags, and bad command lines that exit
// 2 with a message that says what is wrong.
func TestHelpAndBadCommandLines(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err []string // substrings expected on stdout, stderr
	}{
		{[]string{"--help"}, 0, []string{"Commands:", "keygen", "timer", "Usage: logd run", "-data-dir"}, nil},
		{[]string{"help"}, 0, []string{"Commands:", "reprocess"}, nil},
		{[]string{"run", "--help"}, 0, nil, []string{"Usage: logd run", "-keys"}},
		{[]string{"nosuch"}, 2, nil, []string{`unknown command "nosuch"`, "Commands:"}},
		{[]string{"run", "--bogus"}, 2, nil, []string{"flag provided but not defined: -bogus"}},
		{[]string{"run", "--rotate-size", "lots"}, 2, nil, []string{"rotate-size"}},
		{[]string{"timer", "add"}, 2, nil, nil},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("logd %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), code, tc.code, stdout.String(), stderr.String())
			continue
		}
		for _, s := range tc.out {
			if !strings.Contains(stdout.String(), s) {
				t.Errorf("logd %s: stdout lacks %q:\n%s", strings.Join(tc.args, " "), s, stdout.String())
			}
		}
		for _, s := range tc.err {
			if !strings.Contains(stderr.String(), s) {
				t.Errorf("logd %s: stderr lacks %q:\n%s", strings.Join(tc.args, " "), s, stderr.String())
			}
		}
		if tc.code == 2 && stderr.Len() == 0 {
			t.Errorf("logd %s: exit 2 without a message", strings.Join(tc.args, " "))
		}
	}
}
