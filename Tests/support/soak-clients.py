#!/usr/bin/env python3
"""Client side of Tests/bench/soak.sh: mixed traffic against lb on 127.0.0.1 for SECONDS, then a
summary as JSON on stdout.

    soak-clients.py PORT SECONDS WORKDIR

Each kind of client is a thread looping until the deadline (so the count of open connections is
bounded by the number of threads): new-connection GETs (proxied, cached, static), uploads whose
sha256 the backend echoes, slow readers (static file, cache hit, proxied stream), WebSocket
echo sessions, and cache checks (X-Cache-Status). Every answer is checked (status, length, body).

An answer that failed because the backend serving it was killed while it was in flight is not
a client error: nothing can save a response already started when its peer dies (the script
writes "EPOCH NAME" to WORKDIR/kills.log at each kill; X-Backend names the peer). Every other
failure is an error and is listed with its reason.
"""
import base64
import hashlib
import json
import os
import random
import socket
import sys
import threading
import time

PORT, SECONDS, WORK = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
DEADLINE = time.time() + SECONDS
lock = threading.Lock()
counts = {}          # kind -> ok count
errors = []          # (kind, reason)
excused = {}         # kind -> count of failures explained by a backend kill
cache_status = {}    # X-Cache-Status -> count
STATIC = open(os.path.join(WORK, "www", "static", "big.bin"), "rb").read()


def ok(kind):
    with lock:
        counts[kind] = counts.get(kind, 0) + 1


def killed_between(name, t0, t1):
    """Whether backend NAME was killed in [t0, t1] (with a second of slack)."""
    try:
        for line in open(os.path.join(WORK, "kills.log")):
            at, who = line.split()
            if who == name and t0 - 1 <= float(at) <= t1 + 1:
                return True
    except FileNotFoundError:
        pass
    return False


def fail(kind, reason, backend=None, t0=None):
    if t0 is not None:
        reason = "%s (backend %s, began %.1f, after %.1f s)" % (reason, backend, t0, time.time() - t0)
    if backend and t0 is not None and killed_between(backend, t0, time.time() + 1):
        with lock:
            excused[kind] = excused.get(kind, 0) + 1
        return
    with lock:
        errors.append((kind, reason))


class BackendError(Exception):
    def __init__(self, msg, backend):
        super().__init__(msg)
        self.backend = backend


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body


