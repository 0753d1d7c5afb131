#!/usr/bin/env python3
"""Splits a callgrind dump's instructions per request into function groups.

    python3 Tests/bench/callgrind-groups.py DUMP REQUESTS [--top N] [--callers REGEX] [--incl REGEX]

Self cost (exclusive) of every function is summed into the first group whose pattern matches
its demangled name (or its object file), so the groups add up to the total. Then inclusive
costs of the entry points listed in INCLUSIVE (a function and everything it calls), the top N
functions by self cost, and with --callers the callers of the functions matching REGEX.
Names are demangled with `swift demangle --simplified`; callgrind's recursion suffixes ('2)
are merged.
"""
import re
import subprocess
import sys
from collections import defaultdict

# (group, regex on "name [object]"): the first match wins.
GROUPS = [
    ("OpenSSL (libssl/libcrypto)", r"\[.*lib(ssl|crypto)\.so"),
    ("malloc/free (libc)", r"^(_int_malloc|_int_free|malloc|free|cfree|realloc|_int_realloc|calloc|malloc_consolidate|unlink_chunk|tcache_\w+|__libc_\w*alloc|posix_memalign|_mid_memalign|_int_memalign|aligned_alloc|__malloc_\w+|alloc_perturb|sysmalloc|systrim|arena_\w+|malloc_usable_size)\b"),
    ("memcpy/memmove/memset/memcmp (libc)", r"^__(memcpy|memmove|memset|memcmp|memchr|strlen|bcmp)\w*"),
    ("retain/release (Swift runtime)", r"^(swift_(retain|release|bridgeObjectRetain|bridgeObjectRelease|unknownObjectRetain|unknownObjectRelease|nonatomic_\w+|tryRetain)\w*|bool swift::RefCounts.*|swift::RefCounts.*|.*RefCountBits.*)"),
    ("Swift alloc/dealloc/uniqueness (runtime)", r"^(swift_(allocObject|deallocObject|deallocClassInstance|slowAlloc|slowDealloc|isUniquelyReferenced\w*|initStackObject|deallocUninitializedObject|deallocPartialClassInstance|allocBox|beginAccess|endAccess|getGenericMetadata|dynamicCast\w*|once|arrayInitWithCopy|arrayDestroy)\w*|_swift_release_dealloc|swift::\w+.*)"),
    ("epoll/syscall wrappers (libc)", r"^(epoll_\w+|__?(libc_)?(read|write|writev|readv|send|sendto|recv|recvfrom|sendmsg|recvmsg|close|accept4?|sendfile\w*|pread\w*|setsockopt|getsockopt|clock_gettime|__clock_gettime|fstat\w*|openat\w*|open\w*|mprotect|madvise|syscall|ioctl)\b|__GI_\w+|__vdso\w*|__x86_64_\w*|clock_gettime\w*|__read\w*|__write\w*|__send\w*|__recv\w*|__libc_\w+|__close\w*|_dl_\w+)"),
    ("HPACK encode", r"HPACKEncoder|HPACKLiteralCache|HPACKHuffman\.(encode|encodedLength)|HPACKStaticTable\.(nameIndex|fullIndex)|HPACKCoding\.write|H2Connection\.(beginHeaders|addHeader|addLowerHeader|endHeaders|sendHeaders)"),
    ("HPACK decode", r"HPACKDecoder|HPACKHuffman|HPACKDynamicTable|HPACKStaticTable|HPACK\w*\."),
    ("H2 request rules (H2Request -> HTTP/1.1 head, parse)", r"H2RequestRules|H2Request\b|initializeWithCopy for H2Request|destroy for H2Request|outlined .*H2Request"),
    ("H2Stream response head (frame, startResponse or responseHead scan)", r"H2Stream\.(frame|startResponse|responseHead|equalsLower|hexDigit)"),
    ("H2Stream other (read/write/sendBody/appendBody)", r"H2Stream"),
    ("H2 frames / state machine (H2Connection, H2Frame*)", r"H2Connection|H2Frame|H2StreamTable|H2Event|initializeWithCopy for H2|destroy for H2|H2\."),
    ("H2Session (drive/read/flush/wakes/streams)", r"H2Session|beginH2Request|takeH2Preface|becomeH2"),
    ("TLS glue (TLSStream, Transport)", r"TLSStream|TLSConnection|Transport\."),
    ("HTTP/1.1 head parse (HeadParser)", r"HeadParser|HeaderNameRules|RequestHead|HeadScanner"),
    ("routing/rewrite/location", r"RoutingTable|resolveRoute|Rewrite|LocationMatch|Location\b|VirtualServer|ServerNames|findServer|selectServer|\.route\(|Router|matchLocation|PrefixTree|Trie"),
    ("proxy/upstream relay", r"Proxy|Upstream|Balancer|Peer\b|Relay|relay"),
    ("static files", r"StaticFiles|FileCache|OpenFile|serveFile|staticFile|MIME|Mime"),
    ("response head build (Exchange/ResponseHead/Buffer)", r"ResponseHead|writeHead|responseHead|Buffer\.|Dates|httpDate|appendHeader|headerBlock"),
    ("ClientConnection/Exchange (state machine, init/deinit)", r"ClientConnection|Exchange|Variables|AccessLog|LimitPhase|RequestBody"),
    ("event loop / worker / timers", r"EventLoop|Worker|Timer|Pollable|Deadline|Threads|Runtime"),
    ("Swift stdlib (Array/Dictionary/String)", r"Array|Dictionary|String|Set<|_Native|_Contiguous|Sequence|Collection|Unsafe|Hasher|_hash|Substring|Character|Int\.|UInt"),
    ("other lb (Swift, compiler-generated)", r"\[.*/lb\]|^(outlined|initializeWithCopy|destroy|assignWith|initializeWithTake|merged|specialized|closure|partial apply|implicit|\$)"),
    ("other libc", r"\[.*libc\.so"),
]

