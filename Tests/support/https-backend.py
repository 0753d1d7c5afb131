#!/usr/bin/env python3
"""An HTTPS test backend for lb's upstream TLS tests: Python's ssl module (OpenSSL underneath, but
Python's HTTP and its own TLS settings), standard library only.

    https-backend.py PORT NAME CERT KEY [CLIENT_CA [require]] [--tls12]

Every response is JSON about the request's connection: {"name", "path", "sni" (the name the
client sent, or null), "version", "resumed" (the TLS session was resumed), "client" (the client
certificate's subject CN, or null), "connections" (TLS connections accepted so far),
"handshakes" (completed)}. With CLIENT_CA, client certificates are verified against it
(optional; "require": mandatory). --tls12: TLS 1.2 at most. Keep-alive HTTP/1.1.
Prints "ready" once listening. Binds 127.0.0.1 only.
"""
import json
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

args = [a for a in sys.argv[1:] if not a.startswith("--")]
PORT, NAME, CERT, KEY = int(args[0]), args[1], args[2], args[3]
CLIENT_CA = args[4] if len(args) > 4 else None
REQUIRE = len(args) > 5 and args[5] == "require"

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
if "--tls12" in sys.argv:
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
if CLIENT_CA:
    ctx.load_verify_locations(CLIENT_CA)
    ctx.verify_mode = ssl.CERT_REQUIRED if REQUIRE else ssl.CERT_OPTIONAL

stats = {"connections": 0, "handshakes": 0}
lock = threading.Lock()


def sni_callback(sslsock, server_name, context):
    sslsock.lb_sni = server_name  # the SSLSocket being handshaken


ctx.sni_callback = sni_callback


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def setup(self):
        with lock:
            stats["connections"] += 1
        self.request = ctx.wrap_socket(self.request, server_side=True)
        with lock:
            stats["handshakes"] += 1
        super().setup()

    def log_message(self, *args):
        pass

    def do_GET(self):
        conn = self.connection
        peer = conn.getpeercert()
        client = None
        if peer:
            for rdn in peer.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        client = v
        with lock:
            info = {
                "name": NAME,
                "path": self.path,
                "sni": getattr(conn, "lb_sni", None),
                "version": conn.version(),
                "resumed": conn.session_reused,
                "client": client,
                "connections": stats["connections"],
                "handshakes": stats["handshakes"],
            }
        body = json.dumps(info).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", NAME)
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # failed handshakes are part of the tests


httpd = Server(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
httpd.serve_forever()
