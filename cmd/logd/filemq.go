package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/filemq"
	"github.com/logmesh/logmesh/mesh"
)

// headerFileMQ advertises a logd's FileMQ server on the mesh.
const headerFileMQ = "X-FILEMQ"

// filemqFlags are archive shipping's flags on `logd run`.
type filemqFlags struct {
	shipTo   string
	shipBind string
	shipPoll time.Duration
	collect  string
}

var fmqFlags filemqFlags

func init() {
	registerComponent(component{name: "filemq", flags: filemqFlagsRegister, start: startFilemq})
	register(command{name: "ship", summary: "show archive shipping (FileMQ): shipped, pending, in flight per peer", run: runShip})
}

func filemqFlagsRegister(fs *flag.FlagSet) {
	f := &fmqFlags
	fs.StringVar(&f.shipTo, "ship-to", "", "ship the rotated log archives found in this directory (e.g. the capture directory) to the mesh's collectors over FileMQ (\"\": do not ship)")
	fs.StringVar(&f.shipBind, "ship-bind", "tcp://0.0.0.0:0", "where the FileMQ server binds; advertised as X-FILEMQ")
	fs.DurationVar(&f.shipPoll, "ship-poll", time.Second, "how often the shipped directory is scanned for new archives")
	fs.StringVar(&f.collect, "collect", "", "collect the archives of every shipping logd on the mesh under DIR/<node>/<service>/ (\"\": do not collect)")
}

// archiveName matches rotated archives (lumberjack's backup names, gzipped
// or not): <service>-<YYYY-MM-DDTHH-MM-SS.mmm>[.ext...]. Live capture files
// (<service>.log) and hidden temporary files never match, so they are
// never shipped.
var archiveName = regexp.MustCompile(`^(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}(\.[A-Za-z0-9.]+)?$`)

// archiveMap publishes <dir>/<service>-<time>.log.gz as
// /<service>/<service>-<time>.log.gz and skips everything else. With
// gzOnly, uncompressed archives are skipped too: in a capture directory
// that compresses, they are rotated files about to be replaced by their .gz.
func archiveMap(gzOnly bool) func(rel string) (string, bool) {
	return func(rel string) (string, bool) {
		if gzOnly && !strings.HasSuffix(rel, ".gz") {
			return "", false
		}
		return mapArchive(rel)
	}
}

func mapArchive(rel string) (string, bool) {
	for _, part := range strings.Split(rel, "/") {
		if strings.HasPrefix(part, ".") {
			return "", false
		}
	}
	base := path.Base(rel)
	m := archiveName.FindStringSubmatch(base)
	if m == nil {
		return "", false
	}
	if dir := path.Dir(rel); dir != "." {
		return rel, true // already laid out in directories
	}
	return m[1] + "/" + base, true
}

// shipStatus is the admin API's answer to GET /filemq/status.
type shipStatus struct {
	Shipping   *shippingStatus   `json:"shipping,omitempty"`
	Collecting *collectingStatus `json:"collecting,omitempty"`
}

type shippingStatus struct {
	Dir      string `json:"dir"`
	Endpoint string `json:"endpoint"`
	filemq.ServerStats
}

type collectingStatus struct {
	Dir   string         `json:"dir"`
	Peers []peerCollects `json:"peers"`
	// Refused counts shipping peers not collected from because their
	// CURVE key was missing or not admitted (--keys).
	Refused uint64 `json:"refused"`
}

type peerCollects struct {
	Peer  string `json:"peer"`
	Name  string `json:"name"`
	Inbox string `json:"inbox"`
	filemq.ClientStats
}

func startFilemq(ctx context.Context, d *daemon) (func(), error) {
	f := fmqFlags
	log := d.log.With().Str("room", "filemq").Logger()
	var srv *filemq.Server
	if f.shipTo != "" {
		// Shipping the capture directory: the hub announces each archive
		// as soon as it is complete; polling finds the ones archived before
		// this start (or by another process).
		capture := lpFlags.captureDir
		if capture == "" {
			capture = filepath.Join(d.dataDir, "capture")
		}
		isCapture := sameDir(f.shipTo, capture)
		cfg := filemq.DefaultServerConfig()
		cfg.Endpoint, cfg.PollInterval, cfg.Logger = f.shipBind, f.shipPoll, log
		cfg.Map = archiveMap(isCapture && !lpFlags.noCompress)
		if d.curve != nil {
			// --keys: only admitted nodes' collectors fetch our archives.
			cfg.Keys, cfg.Authorize = &d.curve.Keys, d.curve.Authorize
		}
		var err error
		if srv, err = filemq.NewServer(cfg); err != nil {
			return nil, err
		}
		if err := srv.Publish(f.shipTo, "/"); err != nil {
			srv.Close()
			return nil, err
		}
		if isCapture {
			addArchiveListener(func(path, _ string) {
				if err := srv.Announce(path); err != nil && !errors.Is(err, filemq.ErrClosed) {
					log.Warn().Err(err).Str("file", path).Msg("announce archive")
				}
			})
		}
		d.node.SetHeader(headerFileMQ, mesh.ServiceEndpoint(srv.Endpoint()))
		log.Info().Str("dir", f.shipTo).Str("endpoint", srv.Endpoint()).Msg("shipping archives")
	}
	var col *collector
	if f.collect != "" {
		col = &collector{dir: f.collect, self: d.node.Name(), log: log, curve: d.curve, peers: map[uuid.UUID]*collectedPeer{}}
		col.wg.Add(1)
		go col.run(ctx, d.subscribe(256))
		log.Info().Str("dir", f.collect).Msg("collecting archives")
	}
	d.admin.HandleFunc("GET /filemq/status", func(w http.ResponseWriter, _ *http.Request) {
		var st shipStatus
		if srv != nil {
			ss, err := srv.Stats()
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			st.Shipping = &shippingStatus{Dir: f.shipTo, Endpoint: srv.Endpoint(), ServerStats: ss}
		}
		if col != nil {
			st.Collecting = col.status()
		}
		writeJSON(w, st)
	})
	return func() {
		if col != nil {
			col.close()
		}
		if srv != nil {
			srv.Close()
		}
	}, nil
}