# Entry points whose inclusive cost is printed (regex on the demangled name, summed over matches
# that are not nested in each other is not attempted: keep them disjoint).
INCLUSIVE = [
    ("H2Session.drive (everything on the session's wakeup)", r"^H2Session\.drive\(\)$"),
    ("  H2Session.readInput (socket/TLS read)", r"^H2Session\.readInput\(\)$"),
    ("  H2Connection.receive (frames, HPACK decode, request rules)", r"^H2Connection\.receive\("),
    ("    HPACKDecoder.decode", r"^HPACKDecoder\.decode\("),
    ("    H2RequestRules.request", r"^(static )?H2RequestRules\.request\("),
    ("  H2Session.handle (events)", r"^H2Session\.handle\("),
    ("    H2Session.startStream (H2Stream + ClientConnection init)", r"^H2Session\.startStream\("),
    ("  H2Session.runWakes", r"^H2Session\.runWakes\(\)$"),
    ("    ClientConnection.beginH2Request (head build, then the exchange)", r"^ClientConnection\.beginH2Request\("),
    ("      ClientConnection.beginRequest", r"^ClientConnection\.beginRequest\(\)$"),
    ("  H2Session.flush (socket/TLS write)", r"^H2Session\.flush\(\)$"),
    ("  H2Session.settle", r"^H2Session\.settle\(\)$"),
    ("H2Stream.write/writev (response into frames)", r"^H2Stream\.(write|writev)\("),
    ("  H2Stream.frame", r"^H2Stream\.frame\("),
    ("    H2Stream.startResponse", r"^H2Stream\.startResponse\("),
    ("      H2Connection.addHeader (HPACK encode)", r"^H2Connection\.addHeader\("),
    ("    H2Connection.sendData", r"^H2Connection\.sendData\("),
    ("ClientConnection.init (stream connection)", r"^ClientConnection\.(__allocating_)?init\("),
    ("ClientConnection deinit", r"^ClientConnection\.(__deallocating_deinit|deinit)$"),
    ("Exchange.init", r"^Exchange\.(__allocating_)?init\("),
    ("Exchange deinit", r"^Exchange\.(__deallocating_deinit|deinit)$"),
    ("H2Stream deinit", r"^H2Stream\.(__deallocating_deinit|deinit)$"),
    ("ClientConnection.close", r"^ClientConnection\.close\(\)$"),
    ("routing: ClientConnection.resolveRoute", r"^ClientConnection\.resolveRoute\("),
    ("TLSStream.read", r"^TLSStream\.read\("),
    ("TLSStream.write", r"^TLSStream\.write\("),
    ("SSL_do_handshake (TLS handshakes)", r"^SSL_do_handshake$"),
    ("SSL_read_ex", r"^SSL_read(_ex)?$"),
    ("SSL_write_ex", r"^SSL_write(_ex)?$"),
    ("SSL_free (connection ends)", r"^SSL_free$"),
    ("EventLoop.run", r"^EventLoop\.run\("),
    ("epoll_wait", r"^epoll_wait$"),
]


def parse(path):
    names = {}          # (kind, id) -> name
    self_cost = defaultdict(int)
    calls = defaultdict(int)   # (caller, callee) -> inclusive cost of the calls
    counts = defaultdict(int)  # (caller, callee) -> number of calls
    obj_of = {}
    fn = None
    ob = None
    cfn = None
    cob = None
    pending_call = False
    total = 0

    def resolve(kind, rest):
        m = re.match(r"\((\d+)\)(?: (.*))?$", rest)
        if not m:
            return rest
        key = (kind, m.group(1))
        if m.group(2) is not None:
            names[key] = m.group(2)
        return names.get(key, "?")

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if pending_call:
                    calls[(fn, cfn)] += cost
                    obj_of.setdefault(cfn, cob or ob)
                    cob = None
                    pending_call = False
                else:
                    self_cost[fn] += cost
                continue
            if line.startswith("fn="):
                fn = resolve("fn", line[3:])
                obj_of.setdefault(fn, ob)
                cob = None
            elif line.startswith("ob="):
                ob = resolve("ob", line[3:])
            elif line.startswith("cob="):
                cob = resolve("ob", line[4:])
            elif line.startswith("cfn="):
                cfn = resolve("fn", line[4:])
            elif line.startswith("calls="):
                pending_call = True
                counts[(fn, cfn)] += int(line[6:].split()[0])
            elif line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    return self_cost, calls, counts, obj_of, total


