package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/mesh"
	"github.com/rs/zerolog"
)

// component is one service that runs inside the daemon (log hub, timer,
// FileMQ, Harmony, dashboard). Each registers itself from its own file.
type component struct {
	name string
	// needs names the components that must start before this one (those
	// whose running state it reads, like the log hub).
	needs []string
	// flags registers the component's flags on the daemon's FlagSet.
	flags func(fs *flag.FlagSet)
	// start runs after the mesh node is created and before it starts, so a
	// component can bind its sockets and advertise them with SetHeader. It
	// returns the function that stops it.
	start func(ctx context.Context, d *daemon) (stop func(), err error)
}

var components []component

func registerComponent(c component) { components = append(components, c) }

// startOrder returns the components in an order where each comes after the
// ones it needs, otherwise in registration order. A need that is not
// registered, or a cycle, is a programming error reported at start.
func startOrder(cs []component) ([]component, error) {
	byName := make(map[string]component, len(cs))
	for _, c := range cs {
		byName[c.name] = c
	}
	var order []component
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(c component) error
	visit = func(c component) error {
		switch state[c.name] {
		case 1:
			return fmt.Errorf("components: %s needs itself through a cycle", c.name)
		case 2:
			return nil
		}
		state[c.name] = 1
		for _, n := range c.needs {
			dep, ok := byName[n]
			if !ok {
				return fmt.Errorf("components: %s needs %q, which is not registered", c.name, n)
			}
			if err := visit(dep); err != nil {
				return err
			}
		}
		state[c.name] = 2
		order = append(order, c)
		return nil
	}
	for _, c := range cs {
		if err := visit(c); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// daemon is what components get: the mesh node, the data directory, the
// logger, the admin mux and a share of the mesh's events.
type daemon struct {
	dataDir string
	log     zerolog.Logger
	node    *mesh.Node
	admin   *http.ServeMux
	// curve is the node's CURVE identity and allow-list from --keys, or nil
	// when the mesh is open. Components that bind or dial sockets use it so
	// that the same keys close every socket, not only the mesh mailbox.
	curve *mesh.Curve

	mu   sync.Mutex
	subs []chan mesh.Event
}

// subscribe returns a channel that receives every mesh event. A subscriber
// that falls more than buf events behind loses events (logged), so one slow
// component never stalls the mesh.
func (d *daemon) subscribe(buf int) <-chan mesh.Event {
	ch := make(chan mesh.Event, buf)
	d.mu.Lock()
	d.subs = append(d.subs, ch)
	d.mu.Unlock()
	return ch
}

func (d *daemon) dispatch(ev mesh.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ch := range d.subs {
		select {
		case ch <- ev:
		default:
			d.log.Warn().Str("event", ev.Type.String()).Msg("mesh event dropped: subscriber is behind")
		}
	}
}

func (d *daemon) closeSubs() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ch := range d.subs {
		close(ch)
	}
	d.subs = nil
}

type runFlags struct {
	dataDir        string
	name           string
	logLevel       string
	beaconPort     int
	beaconInterval time.Duration
	iface          string
	broadcast      string
	bind           string
	port           int
	advertise      string
	gossipBind     string
	keys           string
	join           listFlag
	evasive        time.Duration
	expired        time.Duration
}

func init() {
	register(command{name: "run", summary: "run the daemon (the default)", run: runDaemon})
}

func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := mesh.DefaultConfig()
	var f runFlags
	fs := newFlagSet("run", "Runs logd: joins the mesh and serves every logmesh service on this host.", stderr)
	fs.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "directory for captures, archives, schedules and the admin socket")
	fs.StringVar(&f.name, "name", def.Name, "node name shown to peers")
	fs.StringVar(&f.logLevel, "log-level", "info", "level of logd's own log on stderr (debug, info, warn, error)")
	fs.IntVar(&f.beaconPort, "beacon-port", def.BeaconPort, "UDP port of ZRE beacons (0 disables beacons)")
	fs.DurationVar(&f.beaconInterval, "beacon-interval", def.BeaconInterval, "time between two beacons")
	fs.StringVar(&f.iface, "interface", "", "network interface to advertise and beacon on (default: first up IPv4 interface)")
	fs.StringVar(&f.broadcast, "broadcast", "", "address beacons are sent to (default: the interface's subnet broadcast)")
	fs.StringVar(&f.bind, "bind", def.Bind, "host the mesh mailbox binds to")
	fs.IntVar(&f.port, "port", 0, "TCP port of the mesh mailbox (0: ephemeral)")
	fs.StringVar(&f.advertise, "advertise", "", "host or host:port peers use to reach this node (NAT, several addresses)")
	fs.StringVar(&f.gossipBind, "gossip-bind", "", "host:port to serve gossip on, so other nodes can --join this one")
	fs.Var(&f.join, "join", "gossip seed host:port where broadcast does not reach (repeatable, or comma-separated)")
	fs.StringVar(&f.keys, "keys", "", "close the mesh with CURVE: key directory with this node's secret key and the public keys of every admitted node ('logd keygen')")
	fs.DurationVar(&f.evasive, "evasive", def.EvasiveTimeout, "silence after which a peer is pinged")
	fs.DurationVar(&f.expired, "expired", def.ExpiredTimeout, "silence after which a peer is gone")
	for _, c := range components {
		if c.flags != nil {
			c.flags(fs)
		}
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "logd run: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	level, err := zerolog.ParseLevel(f.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "logd run: --log-level: %v\n", err)
		return errUsage
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly}).
		Level(level).With().Timestamp().Logger()

	if err := os.MkdirAll(f.dataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	cfg := def
	cfg.Name, cfg.BeaconPort, cfg.BeaconInterval = f.name, f.beaconPort, f.beaconInterval
	cfg.Interface, cfg.BroadcastAddr, cfg.Bind, cfg.MailboxPort = f.iface, f.broadcast, f.bind, f.port
	cfg.Advertise, cfg.GossipBind, cfg.Join = f.advertise, f.gossipBind, f.join
	if f.keys != "" {
		kp, allow, err := curve.LoadKeyDir(f.keys)
		if err != nil {
			return fmt.Errorf("--keys: %w", err)
		}
		cfg.Curve = &mesh.Curve{Keys: kp, Authorize: allow.Authorize}
	}
	cfg.EvasiveTimeout, cfg.ExpiredTimeout = f.evasive, f.expired
	cfg.Logger = log.With().Str("room", "mesh").Logger()
	node, err := mesh.New(cfg)
	if err != nil {
		return err
	}
	defer node.Close()

	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	d := &daemon{dataDir: f.dataDir, log: log, node: node, admin: http.NewServeMux(), curve: cfg.Curve}
	d.admin.HandleFunc("GET /peers", d.handlePeers)

	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	ordered, err := startOrder(components)
	if err != nil {
		return err
	}
	for _, c := range ordered {
		stop, err := c.start(ctx, d)
		if err != nil {
			return fmt.Errorf("start %s: %w", c.name, err)
		}
		stops = append(stops, stop)
	}
	stopAdmin, err := d.serveAdmin()
	if err != nil {
		return err
	}
	stops = append(stops, stopAdmin)
	if err := node.Start(ctx); err != nil {
		return fmt.Errorf("start mesh: %w", err)
	}
	log.Info().Str("uuid", node.UUID().String()).Str("name", cfg.Name).
		Str("mailbox", node.Endpoint()).Str("data_dir", f.dataDir).
		Str("admin", adminSocket(f.dataDir)).Msg("logd started")
	d.pump(ctx)
	log.Info().Msg("logd stopping")
	return nil
}

