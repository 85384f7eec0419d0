package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/logmesh/logmesh/mesh"
)

func init() {
	register(command{name: "peers", summary: "list the mesh's peers with their headers", run: runPeers})
}

// peersReply is the admin API's answer to GET /peers.
type peersReply struct {
	Self  mesh.PeerInfo   `json:"self"`
	Peers []mesh.PeerInfo `json:"peers"`
}

func (d *daemon) handlePeers(w http.ResponseWriter, _ *http.Request) {
	peers := d.node.Peers()
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	writeJSON(w, peersReply{Self: d.node.Self(), Peers: peers})
}

func runPeers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("peers", "Lists the peers the local logd sees on the mesh, with their service headers.", stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory of the logd to ask")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var r peersReply
	if err := newAdminClient(*dataDir).do(ctx, http.MethodGet, "/peers", nil, &r); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tUUID\tENDPOINT\tGROUPS\tLAST SEEN\tHEADERS")
	row := func(p mesh.PeerInfo, seen string) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.ID, p.Endpoint,
			strings.Join(p.Groups, ","), seen, formatHeaders(p.Headers))
	}
	row(r.Self, "(self)")
	for _, p := range r.Peers {
		row(p, time.Since(p.LastSeen).Round(100*time.Millisecond).String()+" ago")
	}
	return tw.Flush()
}

func formatHeaders(h map[string]string) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + h[k]
	}
	return strings.Join(parts, " ")
}
