// Package logpub carries zerolog events from apps to logd and from logd to
// whoever tails them.
//
// App side: Writer is a drop-in zerolog writer (io.Writer,
// zerolog.LevelWriter, io.Closer). It never blocks the caller: events go
// into a bounded queue (events and bytes) and a background goroutine sends
// them in batches to the local logd, reconnecting by itself. logd
// acknowledges each batch once it is in the capture file; unacknowledged
// batches are resent after a reconnect (logd drops the repeats by sequence
// number), so an event handed to the Writer is captured or counted in
// WriterStats.Dropped, never lost silently. When the queue is full events
// are dropped and counted, and one "logpub: dropped N events" event is
// sent once room returns.
//
//	w := logpub.NewWriter(logpub.WriterOptions{Service: "api"})
//	defer w.Close()
//	log := zerolog.New(w).With().Timestamp().Logger()
//	log.Info().Str("user", "ada").Msg("login")
//
// logd side: Hub collects events from Writers and Ingest, stamps each with
// node, service, per-source sequence and receive time (the JSON line stays
// byte-identical), writes it to a capture file (size and wall-clock time
// rotation through lumberjack, atomic gzip, OnArchive announcements), keeps
// a ring for --since, and publishes it to subscribers. Filters (level and
// above, service, node) apply in the Hub, so filtered-out events never
// cross the wire.
//
// Each subscriber has its own bounded queue and its own sender goroutine
// writing to its own connection with a write deadline: a slow or stuck
// subscriber loses its own events (counted in HubStats.SubscriberDrops and
// visible to it as a jump in Event.StreamSeq, see GapDetector) and never
// slows the Hub, the Writers or other subscribers. This is why the log
// streams use plain framed TCP (or unix sockets) rather than zmq4 v0.17.0
// sockets, whose PUB stalls every subscriber behind a stuck one and whose
// ROUTER holds one lock across blocking writes to all peers; endpoints keep
// the ZeroMQ spelling (tcp://host:port, ipc:///path) and are advertised in
// the mesh header X-LOGD-PUB.
//
// CURVE: with HubConfig.Curve (logd --keys) the Hub runs the CURVE
// handshake (package curve, the mesh's keys) on every subscriber and query
// connection and every non-loopback writer, and admits only the keys its
// Authorize func accepts; SubscribeOptions.Curve and WriterOptions.Curve
// give a client its key pair and the hub's public key (the mesh header
// X-PUBLICKEY). There is no downgrade: a mismatch fails at once with
// ErrCurveRequired or ErrNotCurve (see curve.go).
//
// Per-source limits (package internal/admission, as on the mesh and the
// timer, FileMQ and Harmony sockets): one address (IPv4, or IPv6 /64) may
// hold at most HubConfig.MaxPendingPerSource connections that have not
// yet sent their HELLO or SUBSCRIBE, and start at most
// HubConfig.HandshakesPerSource CURVE handshakes a second; connections
// past either are closed at once and counted (HubStats.Shed and
// ShedHandshakes), so that a host opening connections in a loop cannot
// take the descriptors and CPU other peers need. An accept that fails
// (out of descriptors) is retried with back-off (internal/acceptloop).
//
// Subscribe connects to a Hub's PubEndpoint and returns a Stream; with
// SubscribeOptions.Since it first replays history from the capture files
// (plain and gzip), then the ring. The Hub stamps every event with a
// receive time unique to it and strictly increasing, to the nanosecond,
// and keeps beside each capture file a hidden index (.<file>.idx) of the
// service and receive time of its lines, so that history is exact: Since
// compares receive times to the nanosecond, a shared capture file
// (CaptureConfig.Shared) is filtered by service, and the files join the
// ring with no event lost or repeated. History comes in receive-time
// order across all capture files and the ring (a merge of the files of
// every service, history_merge.go), as logtail's merge of several nodes
// expects. Lines without an index (older files) fall back to zerolog's
// "time" field, at its precision (the second by default), and never come
// before the line before them in their file. Hub.Subscribe is the in-process equivalent for the
// dashboard.
//
// Collector (collect.go) is logd's collection from the mesh, broker-less:
// it subscribes to other hubs with a sequence-based resume (resume.go:
// "the ring's events after these (source, seq) cursors, then your last
// sequence of each source"), captures their events per origin and service
// with the same capture machinery (lines byte-identical, the origin's
// envelope in a journal beside them), persists its cursors, drops repeats
// by sequence and counts every gap it cannot fill. Collected events are
// not published again, so they neither loop between collectors nor reach
// logtail twice.
//
//	c, _ := logpub.NewCollector(logpub.CollectorConfig{Self: me, Dir: "/var/lib/logd/capture"})
//	defer c.Close()
//	c.SetPeers(peers) // each time the mesh changes
//
// The wire format is described in codec.go (resume: codec_resume.go); every decoder has a fuzz
// target.
package logpub
