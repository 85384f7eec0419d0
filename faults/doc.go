// Package faults holds logmesh's fault-injection tests; it has no code of
// its own. The tests run real logd processes in network namespaces
// (internal/netns) and on 127.0.0.1, inject faults with tc netem (or, on a
// kernel without sch_netem, nftables for loss and netns Cables for delay),
// SIGKILL and a small tmpfs, and throw bad input at every socket a logd
// advertises.
//
// What they prove, after each fault:
//   - the peers converge again (every logd lists every other one);
//   - every event a logd captured is still in its capture files, and every
//     event an app wrote is either there or counted as dropped by the
//     writer (lost = 0);
//   - shipped archives are byte-identical on the collector;
//   - timer schedules fire once per occurrence (cluster scope: on one node);
//   - a live subscriber sees every event or counts it as a sequence gap;
//   - under random and mutated frames on every socket, no logd crashes, its
//     memory stays bounded, the rogue connections are closed and honest
//     traffic continues;
//   - on a mesh closed with CURVE (logd --keys), a node whose key is not
//     admitted never becomes a peer and reads no log line, and a raw
//     socket on the bridge finds no log content in plaintext;
//   - on such a mesh, archives ship byte-identical and sealed, and that
//     node can neither ship to the collector nor fetch from the shipper,
//     even dialling its FileMQ socket directly (refusals counted).
//
// `go test ./faults` runs short versions (needs root and iproute2; skipped
// with a reason otherwise, and failed instead when CI=true). LOGMESH_SOAK=1
// (`make soak`) runs the long versions: the 20 s partition, more events and
// longer rogue runs. RELIABILITY.md at the top of the repository holds the
// figures.
package faults
