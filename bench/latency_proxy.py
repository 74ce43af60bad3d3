"""A latency proxy: a TEST DOUBLE for a far-away registry, used by the far-away benchmark
(bench/faraway.py, `scripts/bench --far-away`).

It listens on a free 127.0.0.1 port and forwards every TCP connection to an upstream registry
byte for byte, delaying each direction by half the round-trip time (so a request and its answer
cost one RTT, and a new connection one more, like the TCP handshake to a distant host). It never
changes a byte. Beside forwarding, it reads the request heads passing from client to registry
(with their Content-Length or chunked bodies skipped) and counts them by kind: manifest GET/HEAD,
blob GET/HEAD, tags list, referrers, uploads, the /v2/ ping, other. No bandwidth limit: the
question is round trips, not throughput.
"""

import collections
import heapq
import re
import socket
import threading
import time


class LatencyProxy:
    def __init__(self, upstream, rtt_ms):
        self.upstream = upstream  # "127.0.0.1:PORT"
        self.half = rtt_ms / 2000.0
        self.counts = collections.Counter()
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self):
        with self.lock:
            self.counts = collections.Counter()
            self.connections = 0

    def snapshot(self):
        with self.lock:
            out = dict(self.counts)
            out["connections"] = self.connections
            return out

    def stop(self):
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        host, port = self.upstream.split(":")
        try:
            upstream = socket.create_connection((host, int(port)))
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The handshake with a far-away host: one round trip before the first byte moves.
        start = time.monotonic() + 2 * self.half
        parser = RequestCounter(self._count)
        threading.Thread(
            target=self._pipe, args=(client, upstream, parser, start), daemon=True
        ).start()
        self._pipe(upstream, client, None, start)

    def _count(self, kind):
        with self.lock:
            self.counts[kind] += 1

    def _pipe(self, src, dst, parser, start):
        """Copy src to dst, each chunk delivered `half` after it was read (in order)."""
        queue = []  # (due, seq, bytes or None for EOF)
        cond = threading.Condition()
        seq = [0]

        def writer():
            while True:
                with cond:
                    while not queue:
                        cond.wait()
                    due, _, data = queue[0]
                    delay = due - time.monotonic()
                    if delay > 0:
                        cond.wait(delay)
                        continue
                    heapq.heappop(queue)
                if data is None:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                try:
                    dst.sendall(data)
                except OSError:
                    return

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        while True:
            try:
                data = src.recv(256 * 1024)
            except OSError:
                data = b""
            due = max(time.monotonic() + self.half, start)
            if parser is not None and data:
                parser.feed(data)
            with cond:
                seq[0] += 1
                heapq.heappush(queue, (due, seq[0], data or None))
                cond.notify()
            if not data:
                break
        t.join()
        try:
            dst.close()
        except OSError:
            pass


BLOB = re.compile(r"^/v2/.+/blobs/sha256:[0-9a-f]{64}$")


def kind_of(method, path):
    path = path.split("?", 1)[0]
    if path == "/v2/" or path == "/v2":
        return "ping"
    if "/manifests/" in path:
        return "manifest " + method
    if path.endswith("/tags/list"):
        return "tags list"
    if "/referrers/" in path:
        return "referrers"
    if "/blobs/uploads" in path:
        return "upload " + method
    if BLOB.match(path):
        return "blob " + method
    return "other " + method


class RequestCounter:
    """Reads an HTTP/1.1 request stream passively and reports each request's kind."""

    def __init__(self, report):
        self.report = report
        self.buf = b""
        self.skip = 0  # body bytes still to pass
        self.chunked = False

    def feed(self, data):
        self.buf += data
        while True:
            if self.skip:
                n = min(self.skip, len(self.buf))
                self.buf = self.buf[n:]
                self.skip -= n
                if self.skip:
                    return
            if self.chunked:
                if not self._chunk():
                    return
                continue
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            self.buf = self.buf[end + 4:]
            parts = head[0].split(" ")
            if len(parts) >= 2:
                self.report(kind_of(parts[0], parts[1]))
            headers = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self.chunked = True
            else:
                self.skip = int(headers.get("content-length", "0") or 0)

    def _chunk(self):
        """Skip one chunk; False when more bytes are needed."""
        line_end = self.buf.find(b"\r\n")
        if line_end < 0:
            return False
        size = int(self.buf[:line_end].split(b";")[0] or b"0", 16)
        if size == 0:
            # the last chunk, then (no trailers) an empty line
            if len(self.buf) < line_end + 4:
                return False
            self.buf = self.buf[line_end + 4:]
            self.chunked = False
            return True
        if len(self.buf) < line_end + 2 + size + 2:
            return False
        self.buf = self.buf[line_end + 2 + size + 2:]
        return True
