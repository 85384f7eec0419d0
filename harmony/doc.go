// Package harmony is logmesh's reliable batch pipeline: it re-runs work
// (filter, convert, aggregate) over log archives, spread over the mesh's
// workers, and gives a complete, exact answer even when a worker dies
// midway. It follows the "Harmony" notes of the ZeroMQ Guide.
//
// A batch is START (batch id, size N) + tasks 0..N-1 + END. Each task
// carries its data (a chunk of log lines) and the processor spec, so any
// worker can run it, any number of times, with the same result.
//
//   - Ventilator sends the tasks to the workers, at most InFlight per worker,
//     and resends a task whose worker does not report it DONE in time, or
//     that the collector asks for.
//   - Worker (one per logd, group "harmony", endpoint in the X-HARMONY mesh
//     header) runs tasks for any number of ventilators at once and sends
//     each RESULT to the collector named in the task.
//   - Collector knows N, writes results out in task order, drops duplicates
//     by task number, and asks the ventilator to resend what is missing
//     after ResendTimeout (everything after the last response if END has
//     not come). A restarted collector resumes from Committed().
//   - Job is a parsed processor spec ("filter level>=warn service=api",
//     "count-by level,service,minute", "convert logfmt time,level,message");
//     RegisterProcessor adds new ones: a Job processes one task's lines on a
//     worker, its Merger combines the results in task order.
//   - RunLocal runs a batch in one process: the reference output.
//
// Example:
//
//	tasks, bad, _ := harmony.LoadSources([]string{"/var/log/app"}, harmony.SourceOptions{})
//	job, _ := harmony.ParseSpec("filter level>=warn msg~timeout")
//	rep, err := harmony.Run(ctx, harmony.RunConfig{
//		Job: job, Tasks: tasks, Out: f,
//		Workers: harmony.StaticWorkers{"tcp://10.0.0.2:41000"},
//	})
//
// CURVE (security.go): WorkerConfig, CollectorConfig, VentilatorConfig and
// RunConfig take Keys (and, for the servers, Authorize). A server's
// endpoint then carries its public key, "tcp://host:port|<Z85 key>"
// (KeyedEndpoint; MeshWorkers builds it from the X-PUBLICKEY header), so
// the ventilator knows each worker's key and the tasks tell workers the
// collector's. A keyed worker sends results only to a collector whose key
// it admits. NULL peers, unadmitted keys and key mismatches are refused
// both ways and counted (the stats' Refused); links retry with backoff.
//
// The wire format is in codec.go; zmq4 quirks are absorbed in link.go.
package harmony
