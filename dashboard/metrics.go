package dashboard

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric descriptions of /metrics. Values are read from the sources' own
// counters at scrape time, so nothing is counted twice.
var (
	descEventsIn = prometheus.NewDesc("logmesh_events_in_total",
		"Log events received by logd, by level.", []string{"level"}, nil)
	descEventsOut = prometheus.NewDesc("logmesh_events_out_total",
		"Log events delivered to subscribers, by level (level=\"all\" when the source does not count by level).", []string{"level"}, nil)
	descEventsDropped = prometheus.NewDesc("logmesh_events_dropped_total",
		"Log events lost on the way (full buffers, slow subscribers), by level (or level=\"all\").", []string{"level"}, nil)
	descNodeEvents = prometheus.NewDesc("logmesh_node_events_total",
		"Log events received, by node.", []string{"node"}, nil)
	descRejected = prometheus.NewDesc("logmesh_inputs_rejected_total",
		"Malformed inputs refused, by path (source: writers and mesh; http: NDJSON lines of the HTTP bridge).", []string{"path"}, nil)
	descHTTPAccepted = prometheus.NewDesc("logmesh_http_lines_accepted_total",
		"NDJSON lines ingested by the HTTP bridge.", nil, nil)
	descTooLarge = prometheus.NewDesc("logmesh_http_bodies_too_large_total",
		"HTTP requests refused because their body exceeded the limit (413).", nil, nil)
	descUnauthorized = prometheus.NewDesc("logmesh_http_unauthorized_total",
		"HTTP requests refused for a missing or wrong token (401).", nil, nil)
	descForbidden = prometheus.NewDesc("logmesh_http_forbidden_total",
		"HTTP requests refused for a foreign Host or Origin (403).", nil, nil)
	descClients = prometheus.NewDesc("logmesh_dashboard_clients",
		"Open dashboard stream connections (tail, graph, status).", nil, nil)
	descClientsRefused = prometheus.NewDesc("logmesh_dashboard_clients_refused_total",
		"Dashboard streams refused because MaxClients were open (503).", nil, nil)
	descClientDropped = prometheus.NewDesc("logmesh_dashboard_client_dropped_total",
		"Events and samples lost by dashboard clients that read too slowly.", nil, nil)
	descPeers = prometheus.NewDesc("logmesh_peers",
		"Mesh peers currently known.", nil, nil)
	descTicksMissed = prometheus.NewDesc("logmesh_ticks_missed_total",
		"Timer ticks missed by late receivers.", nil, nil)
	descBytesShipped = prometheus.NewDesc("logmesh_bytes_shipped_total",
		"Archive bytes shipped over FileMQ.", nil, nil)
	descConnsShed = prometheus.NewDesc("logmesh_log_connections_shed_total",
		"Connections to the log hub closed at once by its per-source limits, by limit (pending: too many not yet identified; handshakes: CURVE handshakes too fast).", []string{"limit"}, nil)
	descBatchTasks = prometheus.NewDesc("logmesh_batch_tasks",
		"Harmony tasks of the known batches, by state (done, pending).", []string{"state"}, nil)
)

// collector exports the dashboard's view of logd as Prometheus metrics.
type collector struct{ s *Server }

// Describe sends every metric description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEventsIn, descEventsOut, descEventsDropped, descNodeEvents,
		descRejected, descHTTPAccepted, descTooLarge, descUnauthorized, descForbidden, descClients, descClientsRefused, descClientDropped,
		descConnsShed, descPeers, descTicksMissed, descBytesShipped, descBatchTasks} {
		ch <- d
	}
}

// Collect reads the sources and the server's counters.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	st := s.cfg.Logs.Stats()
	levels := slices.Clone(Levels) // every known level, even at zero, then any other
	for l := range st.Levels {
		if !slices.Contains(levels, l) {
			levels = append(levels, l)
		}
	}
	var outSum, dropSum uint64
	for _, l := range levels {
		ls := st.Levels[l]
		outSum += ls.Out
		dropSum += ls.Dropped
		ch <- prometheus.MustNewConstMetric(descEventsIn, prometheus.CounterValue, float64(ls.In), l)
		ch <- prometheus.MustNewConstMetric(descEventsOut, prometheus.CounterValue, float64(ls.Out), l)
		ch <- prometheus.MustNewConstMetric(descEventsDropped, prometheus.CounterValue, float64(ls.Dropped), l)
	}
	if outSum == 0 && dropSum == 0 && (st.Out > 0 || st.Dropped > 0) {
		ch <- prometheus.MustNewConstMetric(descEventsOut, prometheus.CounterValue, float64(st.Out), "all")
		ch <- prometheus.MustNewConstMetric(descEventsDropped, prometheus.CounterValue, float64(st.Dropped), "all")
	}
	for n, v := range st.Nodes {
		ch <- prometheus.MustNewConstMetric(descNodeEvents, prometheus.CounterValue, float64(v), n)
	}
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(st.Rejected), "source")
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(s.linesRejected.Load()), "http")
	ch <- prometheus.MustNewConstMetric(descConnsShed, prometheus.CounterValue, float64(st.ShedPending), "pending")
	ch <- prometheus.MustNewConstMetric(descConnsShed, prometheus.CounterValue, float64(st.ShedHandshakes), "handshakes")
	ch <- prometheus.MustNewConstMetric(descHTTPAccepted, prometheus.CounterValue, float64(s.linesAccepted.Load()))
	ch <- prometheus.MustNewConstMetric(descTooLarge, prometheus.CounterValue, float64(s.bodiesTooLarge.Load()))
	ch <- prometheus.MustNewConstMetric(descUnauthorized, prometheus.CounterValue, float64(s.unauthorized.Load()))
	ch <- prometheus.MustNewConstMetric(descForbidden, prometheus.CounterValue, float64(s.forbidden.Load()))
	ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(s.clients.Load()))
	ch <- prometheus.MustNewConstMetric(descClientsRefused, prometheus.CounterValue, float64(s.clientsRefused.Load()))
	ch <- prometheus.MustNewConstMetric(descClientDropped, prometheus.CounterValue, float64(s.clientDropped.Load()))
	if s.cfg.Peers != nil {
		ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(len(s.cfg.Peers.Peers())))
	}
	if s.cfg.Timers != nil {
		ch <- prometheus.MustNewConstMetric(descTicksMissed, prometheus.CounterValue, float64(s.cfg.Timers.TimerStatus().TicksMissed))
	}
	if s.cfg.Shipping != nil {
		ch <- prometheus.MustNewConstMetric(descBytesShipped, prometheus.CounterValue, float64(s.cfg.Shipping.ShippingStatus().BytesShipped))
	}
	if s.cfg.Batches != nil {
		var done, pending int
		for _, b := range s.cfg.Batches.Batches() {
			done += b.Done
			pending += max(b.Tasks-b.Done, 0)
		}
		ch <- prometheus.MustNewConstMetric(descBatchTasks, prometheus.GaugeValue, float64(done), "done")
		ch <- prometheus.MustNewConstMetric(descBatchTasks, prometheus.GaugeValue, float64(pending), "pending")
	}
}
