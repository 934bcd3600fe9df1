# Guards issue 2, point 5 (the data plane's TCP proxy): many parallel sessions each get
# their own bytes back; plain-to-plain bulk goes through splice (the /status counters say
# so); an open session survives a route change while new ones follow the new config;
# Kong's route priority end to end; a connection no route matches is closed and logged
# with its tuple; read_timeout closes an idle session but not a talking one; half-close is
# passed on; several stream_listen entries; a dead upstream closes the client; the copy
# path (STRAIT_TEST_NO_SPLICE=1) works and is counted in bytes_copy.

import os
import socket
import time

from conftest import (closed_without_data, echo_once, echoes, holds_for,
                      is_refused_connection, recv_exact, scaled, wait_for)


def test_200_parallel_connections(st, cluster, echo):
    cp, dp, svc, route = cluster
    n = 200
    socks = []
    try:
        for i in range(n):
            socks.append(socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10)))
        payloads = [(f"conn-{i:03d}-".encode() + os.urandom(8).hex().encode()) * 64
                    for i in range(n)]
        for s, p in zip(socks, payloads):
            s.sendall(p)
        for s, p in zip(socks, payloads):
            assert recv_exact(s, len(p), timeout=30) == p
        wait_for(lambda: dp.status()["server"]["connections_active"] >= n, 10,
                 "connections_active to count the open sessions")
    finally:
        for s in socks:
            s.close()
    assert len(echo.conns) >= n
    wait_for(lambda: dp.status()["server"]["connections_active"] == 0, 20,
             "every session to end")
    server = dp.status()["server"]
    assert server["connections_accepted"] >= n
    assert server["connections_handled"] >= n


def test_plain_to_plain_uses_splice(st, cluster):
    cp, dp, svc, route = cluster
    before = dp.status()["proxy"]
    payload = os.urandom(1 << 20)
    with socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10)) as s:
        got = bytearray()
        s.setblocking(True)
        # send and receive interleaved so neither side's buffers fill up
        step = 64 * 1024
        for off in range(0, len(payload), step):
            s.sendall(payload[off:off + step])
            got += recv_exact(s, len(payload[off:off + step]), timeout=20)
        assert bytes(got) == payload
    # Each direction starts by copying (small exchanges are cheaper that way) and turns to
    # splice at its first full 16 KiB buffer: a bulk transfer is spliced but for its head.
    head = 2 * 2 * 16384
    wait_for(lambda: dp.status()["proxy"]["bytes_splice"] - before["bytes_splice"]
             >= 2 * len(payload) - head, 20, "bytes_splice to count both directions")
    after = dp.status()["proxy"]
    moved = (after["bytes_splice"] - before["bytes_splice"]
             + after["bytes_copy"] - before["bytes_copy"])
    assert moved == 2 * len(payload), (before, after)
    assert after["bytes_copy"] - before["bytes_copy"] <= head, (before, after)
    metrics = dp.status_get("/metrics")
    assert metrics.status == 200
    assert b"bytes_splice" in metrics.raw


def test_open_session_survives_route_change(st, cluster, echo):
    cp, dp, svc, route = cluster
    old_port, new_port = dp.listen_ports
    held = socket.create_connection(("127.0.0.1", old_port), timeout=scaled(10))
    try:
        held.sendall(b"one\n")
        assert recv_exact(held, 4) == b"one\n"
        cp.ok("PATCH", f"/routes/{route['id']}", json_body={"destinations": [{"port": new_port}]})
        dp.wait_synced()
        # new connections follow the new configuration
        assert echo_once(new_port, b"new\n") == b"new\n"
        assert is_refused_connection(old_port)
        # the open session carries on, through the old route
        for i in range(3):
            msg = f"still {i}\n".encode()
            held.sendall(msg)
            assert recv_exact(held, len(msg)) == msg
        # even when its service changes too
        cp.ok("PATCH", f"/services/{svc['id']}", json_body={"port": 1})
        dp.wait_synced()
        held.sendall(b"after service change\n")
        assert recv_exact(held, 21) == b"after service change\n"
    finally:
        held.close()


