// Package mesh is a ZRE v2 node (RFC 36, the protocol of Zyre and Pyre):
// peers on a LAN find each other with UDP beacons, or through gossip seeds
// where broadcast does not reach, and talk over ZeroMQ (ZMTP 3) with one
// ROUTER mailbox per node and one DEALER per peer. A Zyre or Pyre node on
// the same network sees our nodes and talks to them.
//
// The main type is Node. One goroutine (its actor) owns the node's sockets
// and state; the methods talk to it through channels, and what happens on
// the mesh comes out of Events: Enter, Exit, Join, Leave, Shout, Whisper,
// Evasive, Silent, then Stop when the node closes. Peers advertise their
// service endpoints in HELLO headers (X-LOGD-PUB, X-HTTP, ...).
//
// Liveness follows Zyre: a peer silent past Config.EvasiveTimeout gets a
// PING (peers heard recently, by message or beacon, are not pinged), and
// one silent past Config.ExpiredTimeout is removed (Exit).
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
