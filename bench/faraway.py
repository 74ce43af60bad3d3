"""The far-away-source benchmark (issue 17), run by `scripts/bench --far-away`.

A real source registry (docker-registry 2.8) with 40 small two-platform images (`bench/small-NN:v1`)
and one repository with 6 tags (`bench/multi:t0`…`t5`): 46 tags. In front of it, our latency proxy
(bench/latency_proxy.py, a test double that forwards bytes, adds half the RTT each way and counts
requests by kind). For RTT 0 and 50 ms, each tool syncs every tag into a fresh local destination
registry (the first sync) and then again (the no-op): `mirror sync` and `skopeo sync`. Then
`mirror sync --parallel-images N` for N in 1, 2, 4, 8 at 0 and 50 ms, to pick the default.

Reported per run: wall time, the round trips the distance added per tag
((wall at 50 ms - wall at 0 ms) / RTT / tags), and the source requests by kind as the proxy saw
them. One run per cell (not a median: the point is round trips, which do not vary).
"""

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.machinery import SourceFileLoader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import imagegen  # noqa: E402
from latency_proxy import LatencyProxy  # noqa: E402

bench = SourceFileLoader("bench_main", os.path.join(ROOT, "scripts", "bench")).load_module()

N_SMALL = 40
MULTI_TAGS = 6
RTTS = [0, 50]
PARALLEL = [1, 2, 4, 8]
KINDS = ["manifest GET", "manifest HEAD", "blob GET", "blob HEAD", "tags list", "referrers", "ping"]


def run(label, argv, logdir):
    t0 = time.perf_counter()
    with open(os.path.join(logdir, label + ".out"), "w") as out, open(
        os.path.join(logdir, label + ".err"), "w"
    ) as err:
        rc = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        with open(os.path.join(logdir, label + ".err")) as f:
            raise RuntimeError("%s: exit %d\n$ %s\n%s" % (label, rc, " ".join(argv), f.read()[-3000:]))
    return wall


def main(mirror, output, write=True):
    workdir = tempfile.mkdtemp(prefix="mirror-faraway-")
    logdir = os.path.join(workdir, "logs")
    os.makedirs(logdir)
    started = time.time()
    try:
        results = measure(workdir, logdir, mirror)
    finally:
        bench.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    results["machine"] = bench.machine_info()
    results["versions"] = bench.versions(mirror)
    results["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results["duration"] = time.time() - started
    results["default_parallel"] = default_parallel(mirror)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M")
    path = os.path.join(ROOT, "bench", "results", "%s-faraway.json" % stamp)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    text = render(results)
    print(text)
    if write:
        write_section(output, text)
    return 0


def measure(workdir, logdir, mirror):
    src = bench.Registry(workdir, "src")
    bench.log("generating and pushing %d + %d tags" % (N_SMALL, MULTI_TAGS))
    small = imagegen.gen_small(os.path.join(workdir, "small"), N_SMALL)
    multi = imagegen.gen_small(os.path.join(workdir, "multi"), MULTI_TAGS)

    def push(layout, tag, dest):
        subprocess.run(
            ["skopeo", "copy", "--all", "--preserve-digests", "--quiet", "--dest-tls-verify=false",
             "oci:%s:%s" % (layout, tag), "docker://%s/%s" % (src.addr, dest)],
            check=True,
        )

    jobs = [(os.path.join(workdir, "small"), t, "bench/%s:v1" % t) for t, _ in small]
    jobs += [(os.path.join(workdir, "multi"), t, "bench/multi:t%d" % i)
             for i, (t, _) in enumerate(multi)]
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda j: push(*j), jobs))
    tags = len(jobs)

    def configs(proxy, dst, name):
        m = os.path.join(workdir, "%s-mirror.yaml" % name)
        with open(m, "w") as f:
            f.write("version: 1\ndefaults:\n  all-platforms: true\nimages:\n")
            for t, _ in small:
                f.write("  - {source: docker://%s/bench/%s, destination: docker://%s/far/%s, tags: [v1]}\n"
                        % (proxy.addr, t, dst.addr, t))
            f.write("  - {source: docker://%s/bench/multi, destination: docker://%s/far/multi, tags: [%s]}\n"
                    % (proxy.addr, dst.addr, ", ".join("t%d" % i for i in range(MULTI_TAGS))))
        s = os.path.join(workdir, "%s-skopeo.yaml" % name)
        with open(s, "w") as f:
            f.write("%s:\n  tls-verify: false\n  images:\n" % proxy.addr)
            for t, _ in small:
                f.write("    bench/%s: [v1]\n" % t)
            f.write("    bench/multi: [%s]\n" % ", ".join("t%d" % i for i in range(MULTI_TAGS)))
        return m, s

    cells = []

    def cell(tool, rtt, parallel=None):
        proxy = LatencyProxy(src.addr, rtt)
        dst = bench.Registry(workdir, "dst%d" % len(cells))
        name = "%s-%dms%s" % (tool, rtt, "-p%d" % parallel if parallel else "")
        m, s = configs(proxy, dst, name)
        if tool == "mirror":
            argv = [mirror, "sync", "--config", m, "--progress", "never"]
            if parallel:
                argv += ["--parallel-images", str(parallel)]
        else:
            argv = ["skopeo", "sync", "--all", "--src", "yaml", "--dest", "docker",
                    "--dest-tls-verify=false", s, "%s/far" % dst.addr]
        out = {"tool": tool, "rtt": rtt, "parallel": parallel, "tags": tags}
        for phase in ["first", "noop"]:
            proxy.reset()
            out[phase] = {"wall": run("%s-%s" % (name, phase), argv, logdir),
                          "requests": proxy.snapshot()}
            bench.log("%s %s: %.2f s, %s" % (name, phase, out[phase]["wall"],
                                              out[phase]["requests"]))
        proxy.stop()
        dst.stop()
        cells.append(out)

    for rtt in RTTS:
        cell("mirror", rtt)
        cell("skopeo", rtt)
    for p in PARALLEL:
        for rtt in RTTS:
            cell("mirror", rtt, p)
    src.stop()
    return {"cells": cells, "tags": tags}


