#!/usr/bin/env python3
"""Calls to allocation functions per request, by caller chain, from a callgrind dump made with
caller separation, e.g.
    CALLGRIND_OPTS=--separate-callers=6 OUT=/tmp/allocs REQS=20000 CONNS=64 PROTOS=h2c CASES=ret \
        bash Tests/bench/h2-instructions.sh LB_BINARY
    python3 Tests/bench/callgrind-allocs.py /tmp/allocs/measured.1.h2c.ret 20000
usage: callgrind-allocs.py DUMP REQUESTS [FNREGEX] [DEPTH]"""
import re, sys, subprocess
from collections import defaultdict
dump, reqs = sys.argv[1], int(sys.argv[2])
fnre = re.compile(sys.argv[3] if len(sys.argv) > 3 else r"^(swift_allocObject|malloc|swift_slowAlloc)'")
depth = int(sys.argv[4]) if len(sys.argv) > 4 else 6
names = {}
counts = defaultdict(int)
cur_cfn = None
def name(spec):
    m = re.match(r"\((\d+)\)(?: (.*))?", spec)
    if not m: return spec
    if m.group(2) is not None: names[m.group(1)] = m.group(2)
    return names.get(m.group(1), spec)
for line in open(dump, errors="replace"):
    if line.startswith("fn=") : name(line[3:].strip()); cur_cfn=None
    elif line.startswith("cfn="): cur_cfn = name(line[4:].strip())
    elif line.startswith("calls=") and cur_cfn is not None:
        if fnre.search(cur_cfn): counts[cur_cfn] += int(line.split()[0][6:])
        cur_cfn = None
allnames = list(counts)
# demangle each component
comps = sorted({c for n in allnames for c in n.split("'")})
dem = subprocess.run(["swift", "demangle", "--simplified"], input="\n".join(comps), capture_output=True, text=True).stdout.split("\n")
dm = dict(zip(comps, dem))
def short(s):
    s = re.sub(r"\(.*?\)", "()", s) if len(s) > 80 else s
    return s[:90]
rows = sorted(counts.items(), key=lambda kv: -kv[1])
tot = defaultdict(float)
for n, c in rows:
    parts = n.split("'")
    tot[parts[0]] += c / reqs
for k, v in tot.items(): print(f"TOTAL {k}: {v:.2f}/request")
for n, c in rows:
    if c / reqs < 0.02: continue
    parts = n.split("'")
    print(f"{c/reqs:6.2f}  {parts[0]}  <- " + " <- ".join(short(dm.get(p, p)) for p in parts[1:depth+1]))
