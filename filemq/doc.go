// Package filemq implements FILEMQ (RFC 35, "FILEMQ v2"): a Server
// publishes directory trees under virtual paths over a ZeroMQ ROUTER, and a
// Client (DEALER) subscribes to paths and receives the files into an inbox
// directory, with credit-based flow control, heartbeats and a clean goodbye.
// logd uses it to ship rotated log archives across the mesh; the server is
// advertised with the mesh header X-FILEMQ.
//
// # Main types
//
//   - Server (NewServer, Publish, Announce, Endpoint, Stats, Close): scans
//     its published trees (ServerConfig.PollInterval), hashes each file once
//     it is stable (or at once with Announce) and sends the files each
//     client subscribes to, never more bytes than the client granted.
//   - Client (NewClient, Subscribe, Connect, Events, Stats, Close): one
//     client per server. It writes each file under <inbox>/.filemq/partial,
//     checks it, and renames it into the inbox: a file in the inbox is
//     always complete. Events reports FileUpdated, FileDeleted,
//     FileRejected and Disconnected.
//   - Msg, Encode, Decode: the wire codec.
//
// # Example
//
//	srv, _ := filemq.NewServer(filemq.DefaultServerConfig())
//	defer srv.Close()
//	srv.Publish("/var/lib/logd/archive", "/")
//
//	cli, _ := filemq.NewClient(filemq.DefaultClientConfig("/srv/collect/node1"))
//	defer cli.Close()
//	cli.Subscribe("/")
//	cli.Connect(srv.Endpoint())
//	for ev := range cli.Events() {
//		fmt.Println(ev.Type, ev.Path)
//	}
//
// # Wire format: where we follow the reference implementation, not RFC 35
//
// The codec is byte-compatible with zeromq/filemq's fmq_msg (zproto
// signature 0xAA 0xA3, then the command id). Where RFC 35 and that
// implementation disagree, we follow the implementation, so that both
// interoperate with its fmq_server and fmq_client:
//
//   - ICANHAZ path and CHEEZBURGER filename are longstr (4-byte length), not
//     string (1-byte length) as the RFC's grammar says: fmq_msg.c reads and
//     writes them with GET_LONGSTR/PUT_LONGSTR, and a 1-byte length would
//     misparse every following field.
//   - OHAI carries protocol "FILEMQ" and version 2 as a 2-byte number;
//     fmq_msg rejects any other pair, and so do we (ErrProtocol).
//   - The end of a file is a CHEEZBURGER with eof=1 and an empty chunk at
//     offset = size, after the data chunks, as fmq_server sends it; a
//     0-byte file is that single chunk.
//   - Dictionaries (options, cache, headers) are a 4-byte count, then
//     string keys (at most 255 bytes) and longstr values. On a duplicate key
//     the first value wins, as zhash_insert does.
//   - A client may send OHAI at any time; the server then forgets the
//     client's state and answers OHAI-OK (fmq_server does the same).
//   - Without the RESYNC option a subscription gets only the changes made
//     after it (fmq_server has RESYNC commented out); the reference client
//     never sets it, and so sees the same behaviour from our server.
//
// Interoperability was checked by hand against fmq_server and fmq_client
// built from zeromq/filemq (2e30cf3) with CZMQ 4.2.1: new files, empty
// ones and ones in subdirectories travel byte for byte in both directions;
// from fmq_server to our client, a shorter rewrite and a delete too.
//
// # Where we go beyond the reference implementation (wire-compatible)
//
// Every extension rides in fields a reference peer already carries and
// ignores (ICANHAZ options and cache, CHEEZBURGER headers):
//
//   - Resync: ICANHAZ option RESYNC=1 makes the server send every
//     published file under the path that the cache does not show complete,
//     including files that existed before the subscription. Our client
//     always sets it.
//   - Cache values: "sha256:<hex>" for a complete file (skipped if the
//     server's version has that SHA-256), "partial:<offset>:<hex>" for a
//     file received up to offset (the server resumes there if its version
//     has that SHA-256; otherwise it sends from 0). Keys are relative to the
//     subscription path, as RFC 35 says, or absolute when they start with
//     "/". Keys are strings (≤ 255 bytes): a file with a longer relative path
//     is sent again on every resync.
//   - Headers on every CHEEZBURGER of a created file: X-SHA256 (hex SHA-256
//     of the whole file), X-SIZE (its size), X-CRC32C (hex CRC-32C,
//     Castagnoli, of this chunk). The client drops a chunk failing its
//     CRC and asks again (a new ICANHAZ with the partial entry), checks
//     size and SHA-256 before renaming the file into the inbox, and asks for
//     a file failing them again from 0 (ClientConfig.MaxRetries times per
//     file version). Without headers (a reference server) it accepts data
//     unchecked, as the reference client does.
//   - Server-side filtering: each client receives only the files under its
//     subscriptions; fmq_server sends every change of a mount to every
//     subscriber and lets the client drop what it did not ask for. Matching
//     is by whole path segments: "/logs" covers "/logs/a" but not "/logsx".
//   - Exact copies: a file is written to a partial file truncated at offset
//     0 and renamed over the old one, so a file that shrank leaves no stale
//     tail (fmq_client writes in place and keeps it).
//   - Resume: partial files and a manifest of complete ones
//     (<inbox>/.filemq/manifest: SHA-256, size, mtime) survive a restart or
//     a kill -9; the next session's cache makes the server skip complete
//     files and resume partial ones at their offset. The server keeps each
//     subscription's cache and applies it, once per file, to files it
//     publishes later too: a server that restarts is still hashing its trees
//     when its clients come back.
//   - The client restarts its session (a new DEALER with a new identity)
//     when the server has been silent for ClientConfig.Timeout, sending HUGZ
//     every Heartbeat meanwhile; after RTFM or SRSLY it also reconnects,
//     with backoff, where RFC 35 says a client should not (so that a server
//     restart never strands a client).
//
// # Flow control and memory
//
// The client grants ClientConfig.Credit bytes with its first NOM and grants
// back what it receives in slices of a quarter of that. The server sends a
// chunk of min(ChunkSize, credit left) bytes and nothing while the credit is
// 0, so at most Credit bytes of file data are in flight: the memory of both
// ends is bounded by the credit and the chunk size, not by file size.
// ServerStats shows Granted and Sent per client; Sent never exceeds Granted.
//
// # zmq4 limits and how they are absorbed
//
//   - Sends on a disconnected DEALER are dropped silently: the client never
//     reuses a socket across a cut; every session starts with OHAI, ICANHAZ
//     (with the cache) and NOM, so nothing depends on an earlier message.
//   - Dial blocks and retries: the client dials in its own goroutine, with
//     a dial timeout, and Close cancels it.
//   - ROUTER writes hold one lock across a blocking TCP write with no
//     deadline: credit keeps a client's unread bytes within socket buffers,
//     and a watchdog (ServerConfig.SendTimeout) rebinds the socket if a write
//     blocks anyway; clients then reconnect and resume.
//   - zmq4 allocates each incoming frame at the size its header declares,
//     before our decoder sees it; we cannot bound that from here.
//   - A connection reader holding a message at Close leaks; drainClosed
//     unblocks it.
//   - No CURVE in zmq4: package curve provides it (see below).
//
// # CURVE
//
// ServerConfig.Keys and Authorize close the server with CURVE (package
// curve): only clients with ClientConfig.Keys, the server's public key in
// ClientConfig.ServerKey and a key Authorize admits get a session. A NULL
// client, an unadmitted key or a key mismatch is refused by both ends (no
// downgrade either way), counted in ServerStats.Refused and
// ClientStats.Refused; the client retries with its usual backoff. The
// ROUTER listens through internal/zmtpguard with or without keys, so a
// peer that stalls its handshake never holds the accept loop, and clients
// dial through it too, so a server answering with another mechanism is
// refused and counted. logd uses its --keys and the shipping peer's
// X-PUBLICKEY header.
package filemq
