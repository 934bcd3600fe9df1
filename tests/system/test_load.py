# Guards issue 4, "Also": correctness under load, checked by content, never by timings.
#
# 1. Bulk: BULK_MB of pseudo-random bytes each way, both directions at once, through every
#    data path: plain TCP by splice (the default), plain TCP by copy
#    (STRAIT_TEST_NO_SPLICE=1), TLS termination to a tcp service, tls_passthrough to a TLS
#    upstream, a plain client to a `tls` service, and TLS termination to a `tls` service.
#    The upstream is a sink and a source: it hashes (SHA-256) what it receives and sends a
#    known stream; the client does the same the other way round; the four digests and
#    lengths are compared, so a byte lost, doubled, reordered or flipped fails the test.
#    Each side ends its sending with a half-close (FIN, after a close_notify on TLS) while
#    still reading, so the DP must pass EOF on in each direction independently. The DP's
#    session line must report the byte counts (plaintext on terminated sides; the exact
#    wire bytes, handshake included, for passthrough), and /status the splice/copy
#    counters of the path.
# 2. Many at once: 1,000 plain and 250 TLS connections held open together
#    (worker_processes = 2): /status connections_active reaches the count and the
#    upstream holds them all; each then sends a distinct payload and gets exactly it back;
#    each closes cleanly; connections_active returns to 0, every session line carries its
#    byte counts, and the DP logged no error.
#
# Sizes: 100 MB each way on every path, sanitizer build included: measured on the 2-core
# machine, the six paths take about 8 s on a Release build and 13 s under ASan+UBSan (the
# bulk bytes go through splice or OpenSSL, neither instrumented), so nothing is shrunk.
# STRAIT_TEST_BULK_MB overrides the size (e.g. 32 on a slow machine). Deadlines only
# catch stalls: BULK_DEADLINE seconds without progress (x3 under a sanitizer).
#
# TLS endpoints of this file (clients and upstreams) drive OpenSSL through memory BIOs
# from one thread per connection, reading and writing alternately on a non-blocking
# socket (so both directions still move at once): an SSL object must not be used by two
# threads at a time, so the plain-socket scheme (one thread per direction) is not an
# option there.

import hashlib
import os
import random
import re
import resource
import selectors
import socket
import socketserver
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (read_text, recv_exact, scaled, tls_client_ctx, tls_connect,
                      tls_recv_exact, wait_for)

MB = 1000 * 1000
BULK_MB = int(os.environ.get("STRAIT_TEST_BULK_MB") or 100)
BULK = BULK_MB * MB
BULK_DEADLINE = 120  # seconds per path, scaled: a stall, not a slow run, trips it

CHUNK = 256 * 1024
BASE_LEN = 1 << 20
HIGH_WATER = 1 << 20  # TLS pump: ciphertext queued before it stops encrypting more

N_PLAIN = 1000
N_TLS = 250

SNI = "load.example.test"
ERROR_LINE = re.compile(r"\[(error|crit|alert|emerg)\]")
SESSION_RE = re.compile(r"session: client 127\.0\.0\.1:(\d+), listener 127\.0\.0\.1:(\d+), "
                        r".* status (\d+), bytes_received (\d+), bytes_sent (\d+),")


# ----------------------------------------------------------------------------- streams


def stream(seed, total):
    """`total` pseudo-random bytes, the same for the same seed, in CHUNK-sized pieces
    (slices of a seeded 1.25 MiB block at offsets that differ chunk by chunk): nothing
    ever holds the whole stream."""
    base = random.Random(seed).randbytes(BASE_LEN + CHUNK)
    i = 0
    left = total
    while left > 0:
        k = (i * 104729 + seed * 7919) % BASE_LEN
        n = min(CHUNK, left)
        yield base[k:k + n]
        left -= n
        i += 1