// sameDir reports whether a and b name the same directory.
func sameDir(a, b string) bool {
	if sa, err := os.Stat(a); err == nil {
		if sb, err := os.Stat(b); err == nil {
			return os.SameFile(sa, sb)
		}
	}
	aa, errA := filepath.Abs(a)
	bb, errB := filepath.Abs(b)
	return errA == nil && errB == nil && aa == bb
}

// collector runs one FileMQ client per shipping peer, each with its own
// inbox DIR/<peer name>.
type collector struct {
	dir   string
	self  string
	log   zerolog.Logger
	curve *mesh.Curve // --keys; nil: an open mesh
	wg    sync.WaitGroup

	mu      sync.Mutex
	peers   map[uuid.UUID]*collectedPeer
	refused uint64
}

type collectedPeer struct {
	base        string // the peer's name as a directory name, without suffix
	name, inbox string
	client      *filemq.Client
	done        chan struct{}
}

func (c *collector) run(ctx context.Context, events <-chan mesh.Event) {
	defer c.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			switch ev.Type {
			case mesh.EventEnter:
				if ep, ok := ev.Headers[headerFileMQ]; ok {
					key, ok := c.serverKey(ev)
					if !ok {
						continue
					}
					c.add(ev.Peer, ev.Name, mesh.ResolveEndpoint(ep, ev.Endpoint), key)
				}
			case mesh.EventExit:
				c.remove(ev.Peer)
			}
		}
	}
}

// serverKey returns the CURVE key a keyed collector expects from a
// shipping peer: its X-PUBLICKEY header, which must be admitted. The mesh
// admits peers the same way; checking again here keeps the FileMQ client
// from ever dialling a server whose key was not admitted.
func (c *collector) serverKey(ev mesh.Event) (*curve.PublicKey, bool) {
	if c.curve == nil {
		return nil, true
	}
	key, err := admittedKey(c.curve, ev.Headers[headerPublicKey])
	if err != nil {
		c.mu.Lock()
		c.refused++
		c.mu.Unlock()
		c.log.Warn().Err(err).Str("peer", ev.Name).Msg("not collecting from a peer without an admitted CURVE key")
		return nil, false
	}
	return &key, true
}

// dirName is a peer name made safe as one directory name.
func dirName(id uuid.UUID, name string) string {
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, name)
	if safe == "" || strings.HasPrefix(safe, ".") {
		safe = id.String()
	}
	return safe
}

// inboxName is DIR/<name> for a peer, or <name>-<uuid8> when another live
// peer already collects into DIR/<name>.
func (c *collector) inboxName(id uuid.UUID, base string) string {
	for _, p := range c.peers {
		if p.name == base {
			return base + "-" + id.String()[:8]
		}
	}
	return base
}

// ghostOf returns the peer collected under base whose FileMQ session is
// down: a logd restarted after a crash comes back with a new UUID while
// its former self waits to expire, and its archives belong in the same
// directory.
func (c *collector) ghostOf(base string) (uuid.UUID, bool) {
	for id, p := range c.peers {
		if p.base == base && !p.client.Stats().Connected {
			return id, true
		}
	}
	return uuid.Nil, false
}

