#!/usr/bin/env python3
"""Send exactly N keep-alive GET requests over C connections and check every response.

    fixed-requests.py PORT PATH N [C]

Each connection sends its share one request at a time (no pipelining) and reads each response by
its Content-Length (or chunked framing). Exits non-zero if any response is not 200 or a connection
closes early, so an instruction count divided by N is a count per successful request.
"""
import socket
import sys
import threading

port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conns = int(sys.argv[4]) if len(sys.argv) > 4 else 10
req = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
failures = []


def read_response(s, buf):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed before head")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, chunked = None, False
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if chunked:
        while not rest.endswith(b"0\r\n\r\n"):
            d = s.recv(65536)
            if not d:
                raise EOFError("closed in chunked body")
            rest += d
        return status, b""
    while len(rest) < length:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed in body")
        rest += d
    return status, rest[length:]


def worker(count):
    try:
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        for _ in range(count):
            s.sendall(req)
            status, buf = read_response(s, buf)
            if status != 200:
                failures.append(f"status {status}")
                return
        s.close()
    except Exception as e:  # noqa: BLE001
        failures.append(repr(e))


threads = [threading.Thread(target=worker, args=(n // conns + (1 if i < n % conns else 0),)) for i in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if failures:
    print("failures:", failures[:5], file=sys.stderr)
    sys.exit(1)