def read_head(sock, buf=b""):
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed before the response head (%d bytes)" % len(buf))
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def request(method, path, body=b"", headers=None, read_delay=0.0, chunk=65536, rcvbuf=None):
    """One request on a new connection; reads the whole response (slowly when read_delay)."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)
    try:
        s.connect(("127.0.0.1", PORT))
        h = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        s.sendall(("%s %s HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n%sContent-Length: %d\r\n\r\n"
                   % (method, path, h, len(body))).encode() + body)
        status, hdrs, rest = read_head(s)
        n = int(hdrs.get("content-length", "-1"))
        data = bytearray(rest)
        while n < 0 or len(data) < n:
            if read_delay:
                time.sleep(read_delay)
            d = s.recv(chunk)
            if not d:
                break
            data += d
        if n >= 0 and len(data) != n:
            raise BackendError("body %d of %d bytes from %s" % (len(data), n, hdrs.get("x-backend")), hdrs.get("x-backend"))
        return Response(status, hdrs, bytes(data))
    finally:
        s.close()


def loop(kind, fn):
    def run():
        while time.time() < DEADLINE:
            t0 = time.time()
            try:
                fn(t0)
            except Exception as e:  # a transport failure: excused only if its backend was killed
                fail(kind, "%s: %s" % (type(e).__name__, e), getattr(e, "backend", None), t0)
                time.sleep(0.2)
    t = threading.Thread(target=run, name=kind, daemon=True)
    t.start()
    return t


def expect(kind, r, t0, status=200):
    if r.status != status:
        fail(kind, "status %d (want %d) X-Backend %s" % (r.status, status, r.headers.get("x-backend")),
             r.headers.get("x-backend"), t0)
        return False
    return True


def proxied_get(t0):
    path = "/app/item/%d" % random.randrange(1000)
    r = request("GET", path)
    if not expect("get", r, t0):
        pass
    elif not r.body.endswith(path[len("/app"):].encode()):
        fail("get", "body %r for %s" % (r.body[:80], path))
    else:
        ok("get")
    time.sleep(0.02)


def static_get(t0):
    r = request("GET", "/static/small.txt")
    if expect("static", r, t0) and r.body == b"small static file\n":
        ok("static")
    time.sleep(0.05)


def cached_get(t0):
    # 200 keys, 5 s validity: a mix of MISS, HIT and EXPIRED.
    r = request("GET", "/cached/gen?k=%d&cc=max-age%%3D5" % random.randrange(200))
    if expect("cache", r, t0):
        st = r.headers.get("x-cache-status", "none")
        with lock:
            cache_status[st] = cache_status.get(st, 0) + 1
        ok("cache")
    time.sleep(0.02)


def upload(t0):
    body = os.urandom(random.choice((1000, 200_000, 3_000_000)))
    r = request("POST", "/app/upload", body)
    if expect("upload", r, t0):
        j = json.loads(r.body)
        if j["bytes"] != len(body) or j["sha256"] != hashlib.sha256(body).hexdigest():
            fail("upload", "backend got %d bytes %s" % (j["bytes"], j["sha256"][:12]))
        else:
            ok("upload")
    time.sleep(0.3)


def slow_upload(t0):
    # The body arrives in 10 pieces over ~2 s: lb buffers it before a peer is chosen.
    body = os.urandom(500_000)
    s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
    try:
        s.sendall(b"POST /app/upload HTTP/1.1\r\nHost: soak\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(10):
            s.sendall(body[i * 50_000:(i + 1) * 50_000])
            time.sleep(0.2)
        status, hdrs, rest = read_head(s)
        data = rest
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    finally:
        s.close()
    r = Response(status, hdrs, data)
    if expect("slow-upload", r, t0):
        j = json.loads(r.body)
        if j["sha256"] != hashlib.sha256(body).hexdigest():
            fail("slow-upload", "body changed on the way")
        else:
            ok("slow-upload")


def slow_static(t0):
    # 2 MiB static file read 16 KiB every 20 ms (~0.8 MB/s) through a small receive buffer.
    r = request("GET", "/static/big.bin", read_delay=0.02, chunk=16384, rcvbuf=32768)
    if expect("slow-static", r, t0) and r.body == STATIC:
        ok("slow-static")
    elif r.status == 200:
        fail("slow-static", "body differs")


def slow_cached(t0):
    r = request("GET", "/cached/gen?k=big&size=1000000&cc=max-age%3D30", read_delay=0.02, chunk=16384, rcvbuf=32768)
    if expect("slow-cache", r, t0) and len(r.body) == 1000000:
        ok("slow-cache")


def slow_proxied(t0):
    r = request("GET", "/app/big?bytes=1000000", read_delay=0.02, chunk=16384, rcvbuf=32768)
    if expect("slow-proxy", r, t0) and len(r.body) == 1000000:
        ok("slow-proxy")


def websocket(t0):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
    backend = None
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /ws HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
        status, hdrs, rest = read_head(s)
        backend = hdrs.get("x-backend")
        if status != 101:
            fail("ws", "handshake status %d" % status, backend, t0)
            return
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        if hdrs.get("sec-websocket-accept") != want:
            fail("ws", "bad Sec-WebSocket-Accept")
            return
        # The backend echoes raw bytes: 20 messages over ~2 s, each must come back whole.
        got = rest
        for i in range(20):
            msg = ("message %d %s" % (i, os.urandom(8).hex())).encode()
            s.sendall(msg)
            while len(got) < len(msg):
                d = s.recv(65536)
                if not d:
                    raise BackendError("tunnel closed after %d messages" % i, backend)
                got += d
            if got[:len(msg)] != msg:
                fail("ws", "echo differs")
                return
            got = got[len(msg):]
            time.sleep(0.1)
        ok("ws")
    except OSError as e:
        raise BackendError("%s: %s" % (type(e).__name__, e), backend)
    finally:
        s.close()


threads = [loop("get", proxied_get), loop("get", proxied_get), loop("static", static_get),
           loop("cache", cached_get), loop("cache", cached_get), loop("upload", upload),
           loop("slow-upload", slow_upload), loop("slow-static", slow_static), loop("slow-cache", slow_cached),
           loop("slow-proxy", slow_proxied), loop("ws", websocket), loop("ws", websocket), loop("ws", websocket)]
for t in threads:
    t.join(SECONDS + 120)
print(json.dumps({"ok": counts, "errors": len(errors), "error_list": errors[:50],
                  "excused_by_backend_kill": excused, "cache_status": cache_status}, sort_keys=True))