class Tally:
    """What one endpoint sent and received: lengths and SHA-256 digests, plus the raw
    wire bytes (TLS endpoints: ciphertext and handshake included) and how its receiving
    side ended."""

    def __init__(self):
        self.tx = hashlib.sha256()
        self.rx = hashlib.sha256()
        self.tx_len = 0
        self.rx_len = 0
        self.wire_tx = 0
        self.wire_rx = 0
        self.eof = None  # "fin", "close_notify" or "eof" (TLS: a FIN without close_notify)
        self.error = None
        self.done = False
        self.version = None

    def summary(self):
        return {"tx_len": self.tx_len, "rx_len": self.rx_len, "tx": self.tx.hexdigest(),
                "rx": self.rx.hexdigest(), "wire_tx": self.wire_tx, "wire_rx": self.wire_rx,
                "eof": self.eof, "error": self.error, "version": self.version}


def _take(tally, chunk):
    tally.tx.update(chunk)
    tally.tx_len += len(chunk)
    return chunk


# ----------------------------------------------------------------------------- plain duplex


def plain_duplex(sock, chunks, tally, timeout):
    """Sends `chunks` then half-closes (SHUT_WR) in one thread while this one hashes what
    arrives until EOF. Raises on a stall past `timeout` (scaled) or a reset."""
    sock.settimeout(scaled(timeout))
    failure = []

    def sender():
        try:
            for c in chunks:
                sock.sendall(_take(tally, c))
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            failure.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    try:
        while True:
            n = sock.recv_into(buf)
            if n == 0:
                tally.eof = "fin"
                break
            tally.rx.update(view[:n])
            tally.rx_len += n
    finally:
        wait_for(lambda: not t.is_alive(), timeout, "the sending thread to finish")
    tally.wire_tx, tally.wire_rx = tally.tx_len, tally.rx_len
    if failure:
        raise failure[0]


# ----------------------------------------------------------------------------- TLS duplex


def tls_duplex(sock, ctx, server_side, sni, chunks, tally, timeout):
    """The TLS handshake, then `chunks` sent and the peer's data hashed, both at once,
    through memory BIOs on the non-blocking socket. Once `chunks` is exhausted: a
    close_notify, then a FIN, while reading carries on until the peer's close_notify
    (or FIN). Raises on a TLS error, a reset, or no progress for `timeout` (scaled)."""
    sock.setblocking(False)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=server_side,
                       server_hostname=None if server_side else sni)
    chunks = iter(chunks)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    outbuf = bytearray()
    handshaken = tx_done = notify_sent = fin_sent = rx_done = sock_eof = False
    stall = scaled(timeout)
    last = time.monotonic()
    try:
        while not (rx_done and fin_sent):
            progress = False
            if not handshaken:
                try:
                    obj.do_handshake()
                    handshaken = True
                    tally.version = obj.version()
                    progress = True
                except ssl.SSLWantReadError:
                    pass
            if handshaken and not rx_done:
                while True:
                    try:
                        d = obj.read(CHUNK)
                    except ssl.SSLWantReadError:
                        break
                    except ssl.SSLZeroReturnError:
                        d = b""
                    except ssl.SSLEOFError:
                        rx_done, tally.eof = True, "eof"
                        break
                    if not d:
                        rx_done, tally.eof = True, "close_notify"
                        break
                    tally.rx.update(d)
                    tally.rx_len += len(d)
                    progress = True
            if handshaken and not tx_done:
                while len(outbuf) + out.pending < HIGH_WATER:
                    c = next(chunks, None)
                    if c is None:
                        tx_done = True
                        break
                    obj.write(_take(tally, c))
                    progress = True
            # close_notify only with nothing unread in the BIO: unwrap()'s second
            # SSL_shutdown would otherwise consume (and drop) the peer's records
            if tx_done and not notify_sent and inc.pending == 0:
                try:
                    obj.unwrap()
                except ssl.SSLWantReadError:
                    pass  # sent; the peer's close_notify is read by obj.read above
                notify_sent = progress = True
            if out.pending:
                outbuf += out.read()
            if outbuf:
                try:
                    n = sock.send(outbuf)
                    del outbuf[:n]
                    tally.wire_tx += n
                    progress = True
                except (BlockingIOError, InterruptedError):
                    pass
            if notify_sent and not outbuf and not out.pending and not fin_sent:
                sock.shutdown(socket.SHUT_WR)
                fin_sent = progress = True
            if not sock_eof:
                try:
                    d = sock.recv(CHUNK)
                    if d:
                        inc.write(d)
                        tally.wire_rx += len(d)
                    else:
                        inc.write_eof()
                        sock_eof = True
                    progress = True
                except (BlockingIOError, InterruptedError):
                    pass
            now = time.monotonic()
            if progress:
                last = now
                continue
            if now - last > stall:
                raise AssertionError(
                    f"TLS {'server' if server_side else 'client'} stalled {stall:.0f}s: "
                    f"handshaken {handshaken}, sent {tally.tx_len}, received {tally.rx_len}, "
                    f"close_notify sent {notify_sent}, FIN sent {fin_sent}, EOF seen {rx_done}")
            events = ((0 if sock_eof else selectors.EVENT_READ)
                      | (selectors.EVENT_WRITE if outbuf else 0))
            if events == 0:
                raise AssertionError(
                    f"TLS {'server' if server_side else 'client'}: the peer closed before "
                    f"the end: sent {tally.tx_len}, received {tally.rx_len}, "
                    f"close_notify sent {notify_sent}, EOF seen {rx_done}")
            sel.modify(sock, events)
            sel.select(min(1.0, stall - (now - last)))
    finally:
        sel.close()


