#!/usr/bin/env python3
"""Where a mirror or skopeo run spends its time: requests, connections, server time, CPU.

Not the benchmark (scripts/bench is): this starts the same kind of registries with their
request logging on (level info, JSON, so every request is logged with its duration), runs each
scenario once per tool (wall time, CPU from GNU time), then again under `strace -f` (connections
opened, the time from exec to the first connect and from the last request to exit), and prints,
per scenario and tool:
  - requests per registry by method and kind (ping /v2/, manifest, blob, upload, tags, referrers),
    with their status codes and the summed server-side duration,
  - TCP connections opened (connect() calls) to each registry,
  - the timeline: exec -> first connect -> last syscall -> exit.
With --perf, mirror also runs under `perf record -e cpu-clock` and the top symbols are printed.

Needs strace (and, for --perf, linux-perf: `perf record -e cpu-clock` works in VMs without
hardware counters) besides what scripts/bench needs.

Usage: python3 bench/profile.py [--mirror BIN] [--small N] [--perf] [--keep] [--only CASE,...]
Cases: full, noop, sparse, big (--big-mib, default 256), sync, syncnoop.
"""

import argparse
import collections
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.join(ROOT, "bench"))
import imagegen  # noqa: E402

_loader = importlib.machinery.SourceFileLoader("bench_script", os.path.join(ROOT, "scripts", "bench"))
_spec = importlib.util.spec_from_loader("bench_script", _loader)
B = importlib.util.module_from_spec(_spec)
_loader.exec_module(B)


def kind_of(uri):
    path = uri.split("?", 1)[0]
    if path in ("/v2/", "/v2"):
        return "ping /v2/"
    if "/blobs/uploads" in path:
        return "upload" + (" (mount)" if "mount=" in uri else "")
    if "/blobs/" in path:
        return "blob"
    if "/manifests/" in path:
        ref = path.rsplit("/", 1)[1]
        return "manifest by digest" if ref.startswith("sha256:") else "manifest by tag"
    if path.endswith("/tags/list"):
        return "tags/list"
    if "/referrers/" in path:
        return "referrers"
    return "other"


class LogCursor:
    """The registry's JSON log lines written since the last call."""

    def __init__(self, reg):
        self.path = reg.logfile
        self.pos = os.path.getsize(self.path)

    def take(self):
        with open(self.path) as f:
            f.seek(self.pos)
            text = f.read()
            self.pos = f.tell()
        reqs = []
        access = []  # the access log has every request, also those the router answers itself
        seen = set()  # a request with several errors is logged once per error
        for line in text.splitlines():
            m = ACCESS_RE.match(line)
            if m:
                access.append({"method": m.group(1), "uri": m.group(2), "status": int(m.group(3)),
                               "ua": m.group(4)})
                continue
            if not line.startswith("{"):
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if "http.request.method" not in e or "http.response.duration" not in e:
                continue
            if not str(e.get("msg", "")).startswith("response completed"):
                continue
            rid = e.get("http.request.id")
            if rid in seen:
                continue
            seen.add(rid)
            reqs.append({
                "method": e["http.request.method"],
                "uri": e["http.request.uri"],
                "status": e.get("http.response.status", 0),
                "dur": parse_dur(e["http.response.duration"]),
                "ua": e.get("http.request.useragent", ""),
                "peer": e.get("http.request.remoteaddr", ""),
            })
        return reqs, access


ACCESS_RE = re.compile(r'^\S+ - \S+ \[[^\]]*\] "(\S+) (\S+) HTTP/[0-9.]+" (\d+) \S+ "[^"]*" "([^"]*)"')


def parse_dur(s):
    # Go durations: "1.234ms", "12.3µs", "1.2s", "1m2.3s"
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)(ns|µs|us|ms|s|m|h)", s):
        total += float(num) * {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1,
                               "m": 60, "h": 3600}[unit]
    return total


def summarize_requests(reqs, access):
    """Counts and statuses from the access log, server time from the JSON log."""
    by = collections.OrderedDict()
    for r in access:
        k = (r["method"], kind_of(r["uri"]))
        e = by.setdefault(k, {"n": 0, "dur": 0.0, "status": collections.Counter()})
        e["n"] += 1
        e["status"][r["status"]] += 1
    for r in reqs:
        k = (r["method"], kind_of(r["uri"]))
        e = by.setdefault(k, {"n": 0, "dur": 0.0, "status": collections.Counter()})
        e["dur"] += r["dur"]
    return by


