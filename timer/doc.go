// Package timer is logmesh's timer service: wall-clock-aligned ticks and
// named schedules, served by every logd to its local clients and shared by
// the timer nodes of the mesh.
//
// Ticks come at 1 s, 100 ms and 10 ms (Periods). Tick n of a period is
// scheduled at the Unix epoch + n·period, so tick n means the same instant
// on every node (to the accuracy of the hosts' clock sync) without any
// network round trip, and the numbering never drifts. A receiver that falls
// behind loses ticks and sees how many in Tick.Missed; ticks never bunch up.
//
// Schedules (Spec) fire every duration, on a cron expression (robfig/cron/v3,
// optional seconds field, time zones) or once at a time, with a payload.
// Scope node fires on every timer node; scope cluster fires each occurrence
// once in the mesh, on the live timer node with the lowest UUID; when it
// dies the next one takes over and fires the missed occurrences late, once.
// Schedules are replicated over the mesh (last writer wins) and persisted
// in <DataDir>/timer.json.
//
// CURVE: a Service with Config.Keys and Authorize closes its socket with
// CURVE (package curve): a client needs ClientConfig.Keys and the service's
// public key (ServerKey: Snapshot.PublicKey, or the node's X-PUBLICKEY
// mesh header). A NULL client, an unadmitted key or a key mismatch is
// refused on both sides (no downgrade), counted in Snapshot.Refused and
// Client.Refused; a refused Client stops and Err wraps ErrRefused. The
// socket listens through internal/zmtpguard in both cases, so a stalled
// peer never holds the accept loop.
//
// A Client reconnects by itself: when its connection drops, or when the
// service has not answered its heartbeats (each HEARTBEAT gets a PONG) for
// 4 heartbeats + Retry, it dials again on a new socket with the same
// identity, and the service keeps its subscriptions. Against a logd from
// before PONG, which answers no heartbeat, only a dropped connection
// makes it redial. A handshake cut short
// is retried; four in a row count as a refusal, since a CURVE service that
// cannot open the client's HELLO hangs up without a word.
//
// Main types: Service (runs inside logd; a ROUTER socket clients dial),
// Client (Ticks, Watch, Schedule, Cancel, List), Spec, Tick, Fire, and the
// helpers TickTime, NextAligned and Every for in-process aligned work.
//
// Example:
//
//	c, _ := timer.NewClient(timer.ClientConfig{Endpoint: endpoint})
//	defer c.Close()
//	ticks, _ := c.Ticks(ctx, 100*time.Millisecond)
//	for t := range ticks {
//		fmt.Println(t.N, t.At, t.Missed)
//	}
//	_ = c.Schedule(ctx, timer.Spec{Name: "backup", Cron: "0 0 3 * * *", Scope: timer.ScopeCluster})
package timer
