#!/usr/bin/python3
"""Frame-level HTTP/2 clients for lb's end-to-end tests (Debian's python3-h2, its hpack and
hyperframe): an independent implementation of the protocol, and raw frames where a well-behaved
library would refuse to misbehave.

    h2client.py CASE PORT [ARGS]

Cases (each prints one result line; every socket read is bounded by a timeout):
  get PATH [WINDOW]       a GET with the stream window WINDOW (default 65535), WINDOW_UPDATE as
                          data is read: "STATUS BYTES SHA256"
  rapid-reset N PATH      N streams opened and reset at once: "goaway CODE served-before-goaway"
  continuation-flood      HEADERS then 16 KiB CONTINUATION frames without END_HEADERS: "goaway CODE"
  refuse N PATH           N streams opened at once ignoring SETTINGS_MAX_CONCURRENT_STREAMS:
                          "ok=K refused=R" (responses, RST_STREAM REFUSED_STREAM)
  reload-inflight PATH    one slow request; prints "sent" at once, then, when the connection ends,
                          "STATUS goaway=CODE closed"
  many N PATH             N streams at once: "ok=K goaway=LAST/CODE closed"
  zero-window PATH        a GET that allows no DATA: "reset CODE after Ns" (send_timeout)
  idle                    waits for the server to end an idle connection: "goaway CODE closed|timeout"
  bursts N PAUSE PATH     N GETs one after the other on one connection, the last after PAUSE seconds
                          idle; then waits for the server to end the connection:
                          "STATUS/CONTENT-TYPE/LENGTH ... goaway CODE after SECONDS closed|timeout"
                          (seconds from the last response)
  hpack-bomb PATH SIZE REFS  one request whose block adds a SIZE-octet field to the HPACK table and
                          refers to it REFS times (HEADERS + CONTINUATION): "STATUS" or "goaway CODE"
  bodies N PATH           N streams at once: each stream's body, "SID BODY" per line, by stream id
  trailers PATH           a POST of "hello" then trailers (x-trailer: 1): "STATUS BODY" or "goaway CODE"
  get-trailers PATH       a GET: "STATUS LENGTH trailers=NAME:VALUE,..."
  closed-data-flood N PATH  40 streams answered in full, then N empty DATA frames spread over them:
                          "goaway CODE rst=R" or "no goaway ENDED rst=R"
  reuse N                 N rounds, one stream at a time on one connection: a POST of a body to
                          /p/upload without content-length, a GET of /p/upload, a GET of /v:
                          "STATUS:BYTES:TRANSFER-ENCODING:same|other" per upload answer (same: the
                          sha256 the backend saw is this stream's body's) and "STATUS:BODY" for /v
  sequence SPEC...        one stream at a time on one connection, a GET per SPEC ("PATH" or
                          "PATH|name:value|..." with request fields): "STATUS BODY [x-fields]" per
                          stream (the response's x- fields), joined by " ; "
  reset-then-more N PATH  N streams, all reset 0.3 s later, then N more: "ok=K refused=R" for the
                          second N (RST_STREAM REFUSED_STREAM)
  cancel PATH HOLD        a GET, then RST_STREAM CANCEL 0.1 s later; the connection is held HOLD seconds
                          (frames read and dropped), then closed: "cancelled"
  close PATH...           a GET per PATH, all on one connection, then the socket closed 0.1 s later
                          (no RST_STREAM, no GOAWAY): "closed"
  abort-after-head close|reset PATH  a GET whose response head is read, its body not (no WINDOW_UPDATE);
                          then the socket closed, or RST_STREAM CANCEL and the socket held 0.5 s:
                          "aborted STATUS"
  error PATH...           the server's SETTINGS acknowledged, a GET per PATH, all on one connection, then
                          0.1 s later a connection error of ours (a PING of 7 octets: FRAME_SIZE_ERROR);
                          frames are read until the server closes: "goaway CODE closed|timeout|reset"
  tls-settings SNI CA     TLS with ALPN h2 and the SNI name SNI (CA: the file to verify with): the
                          server's first SETTINGS, "NAME=VALUE ..." by setting id
"""
import hashlib
import json
import socket
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PORT = int(sys.argv[2])
# How the last raw_frames loop ended: "closed" (by the server) or "timeout".
ENDED = "timeout"