def demangle(raw):
    uniq = sorted(set(re.sub(r"'\d+$", "", n) for n in raw if n))
    out = subprocess.run(["swift", "demangle", "--simplified"], input="\n".join(uniq) + "\n",
                         capture_output=True, text=True).stdout.split("\n")
    table = dict(zip(uniq, out))
    return {n: table.get(re.sub(r"'\d+$", "", n), n) for n in raw if n}


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        print(__doc__)
        sys.exit(1)
    path, reqs = args[0], int(args[1])
    top = 40
    callers_re = None
    extra_incl = []
    i = 2
    while i < len(args):
        if args[i] == "--top":
            top = int(args[i + 1]); i += 2
        elif args[i] == "--callers":
            callers_re = args[i + 1]; i += 2
        elif args[i] == "--incl":
            extra_incl.append((args[i + 1], args[i + 1])); i += 2
        else:
            sys.exit("unknown option " + args[i])
    self_cost, calls, counts, obj_of, total = parse(path)
    dm = demangle(list(self_cost) + [b for (_, b) in calls] + [a for (a, _) in calls])
    obj_short = {k: (v or "").split("/")[-1] for k, v in obj_of.items()}

    # self cost per demangled function
    per_fn = defaultdict(int)
    fn_obj = {}
    for n, c in self_cost.items():
        d = dm.get(n, n)
        per_fn[d] += c
        fn_obj.setdefault(d, obj_short.get(n, ""))
    if not total:
        total = sum(per_fn.values())

    groups = defaultdict(int)
    group_fns = defaultdict(list)
    for d, c in per_fn.items():
        key = f"{d} [{fn_obj.get(d, '')}]"
        for g, rx in GROUPS:
            if re.search(rx, key):
                break
        else:
            g = "unclassified"
        groups[g] += c
        group_fns[g].append((c, d))

    print(f"total {total:,} Ir, {reqs} requests: {total / reqs:,.0f} Ir/request\n")
    print("## self cost by group (Ir/request, share)")
    for g, c in sorted(groups.items(), key=lambda x: -x[1]):
        tops = ", ".join(f"{n[:60]} {cc / reqs:,.0f}" for cc, n in sorted(group_fns[g], reverse=True)[:3])
        print(f"{c / reqs:9,.0f} {100 * c / total:5.1f}%  {g}   ({tops})")

    # inclusive: self + calls to other functions (recursion inside a function not counted twice)
    incl = defaultdict(int)
    for n, c in self_cost.items():
        incl[dm.get(n, n)] += c
    for (a, b), c in calls.items():
        da, db = dm.get(a, a), dm.get(b, b)
        if da != db:
            incl[da] += c
    print("\n## inclusive cost of entry points (Ir/request, share; a function and all it calls)")
    for label, rx in INCLUSIVE + extra_incl:
        c = sum(v for k, v in incl.items() if re.search(rx, k))
        if c:
            print(f"{c / reqs:9,.0f} {100 * c / total:5.1f}%  {label}")

    print(f"\n## top {top} functions by self cost (Ir/request)")
    for d, c in sorted(per_fn.items(), key=lambda x: -x[1])[:top]:
        print(f"{c / reqs:9,.0f} {100 * c / total:5.1f}%  {d[:150]} [{fn_obj.get(d, '')}]")

    if callers_re:
        print(f"\n## callers of /{callers_re}/ (Ir/request of the calls)")
        per = defaultdict(int)
        for (a, b), c in calls.items():
            da, db = dm.get(a, a), dm.get(b, b)
            if re.search(callers_re, db) and da != db:
                per[(da, db)] += c
        num = defaultdict(int)
        for (a, b), c in counts.items():
            da, db = dm.get(a, a), dm.get(b, b)
            if re.search(callers_re, db) and da != db:
                num[(da, db)] += c
        print(f"{sum(num.values()) / reqs:9,.2f} calls per request in all")
        for (da, db), c in sorted(per.items(), key=lambda x: -x[1])[:30]:
            print(f"{c / reqs:9,.0f} Ir {num[(da, db)] / reqs:6.2f} calls  {da[:110]}  ->  {db[:60]}")


if __name__ == "__main__":
    main()
