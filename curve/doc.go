// Package curve closes a zmq4 socket with CURVE: the CurveZMQ handshake and
// message encryption of ZeroMQ RFC 26, as ZMTP's CURVE mechanism (RFC 25,
// RFC 37), built on golang.org/x/crypto/nacl. It interoperates with libzmq's
// CURVE (ZMQ_CURVE_SERVER, ZMQ_CURVE_SERVERKEY...).
//
// Main types:
//   - KeyPair, PublicKey, SecretKey: long-term keys, Z85 text (RFC 32),
//     key files in the czmq certificate format (SaveKeyPair, LoadKeyPair).
//   - Security: a zmq4.Security; NewServer (with an AuthorizeFunc, e.g. an
//     AllowList) and NewClient (with the server's public key).
//   - AllowList: the public keys a server admits, e.g. from a directory.
//   - Conn: from Security.Upgrade, for code that speaks ZMTP on its own
//     net.Conns (the mesh): greeting + handshake, then plaintext ZMTP
//     frames in, MESSAGE commands on the wire.
//
// zmq4 v0.17.0 cannot carry CURVE frames through Security alone (see
// transport.go), so importing this package registers the zmq4 transport
// "curve+tcp": sockets with a curve Security dial and listen on
// curve+tcp://host:port (Endpoint converts). On the wire it is ordinary
// ZMTP/TCP: the peer, whatever its implementation, uses tcp://.
//
// Closing a ZRE mesh, as Zyre does: each node has a key pair (logd keygen)
// and an AllowList (LoadKeyDir); its mailbox ROUTER upgrades every accepted
// connection with NewServer(keys, allow.Authorize).Upgrade; it dials a peer
// only if the peer's key (beacon v3, gossip "endpoint|key" or HELLO header
// X-PUBLICKEY) is in the AllowList, with NewClient(keys, peerKey).Upgrade.
// A NULL peer fails at the greeting, so there is no downgrade.
//
// Example:
//
//	srvKeys, _ := curve.GenerateKeyPair()
//	cliKeys, _ := curve.GenerateKeyPair()
//	allow := curve.NewAllowList(cliKeys.Public)
//	router := zmq4.NewRouter(ctx, zmq4.WithSecurity(curve.NewServer(srvKeys, allow.Authorize)))
//	_ = router.Listen("curve+tcp://127.0.0.1:0")
//	dealer := zmq4.NewDealer(ctx, zmq4.WithSecurity(curve.NewClient(cliKeys, srvKeys.Public)))
//	_ = dealer.Dial(curve.Endpoint("tcp://" + router.Addr().String()))
package curve