def frame(t, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload


def raw_connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(PREFACE + frame(4, 0, 0))
    return s


def raw_frames(s, timeout=10):
    """Yields (type, flags, stream, payload) until the server closes or the timeout passes."""
    global ENDED
    ENDED = "timeout"
    buf = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        while len(buf) >= 9:
            n = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + n:
                break
            t, fl = buf[3], buf[4]
            sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            yield t, fl, sid, buf[9:9 + n]
            buf = buf[9 + n:]
        try:
            s.settimeout(max(0.01, deadline - time.time()))
            d = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            ENDED = "reset"
            return
        except socket.timeout:
            return
        if not d:
            ENDED = "closed"
            return
        buf += d


def request_headers(path, method="GET"):
    return [(":method", method), (":path", path), (":scheme", "http"), (":authority", "localhost")]


def lib_connect(window=65535):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.local_settings = h2.settings.Settings(client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c


def case_get(path, window="65535"):
    s, c = lib_connect(int(window))
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, request_headers(path), end_stream=True)
    s.sendall(c.data_to_send())
    fields, body = read_response(s, c, time.time() + 30)
    print(fields.get(":status"), len(body), hashlib.sha256(body).hexdigest())


def read_response(s, c, deadline=None):
    """Reads one stream's response (fields, body) until it ends, is reset, or the deadline."""
    fields, body, done = {}, bytearray(), False
    while not done and (deadline is None or time.time() < deadline):
        d = s.recv(65536)
        if not d:
            break
        for e in c.receive_data(d):
            if isinstance(e, h2.events.ResponseReceived):
                fields = dict(e.headers)
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(c.data_to_send())
    return fields, body


def case_rapid_reset(n, path):
    s = raw_connect()
    enc = hpack.Encoder()
    out = b""
    for i in range(int(n)):
        sid = 1 + 2 * i
        out += frame(1, 0x5, sid, enc.encode(request_headers(path))) + frame(3, 0, sid, struct.pack(">I", 8))
    s.sendall(out)
    served = 0
    for t, fl, sid, p in raw_frames(s):
        if t == 1:
            served += 1
        if t == 7:
            print("goaway", int.from_bytes(p[4:8], "big"), served)
            return
    print("no goaway", served)


def case_continuation_flood():
    s = raw_connect()
    enc = hpack.Encoder()
    block = enc.encode(request_headers("/"))
    try:
        s.sendall(frame(1, 0x1, 1, block))  # END_STREAM, no END_HEADERS
        junk = hpack.Encoder().encode([("x-flood", "a" * 16000)])
        for _ in range(200):
            s.sendall(frame(9, 0, 1, junk))
    except (BrokenPipeError, ConnectionResetError):
        pass
    for t, fl, sid, p in raw_frames(s):
        if t == 7:
            print("goaway", int.from_bytes(p[4:8], "big"))
            return
    print("no goaway")


def case_control_flood(kind, count="12000", path="/"):
    """Floods one kind of frame that costs the server work but earns no response, while draining
    what it sends: "goaway CODE" once it gives up on the connection."""
    import threading
    s = raw_connect()
    n = int(count)
    if kind == "empty-data":
        # A request whose body never ends: the stream stays open while empty DATA frames come.
        s.sendall(frame(1, 0x4, 1, hpack.Encoder().encode(request_headers(path, "POST"))))  # END_HEADERS only
    one = {
        "ping": frame(6, 0, 0, b"\0" * 8),
        "settings": frame(4, 0, 0),
        "window-update": frame(8, 0, 0, struct.pack(">I", 1)),
        "empty-data": frame(0, 0, 1),
        "priority": frame(2, 0, 3, struct.pack(">IB", 0, 15)),
    }[kind]

    def send():
        try:
            for i in range(0, n, 100):
                s.sendall(one * 100)
        except OSError:
            pass
    t = threading.Thread(target=send, daemon=True)
    t.start()
    for ty, fl, sid, p in raw_frames(s, timeout=20):
        if ty == 7:
            print("goaway", int.from_bytes(p[4:8], "big"))
            return
    print("no goaway", ENDED)


def case_refuse(n, path):
    s = raw_connect()
    enc = hpack.Encoder()
    s.sendall(b"".join(frame(1, 0x5, 1 + 2 * i, enc.encode(request_headers(path))) for i in range(int(n))))
    ok = refused = 0
    for t, fl, sid, p in raw_frames(s, timeout=20):
        if t == 4 and not fl & 1:
            s.sendall(frame(4, 1, 0))
        if t == 1:
            ok += 1
        if t == 3 and int.from_bytes(p[0:4], "big") == 7:
            refused += 1
        if ok + refused == int(n):
            break
    print("ok=%d refused=%d" % (ok, refused))


def case_reset_then_more(n, path):
    s = raw_connect()
    enc = hpack.Encoder()
    n = int(n)
    s.sendall(b"".join(frame(1, 0x5, 1 + 2 * i, enc.encode(request_headers(path))) for i in range(n)))
    time.sleep(0.3)
    s.sendall(b"".join(frame(3, 0, 1 + 2 * i, struct.pack(">I", 8)) for i in range(n)))
    second = range(1 + 2 * n, 1 + 4 * n, 2)
    s.sendall(b"".join(frame(1, 0x5, sid, enc.encode(request_headers(path))) for sid in second))
    ok = refused = 0
    for t, fl, sid, p in raw_frames(s, timeout=20):
        if t == 4 and not fl & 1:
            s.sendall(frame(4, 1, 0))
        if sid in second:
            if t == 1:
                ok += 1
            if t == 3 and int.from_bytes(p[0:4], "big") == 7:
                refused += 1
        if ok + refused == n:
            break
    print("ok=%d refused=%d" % (ok, refused))


def case_reload_inflight(path):
    # Raw frames: python-h2 treats a GOAWAY as the end of everything, streams in flight included.
    s = raw_connect()
    s.sendall(frame(1, 0x5, 1, hpack.Encoder().encode(request_headers(path))))
    print("sent", flush=True)
    dec = hpack.Decoder()
    status, goaway, ended = None, None, False
    for t, fl, sid, p in raw_frames(s, timeout=20):
        if t == 4 and not fl & 1:
            s.sendall(frame(4, 1, 0))
        if t == 1 and sid == 1:
            status = dict(dec.decode(p)).get(":status")
            ended = ended or bool(fl & 1)
        if t == 0 and sid == 1:
            ended = ended or bool(fl & 1)
        if t == 7:
            goaway = int.from_bytes(p[4:8], "big")
    print(status, "goaway=%s" % goaway, "ended" if ended else "cut", ENDED)


def case_idle():
    s = raw_connect()
    goaway = None
    for t, fl, sid, p in raw_frames(s, timeout=20):
        if t == 4 and not fl & 1:
            s.sendall(frame(4, 1, 0))
        if t == 7:
            goaway = int.from_bytes(p[4:8], "big")
    print("goaway", goaway, ENDED)


def case_bursts(n, pause, path):
    s, c = lib_connect()
    results = []
    for i in range(int(n)):
        if i == int(n) - 1:
            time.sleep(float(pause))  # the idle time under test: no readiness to wait for
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, request_headers(path), end_stream=True)
        s.sendall(c.data_to_send())
        fields, body = read_response(s, c)
        results.append("%s/%s/%d" % (fields.get(":status"), fields.get("content-type"), len(body)))
    idle_from = time.time()
    goaway, after, ended = None, 0.0, "timeout"
    s.settimeout(20)
    while True:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            ended = "reset"
            break
        if not d:
            ended = "closed"
            break
        for e in c.receive_data(d):
            if isinstance(e, h2.events.ConnectionTerminated):
                goaway, after = int(e.error_code), time.time() - idle_from
        try:
            s.sendall(c.data_to_send())
        except OSError:
            pass
    print(" ".join(results), "goaway", goaway, "after %.2f" % after, ended)


