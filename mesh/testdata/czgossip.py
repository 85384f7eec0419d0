"""A czmq zgossip server (libczmq, through ctypes), for interop tests.

Usage: czgossip.py bind ENDPOINT
       czgossip.py connect ENDPOINT KEY VALUE
Binds a zgossip actor to ENDPOINT (a seed), or connects it to the seed at
ENDPOINT and publishes KEY=VALUE; prints "READY", then one line
"DELIVER <key> <value>" per tuple it learns. Stops when stdin closes.
"""
import ctypes, select, sys

cz = ctypes.CDLL("libczmq.so.4")
cz.zactor_new.restype = ctypes.c_void_p
cz.zactor_new.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
cz.zactor_destroy.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
cz.zstr_recv.restype = ctypes.c_void_p
cz.zstr_recv.argtypes = [ctypes.c_void_p]
cz.zstr_free.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
cz.zsock_set_rcvtimeo.argtypes = [ctypes.c_void_p, ctypes.c_int]
cz.zstr_sendx.restype = ctypes.c_int

actor = cz.zactor_new(ctypes.cast(cz.zgossip, ctypes.c_void_p), ctypes.c_char_p(b"seed"))
if sys.argv[1] == "bind":
    cz.zstr_sendx(ctypes.c_void_p(actor), b"BIND", sys.argv[2].encode(), None)
else:
    cz.zstr_sendx(ctypes.c_void_p(actor), b"CONNECT", sys.argv[2].encode(), None)
    cz.zstr_sendx(ctypes.c_void_p(actor), b"PUBLISH", sys.argv[3].encode(), sys.argv[4].encode(), None)
cz.zsock_set_rcvtimeo(actor, 100)

def recv():
    p = cz.zstr_recv(actor)
    if not p:
        return None
    s = ctypes.string_at(p).decode()
    cz.zstr_free(ctypes.byref(ctypes.c_void_p(p)))
    return s

print("READY", flush=True)
while True:
    r, _, _ = select.select([sys.stdin], [], [], 0)
    if r and not sys.stdin.readline():
        break
    cmd = recv()
    if cmd == "DELIVER":
        key, value = recv(), recv()
        print("DELIVER", key, value, flush=True)
h = ctypes.c_void_p(actor)
cz.zactor_destroy(ctypes.byref(h))
