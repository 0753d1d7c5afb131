#!/usr/bin/env python3
"""A test backend for lb's end-to-end tests: an independent HTTP/1.1 implementation (Python's
http.server), so lb is never tested only against itself.

    backend.py PORT NAME [HOST]

Routes: /headers (JSON of the request headers), /slow?ms=N, /status/N, /big?bytes=N (streamed),
/chunked?parts=N, /setcookie?c=V&c=… (a Set-Cookie field per c), /stats (connections accepted, requests served), /gen… (cache tests: headers
from the query — cc, xae, exp, etag, cookie, vary, ce, ct, status, ms, size, chunked, gap and pieces — and a per-URL
request count in the body), /counts (those counts as JSON), /upload (POST: byte count and
sha256 of the body), /record… (kept: method, target, body size and digest, the framing
and X-* headers; answered 200), /records (the kept ones as JSON, then forgotten; `?path=P`
only those whose target starts with P), anything else: "NAME PATH". Every response carries X-Backend: NAME.
Prints "ready" once listening. Binds 127.0.0.1 (or HOST, another loopback address) only.
"""
import hashlib
import json
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

PORT = int(sys.argv[1])
NAME = sys.argv[2]
HOST = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
stats = {"connections": 0, "requests": 0}
paths = {}
records = []
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle + delayed ACK adds 40 ms.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        with lock:
            stats["connections"] += 1

    def log_message(self, *args):
        pass

    def send(self, code, body, ctype="text/plain", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", NAME)
        for k, v in (extra.items() if isinstance(extra, dict) else extra or []):
            self.send_header(k, v)
        # Head and body in one write: a backend killed by a test (SIGKILL) loses whole responses,
        # never half of one (a response cut after its head cannot be retried, by lb or nginx).
        self._headers_buffer.append(b"\r\n")
        data = b"".join(self._headers_buffer)
        self._headers_buffer = []
        self.wfile.write(data if self.command == "HEAD" else data + body)

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        h = hashlib.sha256()
        total = 0
        while total < n:
            chunk = self.rfile.read(min(1 << 20, n - total))
            if not chunk:
                break
            h.update(chunk)
            total += len(chunk)
        self._upload = (total, h.hexdigest())
        return None

    def route(self):
        with lock:
            stats["requests"] += 1
        u = urlparse(self.path)
        q = parse_qs(u.query)
        if NAME == "closer":
            # A broken peer: reads the whole request, then closes without an answer.
            if self.command in ("POST", "PUT", "PATCH"):
                self.body()
            self.close_connection = True
            return
        if u.path == "/reject":
            # Answers at once without reading the body (an early 413), then closes.
            self.close_connection = True
            self.send(int(q.get("status", ["413"])[0]), b"rejected", extra={"Connection": "close"})
            return
        if u.path.endswith("/accel"):
            # X-Accel-Redirect to the query's `xa`, with the headers nginx keeps across it (and
            # one it does not); the body must never reach the client.
            if self.command in ("POST", "PUT", "PATCH"):
                self.body()
            extra = {"X-Accel-Redirect": q.get("xa", ["/"])[0], "Set-Cookie": "app=1; Path=/",
                     "Content-Disposition": "attachment; filename=\"f.txt\"", "Cache-Control": "private",
                     "X-Other": "dropped"}
            if "rate" in q:
                extra["X-Accel-Limit-Rate"] = q["rate"][0]
            self.send(200, b"app body, not for the client", q.get("ct", ["application/x-app"])[0], extra=extra)
            return
        if u.path == "/setcookie":
            # One Set-Cookie field per `c` in the query, in order, as given (proxy_cookie_* tests).
            self.send(200, b"cookies", extra=[("Set-Cookie", c) for c in q.get("c", [])])
            return
        if u.path == "/bighead":
            self.send(200, b"big head", extra={"X-Big": "b" * int(q.get("bytes", ["6000"])[0])})
            return
        if u.path == "/headers":
            hdrs = {k.lower(): v for k, v in self.headers.items()}
            self.send(200, json.dumps({"headers": hdrs, "path": self.path, "method": self.command,
                                       "version": self.request_version}).encode(), "application/json")
        elif u.path == "/slow":
            time.sleep(int(q.get("ms", ["1000"])[0]) / 1000)
            self.send(200, f"{NAME} slow".encode())
        elif u.path.startswith("/gen"):
            # Cache tests: the query sets the caching headers; the body counts requests per URL.
            with lock:
                paths[self.path] = paths.get(self.path, 0) + 1
                n = paths[self.path]
            ms = int(q.get("ms", ["0"])[0])
            if ms:
                time.sleep(ms / 1000)
            extra = {}
            if "cc" in q: extra["Cache-Control"] = q["cc"][0]
            if "xae" in q: extra["X-Accel-Expires"] = q["xae"][0]
            if "exp" in q:
                extra["Expires"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + int(q["exp"][0])))
            if "cookie" in q: extra["Set-Cookie"] = "session=" + str(n)
            if "vary" in q: extra["Vary"] = q["vary"][0]
            if "ce" in q: extra["Content-Encoding"] = q["ce"][0]
            etag = q.get("etag", [None])[0]
            if etag:
                extra["ETag"] = '"%s"' % etag
                if self.headers.get("If-None-Match") == '"%s"' % etag:
                    self.send_response(304)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("X-Backend", NAME)
                    self.end_headers()
                    return
            varied = ""
            if "vary" in q:
                varied = " " + q["vary"][0] + "=" + str(self.headers.get(q["vary"][0]))
            body = f"{NAME} {self.path} n={n}{varied}\n".encode()
            size = int(q.get("size", ["0"])[0])
            if size > len(body):
                body += b"." * (size - len(body))
            status = int(q.get("status", ["200"])[0])
            if "chunked" in q:
                self.send_response(status)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Content-Type", q.get("ct", ["text/plain"])[0])
                self.send_header("X-Backend", NAME)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                for i in range(0, len(body), 1000):
                    piece = body[i:i + 1000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            elif "gap" in q:
                # In `pieces` writes (4 by default), `gap` ms apart after the head and the first:
                # a slow upstream whose client can leave mid-body.
                pieces = int(q.get("pieces", ["4"])[0])
                step = -(-len(body) // pieces)
                self.send_response(status)
                self.send_header("Content-Type", q.get("ct", ["text/plain"])[0])
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Backend", NAME)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                for i in range(0, len(body), step):
                    if i:
                        time.sleep(int(q["gap"][0]) / 1000)
                    self.wfile.write(body[i:i + step])
            else:
                self.send(status, body, q.get("ct", ["text/plain"])[0], extra=extra)
        elif u.path.startswith("/record/") or u.path == "/record":
            data = self.body()
            if data is None:
                n, digest = self._upload
            else:
                n, digest = len(data), hashlib.sha256(data).hexdigest()
            kept = {k.lower(): v for k, v in self.headers.items()
                    if k.lower().startswith("x-") or k.lower() in ("content-length", "transfer-encoding", "host")}
            with lock:
                records.append({"method": self.command, "target": self.path, "bytes": n,
                                "sha256": digest, "headers": kept})
            self.send(200, b"recorded")
        elif u.path == "/records":
            prefix = q.get("path", [""])[0]
            with lock:
                mine = [r for r in records if r["target"].startswith(prefix)]
                records[:] = [r for r in records if not r["target"].startswith(prefix)]
            self.send(200, json.dumps(mine).encode(), "application/json")
        elif u.path == "/counts":
            with lock:
                body = json.dumps(paths).encode()
            self.send(200, body, "application/json")
        elif u.path == "/cc":
            self.send(200, b"cc", extra={"Cache-Control": "private, max-age=5", "Expires": "Thu, 01 Jan 2037 00:00:00 GMT"})
        elif u.path.endswith("/redirect"):
            self.send(302, b"moved", extra={"Location": q.get("to", ["/"])[0]})
        elif u.path.startswith("/status/"):
            if self.command in ("POST", "PUT", "PATCH"):
                self.body()
            self.send(int(u.path.split("/")[2]), f"{NAME} status".encode())
        elif u.path == "/big":
            n = int(q.get("bytes", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.send_header("X-Backend", NAME)
            self.end_headers()
            block = b"x" * 65536
            sent = 0
            while sent < n:
                k = min(len(block), n - sent)
                self.wfile.write(block[:k])
                sent += k
        elif u.path == "/chunked":
            parts = int(q.get("parts", ["3"])[0])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Backend", NAME)
            self.end_headers()
            for i in range(parts):
                piece = f"part{i};".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            if "trailer" in q:
                self.wfile.write(b"0\r\nX-Checksum: abc\r\nX-Second: two\r\n\r\n")
            else:
                self.wfile.write(b"0\r\n\r\n")
        elif u.path == "/ws":
            # An Upgrade handshake, then a raw echo of whatever arrives (a tunnel check).
            import base64
            key = self.headers.get("Sec-WebSocket-Key", "")
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.send_header("X-Backend", NAME)
            self.end_headers()
            self.wfile.flush()
            while True:
                data = self.connection.recv(65536)
                if not data:
                    break
                self.connection.sendall(data)
            self.close_connection = True
        elif u.path == "/stats":
            with lock:
                body = json.dumps(stats).encode()
            self.send(200, body, "application/json")
        elif u.path == "/upload":
            data = self.body()
            if data is not None:
                self._upload = (len(data), hashlib.sha256(data).hexdigest())
            n, digest = self._upload
            self.send(200, json.dumps({"bytes": n, "sha256": digest,
                                       "content_length": self.headers.get("Content-Length"),
                                       "transfer_encoding": self.headers.get("Transfer-Encoding")}).encode(), "application/json")
        else:
            if self.command in ("POST", "PUT", "PATCH"):
                self.body()
            self.send(200, f"{NAME} {self.path}".encode())

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = route


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


srv = Server((HOST, PORT), Handler)
print("ready", flush=True)
srv.serve_forever()