def case_zero_window(path):
    # SETTINGS_INITIAL_WINDOW_SIZE 0: the response can never be sent; send_timeout must end it.
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(PREFACE + frame(4, 0, 0, struct.pack(">HI", 4, 0)) + frame(1, 0x5, 1, hpack.Encoder().encode(request_headers(path))))
    started = time.time()
    for t, fl, sid, p in raw_frames(s, timeout=20):
        if t == 4 and not fl & 1:
            s.sendall(frame(4, 1, 0))
        if t == 3 and sid == 1:
            print("reset", int.from_bytes(p[0:4], "big"), "after %.0fs" % (time.time() - started))
            return
    print("no reset", ENDED)


def case_many(n, path):
    s = raw_connect()
    enc = hpack.Encoder()
    s.sendall(b"".join(frame(1, 0x5, 1 + 2 * i, enc.encode(request_headers(path))) for i in range(int(n))))
    ok, goaway = 0, None
    for t, fl, sid, p in raw_frames(s, timeout=20):
        if t == 4 and not fl & 1:
            s.sendall(frame(4, 1, 0))
        if t == 1:
            ok += 1
        if t == 7:
            goaway = "%d/%d" % (int.from_bytes(p[0:4], "big") & 0x7FFFFFFF, int.from_bytes(p[4:8], "big"))
    print("ok=%d goaway=%s %s" % (ok, goaway, ENDED))