// pump logs the mesh's membership events and fans every event out to the
// components until ctx ends or the node stops.
func (d *daemon) pump(ctx context.Context) {
	defer d.closeSubs()
	events := d.node.Events()
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
				d.log.Info().Str("peer", ev.Peer.String()).Str("name", ev.Name).Str("endpoint", ev.Endpoint).Msg("ENTER")
			case mesh.EventExit:
				d.log.Info().Str("peer", ev.Peer.String()).Str("name", ev.Name).Msg("EXIT")
			case mesh.EventJoin, mesh.EventLeave:
				d.log.Info().Str("peer", ev.Peer.String()).Str("name", ev.Name).Str("group", ev.Group).Msg(ev.Type.String())
			case mesh.EventEvasive, mesh.EventSilent:
				d.log.Debug().Str("peer", ev.Peer.String()).Str("name", ev.Name).Msg(ev.Type.String())
			}
			d.dispatch(ev)
			if ev.Type == mesh.EventStop {
				return
			}
		}
	}
}

// serveAdmin serves the admin API (used by logd's subcommands) on a unix
// socket in the data directory, readable by the owner only.
func (d *daemon) serveAdmin() (stop func(), err error) {
	path := adminSocket(d.dataDir)
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("another logd is running on %s (admin socket %s answers)", d.dataDir, path)
	}
	_ = os.Remove(path) // stale socket of a logd that was killed
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	srv := &http.Server{Handler: d.admin, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error().Err(err).Msg("admin server")
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
		_ = os.Remove(path)
	}, nil
}
