// Package dashboard is logd's web face: one embedded page with live graphs
// of log rates per level and per node (uPlot, vendored), a live tail with
// level/service/node/regex filters, the mesh peers, timers and schedules,
// archive shipping and Harmony batches; plus an HTTP bridge to the log
// stream and Prometheus metrics.
//
// Endpoints (all under one Server):
//
//	GET  /                    the page (go:embed, works offline, no build step)
//	POST /api/v1/logs         NDJSON of zerolog lines, ingested like the writer's (?service=)
//	GET  /api/v1/stream       live events as NDJSON or SSE (?level=warn&service=api&node=&regex=&format=sse)
//	GET  /api/v1/graph        SSE: rate history, then one sample per tick
//	GET  /api/v1/status       SSE: peers, timers, shipping, batches every second
//	GET  /api/v1/peers        JSON (also /timers, /shipping, /batches)
//	GET  /metrics             Prometheus text format
//
// The dashboard only reads the rest of logd through the small interfaces of
// sources.go (LogSource, PeersSource, TimersSource, ShippingSource,
// BatchesSource, TickSource); the daemon wires the real services to them.
// Slow clients never slow logd: each stream has a bounded queue and loses
// events beyond it, counted. The server binds loopback by default; bound
// anywhere else it requires a bearer token (generated when none is given).
//
// Example:
//
//	cfg := dashboard.DefaultConfig()
//	cfg.Logs = hub // a LogSource
//	cfg.Peers = node
//	srv, err := dashboard.New(cfg)
//	if err != nil { ... }
//	if err := srv.Start(ctx); err != nil { ... }
//	defer srv.Close()
//	fmt.Println("dashboard:", srv.URL())
package dashboard
