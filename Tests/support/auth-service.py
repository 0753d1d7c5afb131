#!/usr/bin/env python3
"""A small auth service for auth_request tests (an independent HTTP/1.1 server: Python's
http.server).

    auth-service.py PORT

It decides by the request's Authorization header (which an auth subrequest inherits from the
client's request):
  Bearer good       200, X-User: alice, X-Role: admin
  Bearer forbidden  403
  Bearer moved      302 to /login
  Bearer slow-MS    waits MS milliseconds, then 200 (X-User: slow)
  anything else     401 with two WWW-Authenticate headers
Every answer carries a body (which the proxy must discard), X-Seen: METHOD PATH
content-length=… x-original-uri=…, what the service received, and X-Connection-Requests, the
requests served on its connection so far. Prints "ready" once listening.
"""
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def answer(self):
        auth = self.headers.get("Authorization", "")
        seen = "%s %s content-length=%s x-original-uri=%s" % (
            self.command, self.path, self.headers.get("Content-Length", "-"),
            self.headers.get("X-Original-URI", "-"))
        extra = [("X-Seen", seen)]
        if auth == "Bearer good":
            code = 200
            extra += [("X-User", "alice"), ("X-Role", "admin")]
        elif auth == "Bearer forbidden":
            code = 403
        elif auth == "Bearer moved":
            code = 302
            extra.append(("Location", "/login"))
        elif auth.startswith("Bearer slow-"):
            time.sleep(int(auth[len("Bearer slow-"):]) / 1000)
            code = 200
            extra.append(("X-User", "slow"))
        else:
            code = 401
            extra += [("WWW-Authenticate", 'Bearer realm="lb"'), ("WWW-Authenticate", 'Basic realm="fallback"')]
        # Requests served on this connection so far (1 on a new one): shows keep-alive reuse.
        self.served = getattr(self, "served", 0) + 1
        extra.append(("X-Connection-Requests", str(self.served)))
        body = b"auth service body, never for the client\n"
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        # Head and body in one write.
        self._headers_buffer.append(b"\r\n")
        data = b"".join(self._headers_buffer)
        self._headers_buffer = []
        self.wfile.write(data if self.command == "HEAD" else data + body)

    do_GET = answer
    do_POST = answer
    do_HEAD = answer
    do_PUT = answer
    do_DELETE = answer


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
srv.serve_forever()