func (c *collector) add(id uuid.UUID, name, endpoint string, serverKey *curve.PublicKey) {
	base := dirName(id, name)
	c.mu.Lock()
	ghost, haunted := c.ghostOf(base)
	c.mu.Unlock()
	if haunted {
		c.log.Info().Str("peer", name).Str("former", ghost.String()).Msg("peer came back with a new identity; collecting into the same directory")
		c.remove(ghost)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.peers[id]; ok {
		return
	}
	inbox := c.inboxName(id, base)
	cfg := filemq.DefaultClientConfig(filepath.Join(c.dir, inbox))
	cfg.KeepDeleted = true // a source's retention must not delete the collected copy
	cfg.Name = c.self
	cfg.Logger = c.log.With().Str("peer", name).Logger()
	if serverKey != nil {
		cfg.Keys, cfg.ServerKey = &c.curve.Keys, *serverKey
	}
	cl, err := filemq.NewClient(cfg)
	if err == nil {
		err = cl.Subscribe("/")
		if err == nil {
			err = cl.Connect(endpoint)
		}
		if err != nil {
			cl.Close()
		}
	}
	if err != nil {
		c.log.Error().Err(err).Str("peer", name).Msg("cannot collect from peer")
		return
	}
	p := &collectedPeer{base: base, name: inbox, inbox: cfg.Inbox, client: cl, done: make(chan struct{})}
	c.peers[id] = p
	go func() {
		defer close(p.done)
		for ev := range cl.Events() {
			switch ev.Type {
			case filemq.FileUpdated:
				c.log.Info().Str("peer", name).Str("file", ev.Path).Msg("archive collected")
			case filemq.FileRejected:
				c.log.Warn().Str("peer", name).Str("file", ev.Path).Err(ev.Err).Msg("archive refused")
			}
		}
	}()
	c.log.Info().Str("peer", name).Str("endpoint", endpoint).Str("inbox", cfg.Inbox).Msg("collecting from peer")
}

func (c *collector) remove(id uuid.UUID) {
	c.mu.Lock()
	p, ok := c.peers[id]
	delete(c.peers, id)
	c.mu.Unlock()
	if ok {
		p.client.Close()
		<-p.done
	}
}

func (c *collector) close() {
	c.wg.Wait()
	c.mu.Lock()
	ids := make([]uuid.UUID, 0, len(c.peers))
	for id := range c.peers {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.remove(id)
	}
}

func (c *collector) status() *collectingStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &collectingStatus{Dir: c.dir, Peers: []peerCollects{}, Refused: c.refused}
	for id, p := range c.peers {
		st.Peers = append(st.Peers, peerCollects{Peer: id.String(), Name: p.name, Inbox: p.inbox, ClientStats: p.client.Stats()})
	}
	sort.Slice(st.Peers, func(i, j int) bool { return st.Peers[i].Name < st.Peers[j].Name })
	return st
}

func runShip(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "status" {
		args = args[1:]
	}
	fs := newFlagSet("ship [status]", "Shows archive shipping: per collecting peer what was shipped, what is pending and the file in flight; per shipping peer what was collected.", stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory of the logd to ask")
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "logd ship: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	var st shipStatus
	if err := newAdminClient(*dataDir).do(ctx, http.MethodGet, "/filemq/status", nil, &st); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return printShipStatus(stdout, st)
}

func printShipStatus(w io.Writer, st shipStatus) error {
	if st.Shipping == nil && st.Collecting == nil {
		return errors.New("this logd neither ships (--ship-to) nor collects (--collect)")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if s := st.Shipping; s != nil {
		fmt.Fprintf(tw, "SHIPPING %s on %s: %d archives, %s\n", s.Dir, s.Endpoint, s.Files, mib(s.Bytes))
		if s.Refused > 0 {
			fmt.Fprintf(tw, "refused %d connections (CURVE keys)\n", s.Refused)
		}
		fmt.Fprintln(tw, "COLLECTOR\tSHIPPED\tSENT\tPENDING\tIN FLIGHT\tCURRENT FILE")
		for _, c := range s.Clients {
			name := c.Name
			if name == "" {
				name = c.ID
			}
			fmt.Fprintf(tw, "%s\t%d files\t%s\t%d files, %s\t%s\t%s\n", name, c.ShippedFiles, mib(int64(c.Sent)),
				c.PendingFiles, mib(c.PendingBytes), mib(c.InFlight), progress(c.Current, c.CurrentOffset, c.CurrentSize))
		}
		if len(s.Clients) == 0 {
			fmt.Fprintln(tw, "(no collector connected)")
		}
	}
	if c := st.Collecting; c != nil {
		if st.Shipping != nil {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "COLLECTING into %s\n", c.Dir)
		if c.Refused > 0 {
			fmt.Fprintf(tw, "refused %d shipping peers (CURVE keys)\n", c.Refused)
		}
		fmt.Fprintln(tw, "PEER\tCONNECTED\tHELD\tRECEIVED\tCURRENT FILE\tERRORS")
		for _, p := range c.Peers {
			fmt.Fprintf(tw, "%s\t%v\t%d files\t%d files, %s\t%s\t%d\n", p.Name, p.Connected, p.HeldFiles,
				p.ReceivedFiles, mib(int64(p.ReceivedBytes)), progress(p.Current, p.CurrentOffset, p.CurrentSize),
				p.Rejected+p.Corrupt)
		}
		if len(c.Peers) == 0 {
			fmt.Fprintln(tw, "(no shipping peer found)")
		}
	}
	return tw.Flush()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func progress(name string, off, size int64) string {
	if name == "" {
		return "-"
	}
	if size <= 0 {
		return fmt.Sprintf("%s (%s)", name, mib(off))
	}
	return fmt.Sprintf("%s %d%% (%s of %s)", name, off*100/size, mib(off), mib(size))
}