def strace_run(argv, out_prefix, ports):
    """Run under strace -f; count connect()s per port, and the timeline."""
    trace = out_prefix + ".strace"
    t0 = time.time()
    subprocess.run(["strace", "-f", "-ttt", "-qq", "-e", "trace=connect,execve,exit_group",
                    "-o", trace] + argv,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.time() - t0
    connects = collections.Counter()
    first_exec = first_connect = last = None
    for line in open(trace):
        m = re.match(r"\d+\s+([0-9.]+)\s+(\w+)\((.*)", line)
        if not m:
            continue
        ts, call, rest = float(m.group(1)), m.group(2), m.group(3)
        if call == "execve" and first_exec is None:
            first_exec = ts
        if call == "connect":
            pm = re.search(r"sin_port=htons\((\d+)\)", rest)
            if pm and int(pm.group(1)) in ports:
                connects[ports[int(pm.group(1))]] += 1
                if first_connect is None:
                    first_connect = ts
        last = ts
    return {
        "wall_strace": wall,
        "connects": dict(connects),
        "exec_to_first_connect": (first_connect - first_exec) if first_connect and first_exec
        else None,
        "exec_to_exit": (last - first_exec) if last and first_exec else None,
    }


def perf_top(argv, out_prefix, n=25, children=False):
    """Top symbols by self time; with `children` (needs a binary with debug info, e.g.
    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only), by inclusive time over DWARF call graphs."""
    data = out_prefix + ".perf"
    graph = ["--call-graph", "dwarf,16384"] if children else ["-g"]
    subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2999"] + graph
                   + ["-o", data, "--"] + argv,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio",
                          "--children" if children else "--no-children",
                          "--sort", "symbol" if children else "dso,symbol", "-g", "none",
                          "--percent-limit", "2" if children else "1"],
                         capture_output=True, text=True).stdout
    lines = [re.sub(r"\s+-\s+-\s*$", "", ln.rstrip()) for ln in rep.splitlines()
             if ln.strip() and not ln.startswith("#")]
    return lines[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mirror", default=os.path.join(ROOT, "target", "release", "mirror"))
    ap.add_argument("--small", type=int, default=50)
    ap.add_argument("--big-mib", type=int, default=256)
    ap.add_argument("--perf", action="store_true", help="perf record mirror (self time)")
    ap.add_argument("--perf-children", action="store_true",
                    help="perf record mirror with DWARF call graphs (inclusive time)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--only", default="full,noop,sparse,sync,syncnoop")
    ap.add_argument("--mirror-args", default="", help="extra arguments for every mirror copy")
    args = ap.parse_args()
    cases = args.only.split(",")
    mirror = os.path.abspath(args.mirror)
    workdir = tempfile.mkdtemp(prefix="mirror-profile-")
    try:
        run_all(workdir, mirror, cases, args)
    finally:
        B.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print("kept " + workdir, file=sys.stderr)


def run_all(workdir, mirror, cases, args):
    src = B.Registry(workdir, "src", accesslog=True)
    S = src.addr
    multi = imagegen.gen_multi(os.path.join(workdir, "multi"))
    small = imagegen.gen_small(os.path.join(workdir, "small"), args.small)

    def push(layout_tag, dest):
        subprocess.run(["skopeo", "copy", "--all", "--preserve-digests", "--quiet",
                        "--dest-tls-verify=false", "oci:" + layout_tag,
                        "docker://%s/%s" % (S, dest)], check=True)

    push(os.path.join(workdir, "multi") + ":multi", "bench/multi:v1")
    for tag, _ in small:
        push(os.path.join(workdir, "small") + ":" + tag, "bench/%s:v1" % tag)
    if "big" in cases:
        imagegen.gen_big(os.path.join(workdir, "big"), args.big_mib)
        push(os.path.join(workdir, "big") + ":big", "bench/big:v1")
    dst = {t: B.Registry(workdir, "dst-" + t, accesslog=True) for t in ["mirror", "skopeo"]}
    ports = {int(S.split(":")[1]): "src"}
    for t, r in dst.items():
        ports[int(r.addr.split(":")[1])] = "dst"
    extra = args.mirror_args.split()
    tls = ["--src-tls-verify=false", "--dest-tls-verify=false"]
    seq = [0]

    def cfg(tool, D, prefix):
        path = os.path.join(workdir, "sync-%s-%s.yaml" % (tool, prefix))
        with open(path, "w") as f:
            if tool == "mirror":
                f.write("version: 1\ndefaults:\n  all-platforms: true\nimages:\n")
                for tag, _ in small:
                    f.write("  - source: docker://%s/bench/%s\n    destination: docker://%s/%s/%s\n"
                            "    tags: [\"v1\"]\n" % (S, tag, D, prefix, tag))
            else:
                f.write("%s:\n  tls-verify: false\n  images:\n" % S)
                for tag, _ in small:
                    f.write("    bench/%s: [\"v1\"]\n" % tag)
        return path

    def argv(tool, case, repo):
        D = dst[tool].addr
        m = "docker://%s/bench/multi:v1" % S
        if case in ("sync", "syncnoop"):
            if tool == "mirror":
                return [mirror, "sync", "--config", cfg("mirror", D, repo)]
            return ["skopeo", "sync", "--all", "--src", "yaml", "--dest", "docker",
                    "--dest-tls-verify=false", cfg("skopeo", D, repo), "%s/%s" % (D, repo)]
        if tool == "mirror":
            return {
                "full": [mirror, "copy", "--all-platforms"] + extra + [m, "docker://%s/%s:v1" % (D, repo)],
                "noop": [mirror, "copy", "--all-platforms"] + extra + [m, "docker://%s/%s:v1" % (D, repo)],
                "sparse": [mirror, "copy", "--platform", B.SPARSE] + extra
                + [m, "docker://%s/%s:v1" % (D, repo)],
                "big": [mirror, "copy"] + extra + ["docker://%s/bench/big:v1" % S,
                                                   "docker://%s/%s:v1" % (D, repo)],
            }[case]
        return {
            "full": ["skopeo", "copy", "--all"] + tls + [m, "docker://%s/%s:v1" % (D, repo)],
            "noop": ["skopeo", "copy", "--all"] + tls + [m, "docker://%s/%s:v1" % (D, repo)],
            "big": ["skopeo", "copy"] + tls + ["docker://%s/bench/big:v1" % S,
                                               "docker://%s/%s:v1" % (D, repo)],
        }.get(case)

    def measure(tool, case, repo, expect=(0, 3)):
        a = argv(tool, case, repo)
        if a is None:
            return
        seq[0] += 1
        prefix = os.path.join(workdir, "%02d-%s-%s" % (seq[0], tool, case))
        cur = {"src": LogCursor(src), "dst": LogCursor(dst[tool])}
        runner = B.Runner(workdir, lambda: [src, dst[tool]])
        res = runner.run("%s-%s" % (tool, case), a, expect=expect)
        time.sleep(0.3)  # let the registries flush their logs
        reqs = {k: c.take() for k, c in cur.items()}
        print("\n=== %s %s: wall %.3f s, tool CPU %.3f s, peak RSS %.1f MiB, registry CPU src %.3f "
              "dst %.3f, other %.3f" % (tool, case, res["wall"], res["cpu"], res["rss_mib"],
                                        res["reg_cpu"].get("src", 0), res["reg_cpu"].get("dst", 0),
                                        res["other_cpu"]))
        print("    $ " + " ".join(a).replace(mirror, "mirror"))
        for reg in ["src", "dst"]:
            s = summarize_requests(*reqs[reg])
            total = sum(e["n"] for e in s.values())
            dur = sum(e["dur"] for e in s.values())
            conns = len({r["peer"] for r in reqs[reg][0]})
            print("    %s: %d requests (on %d client ports seen), server time %.3f s"
                  % (reg, total, conns, dur))
            for (method, kind), e in s.items():
                st = ", ".join("%s×%d" % (k, v) for k, v in sorted(e["status"].items()))
                print("      %-5s %-20s %4d  %8.3f s  [%s]" % (method, kind, e["n"], e["dur"], st))
        return prefix, a

    def traced(tool, case, repo, pre=None):
        # a second, identical situation under strace (its own fresh repository for copies)
        if pre:
            subprocess.run(argv(tool, pre, repo), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        a = argv(tool, case, repo)
        if a is None:
            return
        seq[0] += 1
        st = strace_run(a, os.path.join(workdir, "%02d-%s-%s" % (seq[0], tool, case)), ports)
        print("    strace (%s %s, separate run): connections %s; exec→first connect %.3f s; "
              "exec→exit %.3f s (wall under strace %.3f s)" % (
                  tool, case, st["connects"], st["exec_to_first_connect"] or -1,
                  st["exec_to_exit"] or -1, st["wall_strace"]))
        if (args.perf or args.perf_children) and tool == "mirror":
            first = pre or {"noop": "full", "syncnoop": "sync"}.get(case)
            if first:  # a no-op needs its destination filled first
                subprocess.run(argv(tool, first, repo + "p"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            a = argv(tool, case, repo + "p")
            for ln in perf_top(a, os.path.join(workdir, "%02d-perf" % seq[0]), n=40,
                               children=args.perf_children):
                print("      perf: " + ln)

    for tool in ["mirror", "skopeo"]:
        if "full" in cases or "noop" in cases:
            measure(tool, "full", "prof/full")
            traced(tool, "full", "prof/full-st")
        if "noop" in cases:
            measure(tool, "noop", "prof/full")
            traced(tool, "noop", "prof/full")
        if "sparse" in cases and tool == "mirror":
            measure(tool, "sparse", "prof/sparse")
            traced(tool, "sparse", "prof/sparse-st")
        if "big" in cases:
            measure(tool, "big", "prof/big")
        if "sync" in cases or "syncnoop" in cases:
            measure(tool, "sync", "sync1")
            traced(tool, "sync", "sync1-st")
        if "syncnoop" in cases:
            measure(tool, "syncnoop", "sync1")
            traced(tool, "syncnoop", "sync1")


if __name__ == "__main__":
    main()
