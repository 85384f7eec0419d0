package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// ErrNoRsyslog is returned when rsyslogd is not installed.
var ErrNoRsyslog = errors.New("e2e: rsyslogd not installed (apt-get install rsyslog)")

// RsyslogPath returns the rsyslogd binary, or ErrNoRsyslog.
func RsyslogPath() (string, error) {
	for _, p := range []string{"rsyslogd", "/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", ErrNoRsyslog
}

// rsyslogConf relays raw TCP lines (imtcp, newline framing) to one file,
// unchanged (%rawmsg%), on loopback, with no system inputs: only the modules
// loaded here run. The ruleset is the product's own equivalent of logd's
// capture: receive, write the line to a file.
const rsyslogConf = `global(workDirectory="%[1]s" maxMessageSize="8k")
module(load="imtcp")
template(name="raw" type="string" string="%%rawmsg%%\n")
ruleset(name="bench") {
  action(type="omfile" file="%[2]s" template="raw")
}
input(type="imtcp" address="127.0.0.1" port="%[3]d" ruleset="bench")
`

// rsyslog is a running rsyslogd with the configuration above.
type rsyslog struct {
	*proc
	addr string
	out  string
}

// startRsyslog starts rsyslogd in the foreground with its configuration,
// pid file and work directory in dir, and waits until imtcp listens.
func startRsyslog(ctx context.Context, dir string) (*rsyslog, error) {
	bin, err := RsyslogPath()
	if err != nil {
		return nil, err
	}
	port, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, fmt.Errorf("e2e: rsyslog work dir: %w", err)
	}
	r := &rsyslog{addr: "127.0.0.1:" + strconv.Itoa(port), out: filepath.Join(dir, "out.log")}
	conf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(rsyslogConf, work, r.out, port)), 0o644); err != nil {
		return nil, fmt.Errorf("e2e: rsyslog conf: %w", err)
	}
	p, err := startProc(bin, []string{"-n", "-f", conf, "-i", filepath.Join(dir, "rsyslogd.pid")}, nil)
	if err != nil {
		return nil, err
	}
	r.proc = p
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitTCP(wctx, p, r.addr); err != nil {
		_ = p.stop(5 * time.Second)
		return nil, err
	}
	return r, nil
}
