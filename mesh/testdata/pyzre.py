"""A minimal ZRE v2 peer (RFC 36) on pyzmq/libzmq, for interop tests.

Usage: pyzre.py BEACON_PORT BROADCAST_ADDR [curve]
Beacons on BEACON_PORT, one ROUTER mailbox, one DEALER per peer. With
"curve", it does what Zyre does with a certificate: CURVE on the mailbox and
every DEALER, version 3 beacons with its public key, X-PUBLICKEY in HELLO,
and it talks only to peers whose beacon carries a key. Prints one
line per event on stdout: READY <uuid> <endpoint> [<public key>], ENTER <uuid> <name> <headers>,
JOIN <uuid> <group>, SHOUT <uuid> <group> <text>, WHISPER <uuid> <text>,
EXIT <uuid>. Answers a WHISPER with WHISPER "pong:<text>" and PING with
PING-OK. Stops when stdin closes.
"""
import json, select, socket, struct, sys, time, uuid
import zmq
import zmq.utils.z85

port, bcast = int(sys.argv[1]), sys.argv[2]
secure = len(sys.argv) > 3 and sys.argv[3] == "curve"
me = uuid.uuid4()
ctx = zmq.Context()
if secure:
    public, secret = zmq.curve_keypair()
inbox = ctx.socket(zmq.ROUTER)
if secure:
    inbox.curve_secretkey = secret
    inbox.curve_publickey = public
    inbox.curve_server = True
mport = inbox.bind_to_random_port("tcp://127.0.0.1")
endpoint = "tcp://127.0.0.1:%d" % mport

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
udp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
udp.bind(("0.0.0.0", port))

def say(*parts):
    print(" ".join(str(p) for p in parts), flush=True)

def s(b):  # string: 1-byte length
    return struct.pack("B", len(b)) + b

def ls(b):  # longstr: 4-byte length
    return struct.pack(">I", len(b)) + b

peers = {}  # uuid -> {"dealer", "seq", "want"}

def send(peer, msg_id, body=b"", content=()):
    peer["seq"] = (peer["seq"] + 1) % 65536
    head = struct.pack(">HBBH", 0xAAA1, msg_id, 2, peer["seq"]) + body
    peer["dealer"].send_multipart([head] + list(content))

def require(pid, ep, key=None):
    if pid in peers:
        return peers[pid]
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.IDENTITY, b"\x01" + me.bytes)
    d.setsockopt(zmq.LINGER, 0)
    if secure:
        d.curve_secretkey = secret
        d.curve_publickey = public
        d.curve_serverkey = key
    d.connect(ep)
    p = {"dealer": d, "seq": 0, "want": 0, "ready": False}
    peers[pid] = p
    groups = [b"interop"]
    headers = {b"X-PY": b"yes"}
    if secure:
        headers[b"X-PUBLICKEY"] = public
    body = s(endpoint.encode()) + struct.pack(">I", len(groups)) + b"".join(ls(g) for g in groups)
    body += struct.pack("B", 1) + s(b"pyzre")
    body += struct.pack(">I", len(headers)) + b"".join(s(k) + ls(v) for k, v in headers.items())
    send(p, 1, body)
    return p

def remove(pid):
    p = peers.pop(pid, None)
    if p:
        p["dealer"].close()
        if p["ready"]:
            say("EXIT", pid)

class R:
    def __init__(self, b): self.b, self.i = b, 0
    def take(self, n):
        v = self.b[self.i:self.i + n]
        if len(v) != n: raise ValueError("truncated")
        self.i += n
        return v
    def u8(self): return self.take(1)[0]
    def u32(self): return struct.unpack(">I", self.take(4))[0]
    def str(self): return self.take(self.u8()).decode()
    def lstr(self): return self.take(self.u32()).decode()

def on_message(frames):
    ident, head, content = frames[0], frames[1], frames[2:]
    if len(ident) != 17 or ident[0] != 1:
        return
    pid = uuid.UUID(bytes=ident[1:])
    sig, mid, ver, seq = struct.unpack(">HBBH", head[:6])
    if sig != 0xAAA1 or ver != 2:
        return
    r = R(head[6:])
    p = peers.get(pid)
    if mid == 1:
        ep = r.str()
        groups = [r.lstr() for _ in range(r.u32())]
        r.u8()
        name = r.str()
        headers = {}
        for _ in range(r.u32()):
            k = r.str(); headers[k] = r.lstr()
        if pid not in peers and secure:
            key = headers.get("X-PUBLICKEY", "").encode()
            if not key:
                return
            p = require(pid, ep, key)
        else:
            p = require(pid, ep)
        p["ready"], p["want"] = True, 1
        say("ENTER", pid, name, json.dumps(headers, sort_keys=True, separators=(",", ":")))
        for g in groups:
            say("JOIN", pid, g)
        return
    if p is None or not p["ready"]:
        return
    p["want"] = (p["want"] + 1) % 65536
    if seq != p["want"]:
        say("LOST", pid, seq, p["want"])
        remove(pid)
        return
    if mid == 2:
        text = b"".join(content).decode()
        say("WHISPER", pid, text)
        send(p, 2, b"", [b"pong:" + text.encode()])
    elif mid == 3:
        say("SHOUT", pid, r.str(), b"".join(content).decode())
    elif mid == 4:
        say("JOIN", pid, r.str())
    elif mid == 6:
        send(p, 7)

if secure:
    say("READY", me, endpoint, public.decode())
    beacon = b"ZRE\x03" + me.bytes + struct.pack(">H", mport) + zmq.utils.z85.decode(public)
else:
    say("READY", me, endpoint)
    beacon = b"ZRE\x01" + me.bytes + struct.pack(">H", mport)
poller = zmq.Poller()
poller.register(inbox, zmq.POLLIN)
poller.register(udp, zmq.POLLIN)
poller.register(sys.stdin, zmq.POLLIN)
next_beacon = 0.0
deadline = time.time() + 60
while time.time() < deadline:
    if time.time() >= next_beacon:
        udp.sendto(beacon, (bcast, port))
        next_beacon = time.time() + 0.1
    for sock, _ in poller.poll(50):
        if sock is inbox:
            on_message(inbox.recv_multipart())
        elif sock in (udp, udp.fileno()):
            data, (ip, _) = udp.recvfrom(255)
            if secure and (len(data) != 54 or data[:4] != b"ZRE\x03"):
                continue
            if not secure and (len(data) != 22 or data[:4] != b"ZRE\x01"):
                continue
            pid = uuid.UUID(bytes=data[4:20])
            (pport,) = struct.unpack(">H", data[20:22])
            if pid == me:
                continue
            if pport == 0:
                remove(pid)
            elif secure:
                require(pid, "tcp://%s:%d" % (ip, pport), zmq.utils.z85.encode(data[22:54]))
            else:
                require(pid, "tcp://%s:%d" % (ip, pport))
        elif sock in (sys.stdin, sys.stdin.fileno()):
            if not sys.stdin.readline():
                deadline = 0
udp.sendto(beacon[:3] + beacon[3:4] + me.bytes + b"\x00\x00" + beacon[22:], (bcast, port))
for p in peers.values():
    p["dealer"].close()
inbox.close(linger=0)
ctx.term()