def case_hpack_bomb(path, size, refs):
    # One literal with incremental indexing (dynamic index 62), then REFS one-octet references to it.
    block = hpack.Encoder().encode(request_headers(path))
    name = b"x-bomb"
    value = b"a" * int(size)
    lit = bytes([0x40]) + hpack_string(name) + hpack_string(value)
    block += lit + b"\xbe" * int(refs)
    s = raw_connect()
    first, rest = block[:16384], block[16384:]
    try:
        s.sendall(frame(1, 0x1 | (0 if rest else 0x4), 1, first))
        while rest:
            part, rest = rest[:16384], rest[16384:]
            s.sendall(frame(9, 0 if rest else 0x4, 1, part))
    except (BrokenPipeError, ConnectionResetError):
        pass
    dec = hpack.Decoder()
    for t, fl, sid, p in raw_frames(s, timeout=20):
        if t == 4 and not fl & 1:
            s.sendall(frame(4, 1, 0))
        if t == 1 and sid == 1:
            print(dict(dec.decode(p)).get(":status"))
            return
        if t == 7:
            print("goaway", int.from_bytes(p[4:8], "big"))
            return
    print("nothing", ENDED)


def hpack_string(b):
    # A raw (not Huffman) string literal: 7-bit prefix length.
    n = len(b)
    if n < 127:
        return bytes([n]) + b
    out = bytearray([127])
    n -= 127
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    out.append(n)
    return bytes(out) + b


def case_bodies(n, path):
    s = raw_connect()
    enc = hpack.Encoder()
    n = int(n)
    s.sendall(b"".join(frame(1, 0x5, 1 + 2 * i, enc.encode(request_headers(path))) for i in range(n)))
    bodies, ended = {}, set()
    for t, fl, sid, p in raw_frames(s, timeout=20):
        if t == 4 and not fl & 1:
            s.sendall(frame(4, 1, 0))
        if t == 0:
            bodies[sid] = bodies.get(sid, b"") + p
        if t in (0, 1) and fl & 1:
            ended.add(sid)
        if len(ended) == n:
            break
    for sid in sorted(bodies):
        print(sid, bodies[sid].decode().strip())


def case_trailers(path):
    s = raw_connect()
    enc = hpack.Encoder()
    s.sendall(frame(1, 0x4, 1, enc.encode(request_headers(path, "POST") + [("content-type", "text/plain")]))
              + frame(0, 0, 1, b"hello")
              + frame(1, 0x5, 1, enc.encode([("x-trailer", "1")])))
    dec = hpack.Decoder()
    status, body = None, b""
    for t, fl, sid, p in raw_frames(s, timeout=20):
        if t == 4 and not fl & 1:
            s.sendall(frame(4, 1, 0))
        if t == 1 and sid == 1:
            status = dict(dec.decode(p)).get(":status")
        if t == 0 and sid == 1:
            body += p
        if t in (0, 1) and sid == 1 and fl & 1:
            print(status, body.decode())
            return
        if t == 3 and sid == 1:
            print("reset", int.from_bytes(p[0:4], "big"))
            return
        if t == 7:
            print("goaway", int.from_bytes(p[4:8], "big"))
            return
    print("nothing", ENDED)