def test_route_priority_end_to_end(st):
    a, b, c = st.echo("a"), st.echo("b"), st.echo("c")
    cp = st.cp()
    dp = st.dp(cp, start=False)
    sa, sb, sc = cp.service("a", a.port), cp.service("b", b.port), cp.service("c", c.port)
    # created first: destinations only (port)
    cp.route(sa, name="dst-port", destinations=[{"port": dp.port}])
    # created later, but sources + destinations ranks above
    cp.route(sb, name="src-and-dst", sources=[{"ip": "127.0.0.0/8"}],
             destinations=[{"port": dp.port}])
    dp.start()
    dp.wait_synced()
    assert echo_once(dp.port, b"who?\n") == b"who?\n"
    assert b.received() == b"who?\n" and a.received() == b""
    # without the higher route, the port-only route serves
    cp.ok("DELETE", "/routes/src-and-dst", expect=204)
    dp.wait_synced()
    assert echo_once(dp.port, b"now?\n") == b"now?\n"
    assert a.received() == b"now?\n"
    # destination ip+port (IP=8|PORT=4) ranks above port alone (PORT=4), whatever the order
    cp.route(sc, name="dst-ip-port", destinations=[{"ip": "127.0.0.1", "port": dp.port}])
    dp.wait_synced()
    assert echo_once(dp.port, b"and now?\n") == b"and now?\n"
    assert c.received() == b"and now?\n"
    assert a.received() == b"now?\n"


def test_equal_priority_tie_is_deterministic(st):
    # Kong leaves ties undefined; Strait picks the oldest route (created_at, then id).
    a, b = st.echo("a"), st.echo("b")
    cp = st.cp()
    dp = st.dp(cp, start=False)
    sa, sb = cp.service("a", a.port), cp.service("b", b.port)
    cp.route(sa, name="older", destinations=[{"port": dp.port}])
    time.sleep(1.1)  # distinct created_at (whole seconds, as Kong), not synchronisation
    cp.route(sb, name="newer", destinations=[{"port": dp.port}])
    dp.start()
    dp.wait_synced()
    for i in range(10):
        assert echo_once(dp.port, b"t\n") == b"t\n"
    assert a.received() == b"t\n" * 10 and b.received() == b""


def test_no_route_closes_and_logs_tuple(st, cluster):
    cp, dp, svc, route = cluster
    unrouted = dp.listen_ports[1]
    before = dp.status()["proxy"]["sessions_no_route"]
    since = dp.log_size()
    s = socket.create_connection(("127.0.0.1", unrouted), timeout=scaled(10))
    client_port = s.getsockname()[1]
    with s:
        try:
            s.sendall(b"anyone?\n")
        except OSError:
            pass
        assert closed_without_data(s)
    line = dp.wait_log(
        rf"no route matched: listener 127\.0\.0\.1:{unrouted}, client 127\.0\.0\.1:{client_port}, "
        rf"destination 127\.0\.0\.1:{unrouted}, sni -", since=since)
    assert "[info]" in line, line
    wait_for(lambda: dp.status()["proxy"]["sessions_no_route"] == before + 1, 10,
             "sessions_no_route to count the miss")
    # the routed listener is unaffected
    assert echo_once(dp.port) == b"ping\n"


def test_read_timeout_closes_idle_but_not_talking_session(st, cluster):
    cp, dp, svc, route = cluster
    cp.ok("PATCH", f"/services/{svc['id']}", json_body={"read_timeout": 1000})
    dp.wait_synced()
    idle = socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10))
    talker = socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10))
    try:
        t0 = time.monotonic()
        idle.settimeout(0.05)
        idle_closed_at = None
        n = 0
        # the talker sends every 300 ms for 3 s, checking the idle one in between
        while time.monotonic() - t0 < 3.0:
            msg = f"tick {n}\n".encode()
            talker.sendall(msg)
            assert recv_exact(talker, len(msg)) == msg
            n += 1
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                if idle_closed_at is None:
                    try:
                        d = idle.recv(100)
                        assert d == b"", d
                        idle_closed_at = time.monotonic() - t0
                    except ConnectionResetError:
                        idle_closed_at = time.monotonic() - t0
                    except socket.timeout:
                        pass
                else:
                    time.sleep(0.05)
        assert idle_closed_at is not None, "the idle session outlived read_timeout by 2 s"
        assert idle_closed_at >= 0.9, f"the idle session closed after {idle_closed_at:.2f}s"
        # the talker has outlived read_timeout three times over and still works
        talker.sendall(b"last\n")
        assert recv_exact(talker, 5) == b"last\n"
    finally:
        idle.close()
        talker.close()