# ----------------------------------------------------------------------------- upstream


class SinkSource:
    """A TCP or TLS upstream on 127.0.0.1: on every connection it sends the stream
    (seed, size) and hashes what it receives until EOF, both at once. `tallies` holds
    one Tally per connection."""

    def __init__(self, seed, size, cert=None, key=None, name="sink-source"):
        self.name = name
        self.tallies = []
        self.lock = threading.Lock()
        ctx = None
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                tally = Tally()
                with owner.lock:
                    owner.tallies.append(tally)
                try:
                    if ctx is None:
                        plain_duplex(self.request, stream(seed, size), tally, BULK_DEADLINE)
                    else:
                        tls_duplex(self.request, ctx, True, None, stream(seed, size), tally,
                                   BULK_DEADLINE)
                except (OSError, ssl.SSLError, AssertionError) as e:
                    tally.error = repr(e)
                tally.done = True

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.srv = Server(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def finished(self):
        with self.lock:
            return [t for t in self.tallies if t.done]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def sink_source(st, seed, size, cert=None, key=None):
    u = SinkSource(seed, size, cert, key)
    st.ports.claim(u.port)
    st.echos.append(u)  # closed by the harness's teardown
    return u


# ----------------------------------------------------------------------------- helpers


def add_cert(cp, cert, key, snis):
    return cp.ok("POST", "/certificates", json_body={
        "cert": read_text(cert), "key": read_text(key), "snis": list(snis)}, expect=201)


def sessions_by_port(dp, since):
    """{(client port, listener port): (status, bytes_received, bytes_sent)} from the DP's
    session lines (a client port is unique per destination only: a plain and a TLS
    connection may share one)."""
    with open(dp.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    out = {}
    for m in SESSION_RE.finditer(text):
        out[(int(m.group(1)), int(m.group(2)))] = tuple(int(g) for g in m.group(3, 4, 5))
    return out


def error_lines(dp):
    return [ln for ln in dp.log_text(since_start=True).splitlines() if ERROR_LINE.search(ln)]


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ----------------------------------------------------------------------------- 1. bulk

# path: (client speaks TLS, listener flag, route protocol, upstream speaks TLS, DP env)
PATHS = {
    "tcp-splice": (False, None, "tcp", False, None),
    "tcp-copy": (False, None, "tcp", False, {"STRAIT_TEST_NO_SPLICE": "1"}),
    "tls-terminate": (True, "ssl", "tls", False, None),
    "tls-passthrough": (True, "ssl", "tls_passthrough", True, None),
    "plain-to-tls-service": (False, None, "tcp", True, None),
    "tls-to-tls-service": (True, "ssl", "tls", True, None),
}


@pytest.mark.parametrize("path", list(PATHS))
def test_bulk_both_directions_checksummed(st, pki, path):
    client_tls, flag, route_proto, up_tls, env = PATHS[path]
    up_cert, up_key = pki.leaf("load-up", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    seed_up, seed_down = 1000 + len(path), 2000 + len(path)
    up = sink_source(st, seed_down, BULK, *((up_cert, up_key) if up_tls else ()))
    cp = st.cp()
    dp = st.dp(cp, listen_flags=[flag], env=env, start=False)
    svc_proto = "tls" if up_tls and route_proto != "tls_passthrough" else "tcp"
    svc = cp.service("bulk", up.port, protocol=svc_proto)
    if route_proto == "tcp":
        cp.route(svc, destinations=[{"port": dp.port}])
    else:
        cp.route(svc, protocols=[route_proto], snis=[SNI])
    if route_proto == "tls":
        add_cert(cp, *pki.leaf("load-term", SNI), snis=[SNI])
    dp.start()
    dp.wait_synced()
    before = dp.status()["proxy"]
    since = dp.log_size()

    client = Tally()
    sock = socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10))
    cport = sock.getsockname()[1]
    t0 = time.monotonic()
    with sock:
        if client_tls:
            tls_duplex(sock, tls_client_ctx(), False, SNI, stream(seed_up, BULK), client,
                       BULK_DEADLINE)
        else:
            plain_duplex(sock, stream(seed_up, BULK), client, BULK_DEADLINE)
    elapsed = time.monotonic() - t0
    wait_for(lambda: up.finished(), BULK_DEADLINE, "the upstream to see the end of the stream")
    assert len(up.tallies) == 1, [t.summary() for t in up.tallies]
    server = up.tallies[0]
    c, s = client.summary(), server.summary()
    assert s["error"] is None and c["error"] is None, (c, s)

    # client -> upstream
    assert s["rx_len"] == BULK and c["tx_len"] == BULK, (path, c, s)
    assert s["rx"] == c["tx"], f"{path}: client->upstream bytes corrupted"
    # upstream -> client
    assert c["rx_len"] == BULK and s["tx_len"] == BULK, (path, c, s)
    assert c["rx"] == s["tx"], f"{path}: upstream->client bytes corrupted"
    # each side saw the other's end: a FIN on plain sides; on TLS sides a close_notify
    # or a bare FIN (the DP's close_notify is best effort when the socket is full); both
    # only after every byte, as the lengths show
    assert c["eof"] in (("close_notify", "eof") if client_tls else ("fin",)), c
    assert s["eof"] in (("close_notify", "eof") if up_tls else ("fin",)), s

    # the session line: plaintext counts where the DP terminates or originates TLS; on
    # passthrough the wire bytes, exactly what the client put on and took off the wire
    status, received, sent = wait_for(lambda: sessions_by_port(dp, since).get((cport, dp.port)),
                                      20, f"the session line of client port {cport}")
    assert status == 200, (status, received, sent)
    if route_proto == "tls_passthrough":
        assert (received, sent) == (c["wire_tx"], c["wire_rx"]), (received, sent, c)
        assert (received, sent) == (s["wire_rx"], s["wire_tx"]), (received, sent, s)
    else:
        assert (received, sent) == (BULK, BULK), (received, sent)

    after = dp.status()["proxy"]
    spliced = after["bytes_splice"] - before["bytes_splice"]
    copied = after["bytes_copy"] - before["bytes_copy"]
    if path in ("tcp-splice", "tls-passthrough"):
        # each direction copies until its first full 16 KiB buffer, then splices
        assert copied <= 2 * 2 * 16384, (before, after)
        assert spliced + copied >= 2 * BULK and spliced >= 2 * BULK - copied, (before, after)
    else:
        assert copied >= 2 * BULK and spliced == 0, (before, after)
    wait_for(lambda: dp.status()["server"]["connections_active"] == 0, 20,
             "connections_active to return to 0")
    assert not error_lines(dp), error_lines(dp)
    print(f"{path}: {BULK_MB} MB each way in {elapsed:.2f}s")


# ----------------------------------------------------------------------------- 2. many


def test_thousand_concurrent_connections(st, pki, echo):
    nofile = raise_nofile()
    total = N_PLAIN + N_TLS
    # the test's sockets, the echo upstream's, and some slack for the harness
    # A machine that cannot hold them fails here, loudly: issue 4 asks for this proof.
    assert nofile >= 2 * total + 200, (
        f"RLIMIT_NOFILE hard limit {nofile} is too low for {total} connections; raise it "
        "(ulimit -Hn) to run this test")
    cp = st.cp()
    dp = st.dp(cp, listeners=2, listen_flags=[None, "ssl"], conf={"worker_processes": 2},
               start=False)
    plain_port, ssl_port = dp.listen_ports
    svc = cp.service("echo", echo.port)
    cp.route(svc, destinations=[{"port": plain_port}])
    cp.route(svc, protocols=["tls"], snis=[SNI])
    add_cert(cp, *pki.leaf("load-many", SNI), snis=[SNI])
    dp.start()
    dp.wait_synced()
    s0 = dp.status()["server"]
    assert s0["connections_active"] == 0, s0
    since = dp.log_size()

    def open_plain(_):
        return socket.create_connection(("127.0.0.1", plain_port), timeout=scaled(30))

    def open_tls(_):
        return tls_connect(ssl_port, SNI, timeout=30)

    socks = []
    try:
        with ThreadPoolExecutor(max_workers=32) as pool:
            plain = pool.map(open_plain, range(N_PLAIN))
            tls = pool.map(open_tls, range(N_TLS))
            for s in plain:
                socks.append((s, False))
            for s in tls:
                socks.append((s, True))
        assert len(socks) == total
        # all held at once: the DP counts them, and the upstream holds them all open
        wait_for(lambda: dp.status()["server"]["connections_active"] == total, 30,
                 f"connections_active to reach {total}")
        wait_for(lambda: len(echo.conns) == total, 30,
                 f"the upstream to hold {total} connections")
        assert not any(c["eof"] for c in echo.conns)

        rng = random.Random(4)
        payloads = [f"conn-{i:05d}-".encode() + rng.randbytes(rng.randrange(16, 8192))
                    for i in range(total)]
        for (s, _), p in zip(socks, payloads):
            s.sendall(p)
        for i, ((s, is_tls), p) in enumerate(zip(socks, payloads)):
            got = (tls_recv_exact if is_tls else recv_exact)(s, len(p), timeout=30)
            assert got == p, f"connection {i} (tls {is_tls}) got back other bytes"
        assert dp.status()["server"]["connections_active"] == total

        # every connection ends cleanly: half-close (a close_notify on TLS), and the DP
        # passes the upstream's end back (a FIN; a close_notify on TLS)
        ports = []
        for i, (s, is_tls) in enumerate(socks):
            ports.append((s.getsockname()[1], s.getpeername()[1]))
            if is_tls:
                s.settimeout(scaled(30))
                s.unwrap().close()  # sends ours, waits for the DP's close_notify
            else:
                s.shutdown(socket.SHUT_WR)
                s.settimeout(scaled(30))
                assert s.recv(1) == b"", f"connection {i}: data after the echo"
                s.close()
    finally:
        for s, _ in socks:
            s.close()

    wait_for(lambda: dp.status()["server"]["connections_active"] == 0, 30,
             "connections_active to return to 0")
    server = dp.status()["server"]
    assert server["connections_handled"] - s0["connections_handled"] == total, (s0, server)
    assert server["connections_accepted"] - s0["connections_accepted"] == total, (s0, server)
    # the upstream got each payload, and each client's end
    received = sorted((bytes(c["data"]) for c in echo.conns), key=lambda d: d[:11])
    assert received == sorted(payloads, key=lambda d: d[:11])
    assert all(c["eof"] for c in echo.conns)
    # every session logged, status 200, its payload's length each way
    lines = wait_for(lambda: (lambda m: m if all(p in m for p in ports) else None)(
        sessions_by_port(dp, since)), 20, "a session line for every connection")
    for p, payload in zip(ports, payloads):
        assert lines[p] == (200, len(payload), len(payload)), (p, lines[p], len(payload))
    assert not error_lines(dp), error_lines(dp)[:20]