def case_get_trailers(path):
    s, c = lib_connect()
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, request_headers(path), end_stream=True)
    s.sendall(c.data_to_send())
    status, body, trailers, done = None, bytearray(), [], False
    deadline = time.time() + 30
    while not done and time.time() < deadline:
        d = s.recv(65536)
        if not d:
            break
        for e in c.receive_data(d):
            if isinstance(e, h2.events.ResponseReceived):
                status = dict(e.headers).get(":status")
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.TrailersReceived):
                trailers += ["%s:%s" % (k, v) for k, v in e.headers]
            elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(c.data_to_send())
    print(status, len(body), "trailers=" + ",".join(trailers))


def case_closed_data_flood(count, path):
    import threading
    s = raw_connect()
    enc = hpack.Encoder()
    sids = [1 + 2 * i for i in range(40)]
    s.sendall(b"".join(frame(1, 0x5, sid, enc.encode(request_headers(path))) for sid in sids))
    ended = set()
    frames = raw_frames(s, timeout=20)
    for t, fl, sid, p in frames:
        if t == 4 and not fl & 1:
            s.sendall(frame(4, 1, 0))
        if t in (0, 1) and fl & 1:
            ended.add(sid)
        if len(ended) == len(sids):
            break
    # Every stream is closed now: empty DATA frames on them, round robin.
    batch = b"".join(frame(0, 0, sid) for sid in sids)
    n = int(count)

    def send():
        try:
            for i in range(0, n, len(sids)):
                s.sendall(batch)
        except OSError:
            pass
    threading.Thread(target=send, daemon=True).start()
    rst = 0
    for t, fl, sid, p in frames:
        if t == 3:
            rst += 1
        if t == 7:
            print("goaway", int.from_bytes(p[4:8], "big"), "rst=%d" % rst)
            return
    print("no goaway", ENDED, "rst=%d" % rst)


def case_reuse(n):
    s, c = lib_connect()
    out = []

    def exchange(method, path, body=None):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, request_headers(path, method), end_stream=body is None)
        if body is not None:
            c.send_data(sid, body, end_stream=True)
        s.sendall(c.data_to_send())
        status, got, done = None, bytearray(), False
        while not done:
            d = s.recv(65536)
            if not d:
                break
            for e in c.receive_data(d):
                if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
                    status = dict(e.headers).get(":status")
                elif isinstance(e, h2.events.DataReceived):
                    got += e.data
                    c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) and e.stream_id == sid:
                    done = True
            s.sendall(c.data_to_send())
        return status, bytes(got)

    for i in range(int(n)):
        body = bytes([0x61 + i % 26]) * (7 * i + 3)
        for method, b in (("POST", body), ("GET", None)):
            status, got = exchange(method, "/p/upload", b)
            j = json.loads(got)
            mine = hashlib.sha256(b or b"").hexdigest()
            out.append("%s:%s:%s:%s" % (status, j["bytes"], j["transfer_encoding"], "same" if j["sha256"] == mine else "other"))
        status, got = exchange("GET", "/v")
        out.append("%s:%s" % (status, got.decode().strip()))
    print(" ".join(out))


def one_request(s, c, spec):
    """One request of `sequence`/`alternate`: `PATH|name:value|...`, answered as
    `STATUS BODY [x-headers]`."""
    path, *extra = spec.split("|")
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, request_headers(path) + [tuple(f.split(":", 1)) for f in extra], end_stream=True)
    s.sendall(c.data_to_send())
    fields, body = read_response(s, c, time.time() + 30)
    xs = ",".join("%s:%s" % (k, v) for k, v in fields.items() if k.startswith("x-"))
    return "%s %s [%s]" % (fields.get(":status"), body.decode().strip(), xs)


def case_sequence(*specs):
    s, c = lib_connect()
    print(" ; ".join(one_request(s, c, spec) for spec in specs))


def case_alternate(*specs):
    """As `sequence`, but over two connections in turn: the first spec on one, the second on
    the other, and so on (a finished request's state must not reach another connection's)."""
    conns = [lib_connect(), lib_connect()]
    print(" ; ".join(one_request(*conns[i % 2], spec) for i, spec in enumerate(specs)))


def case_cancel(path, hold):
    s, c = lib_connect()
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, request_headers(path), end_stream=True)
    s.sendall(c.data_to_send())
    time.sleep(0.1)  # begun by the server (a reset in the same read as HEADERS drops it unrun)
    c.reset_stream(sid, error_code=8)  # CANCEL
    s.sendall(c.data_to_send())
    deadline = time.time() + float(hold)
    s.settimeout(0.2)
    while time.time() < deadline:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        if not d:
            break
        try:
            c.receive_data(d)
        except Exception:
            pass  # frames for the reset stream: nothing of ours
        s.sendall(c.data_to_send())
    s.close()
    print("cancelled")