def test_half_close_passed_on(st, cluster, echo):
    cp, dp, svc, route = cluster
    payload = os.urandom(256 * 1024)
    with socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(20)) as s:
        # send everything, then shut our write side; the echo must still come back
        s.sendall(payload[: 64 * 1024])
        assert recv_exact(s, 64 * 1024) == payload[: 64 * 1024]
        s.sendall(payload[64 * 1024:])
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
        assert bytes(got) == payload[64 * 1024:]
    # the upstream saw our FIN (not a reset or a timeout)
    wait_for(lambda: any(c["eof"] and len(c["data"]) == len(payload) for c in echo.conns), 10,
             "the upstream to see the client's half-close")


def test_several_stream_listeners(st):
    a, b = st.echo("a"), st.echo("b")
    cp = st.cp()
    dp = st.dp(cp, listeners=3, start=False)
    sa, sb = cp.service("a", a.port), cp.service("b", b.port)
    p1, p2, p3 = dp.listen_ports
    cp.route(sa, destinations=[{"port": p1}, {"port": p3}])
    cp.route(sb, destinations=[{"port": p2}])
    dp.start()
    dp.wait_synced()
    assert echo_once(p1, b"one\n") == b"one\n"
    assert echo_once(p2, b"two\n") == b"two\n"
    assert echo_once(p3, b"three\n") == b"three\n"
    assert a.received() == b"one\nthree\n"
    assert b.received() == b"two\n"


def test_dead_upstream_closes_client(st, ports):
    cp = st.cp()
    dp = st.dp(cp, start=False)
    dead = ports.get()  # nothing listens there
    svc = cp.service("dead", dead, connect_timeout=1000, retries=1)
    cp.route(svc, destinations=[{"port": dp.port}])
    dp.start()
    dp.wait_synced()
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10))
    with s:
        try:
            s.sendall(b"hello?\n")
        except OSError:
            pass
        assert closed_without_data(s, timeout=10)
    assert time.monotonic() - t0 < scaled(10)
    assert dp.alive()


def test_proxy_counters_in_status(st, cluster):
    cp, dp, svc, route = cluster
    s0 = dp.status()
    for i in range(5):
        assert echoes(dp.port)
    wait_for(lambda: dp.status()["server"]["connections_handled"]
             >= s0["server"]["connections_handled"] + 5, 10, "connections_handled to count")
    holds_for(lambda: dp.is_ready(), 0.2, "DP ready")


def test_no_splice_knob_proxies_by_copy(st, echo):
    # STRAIT_TEST_NO_SPLICE=1 (environment, never a conf key) forces the copy path: the
    # same 1 MiB echo is counted in bytes_copy, both directions, and never in bytes_splice.
    cp = st.cp()
    dp = st.dp(cp, start=False, env={"STRAIT_TEST_NO_SPLICE": "1"})
    svc = cp.service("echo", echo.port)
    cp.route(svc, name="r-copy", destinations=[{"port": dp.port}])
    dp.start()
    dp.wait_synced()
    before = dp.status()["proxy"]
    payload = os.urandom(1 << 20)
    with socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10)) as s:
        got = bytearray()
        step = 64 * 1024
        for off in range(0, len(payload), step):
            s.sendall(payload[off:off + step])
            got += recv_exact(s, len(payload[off:off + step]), timeout=20)
        assert bytes(got) == payload
    wait_for(lambda: dp.status()["proxy"]["bytes_copy"] - before["bytes_copy"]
             >= 2 * len(payload), 20, "bytes_copy to count both directions")
    after = dp.status()["proxy"]
    assert after["bytes_splice"] == before["bytes_splice"], (before, after)
    assert "proxying by copy" in dp.log_text(since_start=True)
