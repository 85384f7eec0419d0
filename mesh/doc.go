// Package mesh is a ZRE v2 node (RFC 36, the protocol of Zyre and Pyre):
// peers on a LAN find each other with UDP beacons, or through gossip seeds
// where broadcast does not reach, and talk over ZeroMQ (ZMTP 3.0, NULL or
// CURVE security) with one ROUTER mailbox per node and one DEALER per peer.
// A Zyre or Pyre node on the same network sees our nodes and talks to them.
// The ROUTER and DEALER are a small ZMTP subset of our own rather than
// zmq4's sockets, which cannot bound a blocked write and leak readers on
// Close (see zmtp.go); interop tests check it against libzmq.
//
// The main type is Node. One goroutine (its actor) owns the node's state
// and directs its sockets; the methods talk to it through a channel, and
// what happens on the mesh comes out of Events: Enter, Exit, Join, Leave,
// Shout, Whisper, Evasive, Silent, then Stop when the node closes. Peers
// advertise their service endpoints in HELLO headers (X-LOGD-PUB, X-HTTP...).
//
// Files by concern: codec.go (ZRE messages), beacon.go (beacons, UDP),
// gossipcodec.go and gossip.go (ZGP seeds), zmtp.go (the ZMTP subset),
// security.go (CURVE admission),
// mailbox.go (the ROUTER), peer.go (peers and their DEALER outboxes),
// actor.go (the protocol), events.go (the Events queue), node.go (the API).
//
// Discovery. Beacons (22 bytes, UDP port 5670 by default) go to the
// interface's subnet broadcast address every BeaconInterval and are heard
// on 0.0.0.0 with SO_REUSEPORT, so several nodes share a host. Where
// broadcast does not reach, a node with GossipBind serves as a seed and
// nodes with Join learn every node's endpoint from it (see gossip.go).
// Peers are known by UUID: beacons from another address of a known peer
// change nothing, so hosts with several addresses do not flap.
//
// Liveness follows Zyre: a peer silent past EvasiveTimeout gets a PING
// (Evasive; Silent if it stays silent one more period), and one silent past
// ExpiredTimeout is removed (Exit). Beacons count as signs of life, as in
// Pyre, so on a LAN no PINGs flow at all and idle traffic per node grows
// linearly with the number of peers.
//
// Slow consumers. The actor never blocks: messages to a peer wait in a
// bounded queue (SendQueue; beyond it they are dropped and counted, and
// the peer resets us on the sequence gap, as with Zyre's high-water mark),
// and events wait in a bounded queue in front of the Events channel
// (EventBuffer; beyond it new events are dropped, counted in
// Stats().EventsDropped and logged). A reader that stops reading therefore
// loses events but never delays PINGs, expiry or other peers.
//
// Security. With Config.Curve the mesh is closed as Zyre closes it with a
// certificate: version 3 beacons carry the public key, HELLO carries
// X-PUBLICKEY, gossip values are "endpoint|key", and every mailbox
// connection runs CURVE (package curve): encrypted, and admitted only if
// Config.Curve.Authorize accepts the peer's key, both when a peer connects
// and before we dial it. A message under another key than its peer's is
// refused. Gossip links themselves stay NULL: they carry only endpoints and
// public keys, and whoever reads them still cannot join.
//
// Bad input (malformed beacons, garbage, wrong versions, unknown ids,
// oversized frames, sequence jumps) is logged, counted in Stats and
// dropped; an oversized frame or a bad handshake drops the connection.
//
// Example:
//
//	node, err := mesh.New(mesh.DefaultConfig())
//	if err != nil { ... }
//	defer node.Close()
//	node.SetHeader("X-LOGD-PUB", "tcp://10.0.0.5:5600")
//	if err := node.Start(ctx); err != nil { ... }
//	node.Join("logs")
//	for ev := range node.Events() {
//		if ev.Type == mesh.EventShout {
//			fmt.Printf("%s says %s\n", ev.Name, ev.Frames[0])
//		}
//	}
package mesh