def default_parallel(mirror):
    """`--parallel-images`'s default, from `mirror sync --help`."""
    import re

    text = subprocess.run([mirror, "sync", "--help"], capture_output=True, text=True).stdout
    m = re.search(r"--parallel-images <N>.*?\[default: (\d+)\]", text, re.S)
    return m.group(1) if m else "unknown"


def find(cells, tool, rtt, parallel=None):
    for c in cells:
        if c["tool"] == tool and c["rtt"] == rtt and c["parallel"] == parallel:
            return c
    return None


def render(results):
    cells, tags = results["cells"], results["tags"]
    lines = [
        "<!-- far:begin (generated by scripts/bench --far-away; edit the method text in bench/faraway.py) -->",
        "### A far-away source (issue 17)",
        "",
        "%s; %s. %d tags (40 small two-platform images, one repository with 6 tags), source "
        "registry 2.8 behind `bench/latency_proxy.py` (adds half the RTT each way, counts requests), "
        "local destination registry 2.8, fresh for every row. One run per cell on a shared 2-core "
        "machine (expect some noise). The mirror rows ran at `mirror`'s default `--parallel-images`, "
        "%s." % (results["date"], results["machine"].get("cpu", ""), tags,
                 results.get("default_parallel", "4 when measured")),
        "",
        "| tool | sync | wall at 0 ms | wall at 50 ms | round trips added per tag | source requests at 50 ms (manifest GET / HEAD, blob GET / HEAD, tags list, referrers, ping, all) |",
        "|---|---|---|---|---|---|",
    ]
    for tool in ["mirror", "skopeo"]:
        near, far = find(cells, tool, 0), find(cells, tool, 50)
        for phase, label in [("first", "first"), ("noop", "no-op")]:
            added = (far[phase]["wall"] - near[phase]["wall"]) / 0.05 / tags
            r = far[phase]["requests"]
            counts = " / ".join(str(r.get(k, 0)) for k in ["manifest GET", "manifest HEAD"])
            counts += ", " + " / ".join(str(r.get(k, 0)) for k in ["blob GET", "blob HEAD"])
            counts += ", %d, %d, %d, %d" % (r.get("tags list", 0), r.get("referrers", 0),
                                           r.get("ping", 0),
                                           sum(v for k, v in r.items() if k != "connections"))
            lines.append("| %s | %s | %.2f s | %.2f s | %.1f | %s |" % (
                tool, label, near[phase]["wall"], far[phase]["wall"], added, counts))
    lines += [
        "",
        "`mirror sync --parallel-images N` (the default is chosen from this table); a wave is "
        "N tags in flight, and the round trips per wave are what 50 ms added over the same N at 0 ms:",
        "",
        "| N | first at 0 ms | first at 50 ms | no-op at 0 ms | no-op at 50 ms | waves | first: RTT per wave | no-op: RTT per wave |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in PARALLEL:
        near, far = find(cells, "mirror", 0, p), find(cells, "mirror", 50, p)
        if not near or not far:
            continue
        waves = -(-tags // p)
        f = (far["first"]["wall"] - near["first"]["wall"]) / 0.05 / waves
        n = (far["noop"]["wall"] - near["noop"]["wall"]) / 0.05 / waves
        lines.append("| %d | %.2f s | %.2f s | %.2f s | %.2f s | %d | %.1f | %.1f |" % (
            p, near["first"]["wall"], far["first"]["wall"], near["noop"]["wall"],
            far["noop"]["wall"], waves, f, n))
    lines += ["", "<!-- far:end -->"]
    return "\n".join(lines)


def write_section(path, text):
    with open(path) as f:
        doc = f.read()
    begin = doc.find("<!-- far:begin")
    end = doc.find("<!-- far:end -->")
    if begin >= 0 and end >= 0:
        doc = doc[:begin] + text + doc[end + len("<!-- far:end -->"):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    with open(path, "w") as f:
        f.write(doc)
