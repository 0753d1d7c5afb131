#!/usr/bin/env python3
"""Records where Debian's nginx sends requests under `hash KEY`, `hash KEY consistent` and `ip_hash`,
and writes them as Swift test data (Tests/LBCoreTests/NginxBalancerVectors.swift) for
BalancerTests, which asserts that lb's balancer picks the same peers in the same order.

    nginx-balancer-vectors.py > Tests/LBCoreTests/NginxBalancerVectors.swift

Needs `nginx` on PATH (apt-get install nginx) and root or CAP_NET_BIND_SERVICE (one backend is on
port 80, to record nginx's ring for a server written without a port). Everything is on loopback:
backends on 127.7.0.1 answer with their own address; nothing listens on 127.7.0.2, so peers there
refuse connections and nginx retries (`proxy_next_upstream error`), which records its retry order
in `$upstream_addr`. One worker process, requests one at a time in a fixed order, so the round-robin
state behind nginx's fallback (after 20 failed rehashes) is reproducible.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

FRONT = ("127.0.0.1", 19320)
LIVE = ["127.7.0.1", "127.7.0.1:19302", "127.7.0.1:19303", "127.7.0.1:19304", "127.7.0.1:19305"]
L1, L2, L3, L4, L5 = LIVE
# A second set of live names for sets that need all five plus the port-less one.
L1P = "127.7.0.1:19301"
D1, D2 = "127.7.0.2:19311", "127.7.0.2:19312"
DEAD = {D1, D2}


def srv(name, weight=1, down=False):
    # Dead peers get max_fails=0 so they stay candidates for every request (a fixed retry walk).
    return {"name": name, "weight": weight, "down": down, "maxFails": 0 if name in DEAD else 1}


HASH_KEYS = [f"/item/{i}" for i in range(20)] + [f"user{i}" for i in range(0, 300, 10)]
CLIENTS = [f"127.{a}.{b}.9" for a in range(10) for b in (0, 1, 7, 42, 200)]
# The fallback sets: live weight 3 of 43 (one of the three refusing, so retries start deep in the
# walk and continue it), so about a fifth of the keys miss 21 times and go to round-robin, and
# about 2% are found exactly at the 21st candidate (the boundary); 400 keys make those cases occur.
MANY_KEYS = [f"k{i}" for i in range(200)] + [""] + [f"k{i}" for i in range(200, 400)] + [""]
MANY_CLIENTS = [f"127.{a}.{b}.9" for a in range(20) for b in range(0, 240, 12)]

# (name, policy line, servers, keys): keys are X-Key header values, or client addresses for ip_hash.
SETS = [
    ("hashEqual", "hash $http_x_key", [srv(L1P), srv(L2), srv(L3)], HASH_KEYS),
    ("hashWeighted", "hash $http_x_key",
     [srv(L1P, 1), srv(L2, 2), srv(L3, 1), srv(L4, 3), srv(L5, 1)], HASH_KEYS),
    ("hashWeightedDown", "hash $http_x_key",
     [srv(L1P, 1), srv(L2, 2, down=True), srv(L3, 1), srv(L4, 3, down=True), srv(L5, 1)], HASH_KEYS),
    ("hashRetry", "hash $http_x_key",
     [srv(L1P), srv(D1, 2), srv(L2), srv(D2), srv(L3, 2)], HASH_KEYS),
    ("hashFallbackToRoundRobin", "hash $http_x_key",
     [srv(L1P), srv(D1), srv(L2), srv(L3, 20, down=True), srv(L4, 20, down=True)], MANY_KEYS),
    ("consistentWeighted", "hash $http_x_key consistent",
     [srv(L1, 1), srv(L2, 2), srv(L3, 1), srv(L4, 1)], HASH_KEYS),
    ("consistentDownRetry", "hash $http_x_key consistent",
     [srv(L1P), srv(L2, down=True), srv(D1), srv(L3), srv(D2), srv(L4)], HASH_KEYS),
    ("consistentFallbackToRoundRobin", "hash $http_x_key consistent",
     [srv(L1P), srv(D1), srv(L2), srv(L3, 20, down=True), srv(L4, 20, down=True)], MANY_KEYS[:-1]),
    ("ipHashWeighted", "ip_hash", [srv(L1P, 1), srv(L2, 2), srv(L3, 1), srv(L4, 3)], CLIENTS),
    ("ipHashDownRetry", "ip_hash", [srv(L1P), srv(L2, down=True), srv(D1), srv(L3), srv(D2)], CLIENTS),
    ("ipHashFallbackToRoundRobin", "ip_hash",
     [srv(L1P), srv(D1), srv(L2), srv(L3, 20, down=True), srv(L4, 20, down=True)], MANY_CLIENTS),
]


def config(d):
    lines = ["worker_processes 1;", f"error_log {d}/error.log warn;", "events {}", "http {",
             "  access_log off;",
             "  server {",
             "    listen 127.7.0.1:80; listen 127.7.0.1:19301; listen 127.7.0.1:19302; listen 127.7.0.1:19303;",
             "    listen 127.7.0.1:19304; listen 127.7.0.1:19305;",
             "    location / { return 200 \"$server_addr:$server_port\"; }",
             "  }"]
    for name, policy, servers, _ in SETS:
        lines.append(f"  upstream {name} {{ {policy};")
        for s in servers:
            extra = f" weight={s['weight']}" if s["weight"] != 1 else ""
            extra += f" max_fails={s['maxFails']}" if s["maxFails"] != 1 else ""
            extra += " down" if s["down"] else ""
            lines.append(f"    server {s['name']}{extra};")
        lines.append("  }")
    lines += ["  upstream single { server " + D1 + "; }",
              "  server {", f"    listen {FRONT[0]}:{FRONT[1]};", "    add_header X-Up $upstream_addr always;"]
    for name, _, _, _ in SETS + [("single", None, None, None)]:
        lines.append(f"    location /{name} {{ proxy_pass http://{name}; }}")
    lines += [f"    location /implicit {{ proxy_pass http://{D1}; }}", "  }", "}"]
    return "\n".join(lines) + "\n"


def request(path, key=None, source="127.0.0.1"):
    s = socket.socket()
    s.bind((source, 0))
    s.connect(FRONT)
    head = f"GET {path} HTTP/1.0\r\nHost: t\r\n" + (f"X-Key: {key}\r\n" if key else "") + "\r\n"
    s.sendall(head.encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    text = data.decode()
    status = int(text.split(" ", 2)[1])
    up = next(line.split(":", 1)[1].strip() for line in text.split("\r\n") if line.lower().startswith("x-up:"))
    return status, [a.strip() for a in up.split(",")], text.split("\r\n\r\n", 1)[1]


def address(name):
    return name if ":" in name else name + ":80"


def main():
    d = tempfile.mkdtemp(prefix="lb-vectors-")
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(config(d))
    proc = subprocess.Popen(["nginx", "-p", d, "-c", f"{d}/nginx.conf", "-g", f"daemon off; pid {d}/nginx.pid;"])
    try:
        for _ in range(500):
            try:
                socket.create_connection(FRONT, timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    sys.exit(open(f"{d}/error.log").read())
                time.sleep(0.01)
        out = []
        version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
        out.append(f"// Generated by Tests/support/nginx-balancer-vectors.py from Debian's {version.split(': ')[1]}")
        out.append("// (one worker, requests in this order, one at a time); do not edit by hand.")
        out.append("// Each vector: KEY -> the peers nginx tried, in order, by index into `servers`. KEY is the")
        out.append("// `X-Key` header (`hash $http_x_key`; empty: no header) or the client's address (`ip_hash`).")
        out.append("")
        out.append("let nginxBalancerVectors: [NginxVectorSet] = [")
        for name, policy, servers, keys in SETS:
            index = {address(s["name"]): i for i, s in enumerate(servers)}
            lines = []
            for k in keys:
                if policy == "ip_hash":
                    status, tried, body = request(f"/{name}", source=k)
                else:
                    status, tried, body = request(f"/{name}", key=k)
                assert status == 200 and body == address(tried[-1]), (name, k, status, tried, body)
                lines.append(f"{k} -> {','.join(str(index[a]) for a in tried)}")
            ss = ", ".join(f"({s['name']!r}, {s['weight']}, {str(s['down']).lower()}, {s['maxFails']})".replace("'", '"')
                           for s in servers)
            out.append(f"    NginxVectorSet(name: \"{name}\", policy: \"{policy.replace('$http_x_key', 'KEY')}\",")
            out.append(f"                   servers: [{ss}],")
            out.append("                   vectors: \"\"\"")
            out += ["                   " + line for line in lines]
            out.append("                   \"\"\"),")
        out.append("]")
        # A single peer is never taken out by max_fails: both requests try it (nginx 1.22: peers->single).
        for path in ("/single", "/implicit"):
            for _ in range(2):
                status, tried, _ = request(path)
                assert status == 502 and tried == [D1], (path, status, tried)
        out.append("")
        out.append("// Also checked by the script: a one-server upstream (and proxy_pass to an address) whose server")
        out.append(f"// refuses connections (max_fails=1) is tried on every request: 502 with $upstream_addr {D1}, never")
        out.append("// \"no live upstreams\".")
        print("\n".join(out))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
