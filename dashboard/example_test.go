package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/logmesh/logmesh/dashboard"
)

// lines is the smallest LogSource: it accepts lines and counts them. logd
// gives the dashboard its logpub hub instead (see cmd/logd/dashboard.go).
type lines struct{ n uint64 }

func (l *lines) Subscribe(dashboard.Filter, func(*dashboard.Event)) func() { return func() {} }
func (l *lines) Ingest(service string, line []byte) error                  { l.n++; return nil }
func (l *lines) Stats() dashboard.LogStats                                 { return dashboard.LogStats{} }

// A dashboard on a loopback port ingests NDJSON through its HTTP bridge;
// the malformed line is refused with its line number, the others kept.
func Example() {
	src := &lines{}
	cfg := dashboard.DefaultConfig()
	cfg.Addr = "127.0.0.1:0" // any free port; logd uses 127.0.0.1:7070
	cfg.Logs = src
	srv, err := dashboard.New(cfg)
	if err != nil {
		panic(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		panic(err)
	}
	defer srv.Close()

	body := "{\"level\":\"info\",\"message\":\"hello\"}\nnot json\n{\"level\":\"warn\",\"message\":\"bye\"}\n"
	resp, err := http.Post("http://"+srv.Addr()+"/api/v1/logs?service=api", "application/x-ndjson", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.TrimSpace(string(answer)))
	fmt.Println("ingested:", src.n)
	// Output:
	// 400 {"accepted":2,"rejected":1,"errors":[{"line":2,"error":"not a JSON object"}],"error":"dashboard: ingest: 1 malformed line(s), first at line 2"}
	// ingested: 2
}