def case_close(*paths):
    s = raw_connect()
    enc = hpack.Encoder()
    s.sendall(b"".join(frame(1, 0x5, 1 + 2 * i, enc.encode(request_headers(p))) for i, p in enumerate(paths)))
    time.sleep(0.1)  # begun by the server (its upstream requests sent), then the whole connection goes
    s.close()
    print("closed")


def case_abort_after_head(how, path):
    # Mid-body: the response head is read first (a readiness wait, not a sleep); the rest waits
    # for a window we never open.
    s = raw_connect()
    s.sendall(frame(1, 0x5, 1, hpack.Encoder().encode(request_headers(path))))
    dec = hpack.Decoder()
    status = None
    frames = raw_frames(s, timeout=20)
    for t, fl, sid, p in frames:
        if t == 4 and not fl & 1:
            s.sendall(frame(4, 1, 0))
        if t == 1 and sid == 1:
            status = dict(dec.decode(p)).get(":status")
            break
    if how == "reset":
        s.sendall(frame(3, 0, 1, struct.pack(">I", 8)))  # RST_STREAM CANCEL
        deadline = time.time() + 0.5
        s.settimeout(0.1)
        while time.time() < deadline:  # read and dropped while the server takes the reset in
            try:
                if not s.recv(65536):
                    break
            except socket.timeout:
                continue
            except OSError:
                break
    s.close()
    print("aborted", status)


def case_error(*paths):
    s = raw_connect()
    frames = raw_frames(s, timeout=20)
    # The server's SETTINGS acknowledged first: after the error, nothing of ours is left unread
    # (a server that closes on unread octets resets the connection).
    for t, fl, sid, p in frames:
        if t == 4 and not fl & 1:
            s.sendall(frame(4, 1, 0))
            break
    enc = hpack.Encoder()
    s.sendall(b"".join(frame(1, 0x5, 1 + 2 * i, enc.encode(request_headers(p))) for i, p in enumerate(paths)))
    time.sleep(0.1)
    s.sendall(frame(6, 0, 0, b"\0" * 7))  # PING must be 8 octets: a connection error (FRAME_SIZE_ERROR)
    goaway = None
    for t, fl, sid, p in frames:
        if t == 7:
            goaway = int.from_bytes(p[4:8], "big")
    print("goaway", goaway, ENDED)


def case_tls_settings(sni, ca):
    import ssl
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=sni)
    if s.selected_alpn_protocol() != "h2":
        print("alpn", s.selected_alpn_protocol())
        return
    s.sendall(PREFACE + frame(4, 0, 0))
    names = {1: "header_table_size", 2: "enable_push", 3: "max_concurrent_streams", 4: "initial_window_size",
             5: "max_frame_size", 6: "max_header_list_size"}
    for t, fl, sid, p in raw_frames(s):
        if t == 4 and not fl & 1:
            values = [struct.unpack(">HI", p[i:i + 6]) for i in range(0, len(p), 6)]
            print(" ".join("%s=%d" % (names.get(k, str(k)), v) for k, v in sorted(values)))
            return
    print("no settings", ENDED)


cases = {"hpack-bomb": case_hpack_bomb, "bodies": case_bodies, "trailers": case_trailers, "get-trailers": case_get_trailers,
         "closed-data-flood": case_closed_data_flood, "tls-settings": case_tls_settings,
         "zero-window": case_zero_window, "many": case_many, "get": case_get, "rapid-reset": case_rapid_reset, "continuation-flood": case_continuation_flood,
         "control-flood": case_control_flood,
         "refuse": case_refuse, "reload-inflight": case_reload_inflight, "idle": case_idle, "bursts": case_bursts,
         "reuse": case_reuse, "sequence": case_sequence, "alternate": case_alternate, "cancel": case_cancel, "close": case_close, "abort-after-head": case_abort_after_head, "error": case_error,
         "reset-then-more": case_reset_then_more}
cases[sys.argv[1]](*sys.argv[3:])
