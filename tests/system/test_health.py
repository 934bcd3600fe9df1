# Guards issue 16, point 4: health checks on the DP. Active probes run once per DP on the
# upstream's intervals: a tcp probe marks a dead target unhealthy after
# unhealthy.tcp_failures probes (and no client connection goes to it any more) and
# healthy again after healthy.successes; an https probe is a TLS handshake (verified
# when https_verify_certificate, refused by a plain server); Strait's payload probe
# sends tcp_send and wants tcp_expect back. Passive checks count real sessions' connect
# failures: the failed client is retried transparently on another target and the dead
# one is then skipped. threshold: less healthy weight than asked is a 503; threshold 100
# with every target healthy serves (Kong never does). Loopback only.

import socket

from conftest import EchoServer, free_port, pinged, scaled, wait_for


def served(e):
    """Client connections an echo server served (probes send nothing, or PING)."""
    with e.lock:
        return sum(1 for c in e.conns if bytes(c["data"]).startswith(b"ping"))

def echo(st, port=0, name="echo"):
    e = EchoServer(name, port=port)
    st.ports.claim(e.port)
    st.echos.append(e)
    return e


def pool(st, hc, targets, retries=5, workers=2):
    """A CP with upstream hc.test (healthchecks hc) over targets [port], a service and a
    route on it, and a DP in sync. Returns (cp, dp)."""
    cp = st.cp()
    cp.ok("POST", "/upstreams", json_body={"name": "hc.test", "healthchecks": hc})
    for port in targets:
        cp.ok("POST", "/upstreams/hc.test/targets", json_body={"target": f"127.0.0.1:{port}"})
    dp = st.dp(cp, start=False, conf={"worker_processes": str(workers)})
    svc = cp.ok("POST", "/services", json_body={"name": "pool", "host": "hc.test", "port": 1,
                                                 "retries": retries, "connect_timeout": 2000})
    cp.ok("POST", "/routes", json_body={"protocols": ["tcp"], "service": {"id": svc["id"]},
                                        "destinations": [{"port": dp.port}]})
    dp.start()
    dp.wait_synced()
    return cp, dp


ACTIVE_TCP = {"active": {"type": "tcp", "timeout": 1,
                         "healthy": {"interval": 0.2, "successes": 2},
                         "unhealthy": {"interval": 0.2, "tcp_failures": 2}}}


def test_active_tcp_out_and_back(st):
    a = echo(st, name="a")
    b = echo(st, name="b")
    port_b = b.port
    cp, dp = pool(st, ACTIVE_TCP, [a.port, port_b])
    for _ in range(10):
        assert pinged(dp.port)
    assert served(a) == 5 and served(b) == 5
    # b dies: within a few probes it is out, and no client is sent to it
    b.close()
    st.echos.remove(b)
    dp.wait_log(rf"target 127\.0\.0\.1:{port_b} .* is now unhealthy \(active tcp probe",
                timeout=scaled(10))
    n = dp.log_size()
    for _ in range(10):
        assert pinged(dp.port)
    assert served(a) == 15
    assert f"upstream: 127.0.0.1:{port_b}" not in dp.log_text()[n:]
    # b comes back on its port: healthy again after healthy.successes probes
    b2 = echo(st, port=port_b, name="b2")
    dp.wait_log(rf"target 127\.0\.0\.1:{port_b} .* is now healthy", timeout=scaled(10))
    for _ in range(10):
        assert pinged(dp.port)
    assert served(b2) >= 4, served(b2)


def test_passive_failure_is_retried_then_skipped(st):
    a = echo(st, name="a")
    dead = free_port(st)
    hc = {"passive": {"unhealthy": {"tcp_failures": 1}}}
    cp, dp = pool(st, hc, [a.port, dead])
    for _ in range(4):
        assert pinged(dp.port)  # the client whose try hit the dead target was retried
    dp.wait_log(rf"target 127\.0\.0\.1:{dead} .* is now unhealthy \(passive check\)")
    n = dp.log_size()
    for _ in range(10):
        assert pinged(dp.port)
    assert "connect() failed" not in dp.log_text()[n:]
    assert served(a) == 14


def test_https_probe_is_a_handshake(st, pki):
    cert, key = pki.leaf("hc-leaf", "tls.hc.test")
    tls_up = st.tls_echo(cert, key)
    plain = echo(st, name="plain")
    hc = {"active": {"type": "https", "https_verify_certificate": False, "timeout": 1,
                     "healthy": {"interval": 0.2, "successes": 1},
                     "unhealthy": {"interval": 0.2, "tcp_failures": 2}}}
    cp, dp = pool(st, hc, [tls_up.port, plain.port])
    # a plain server fails the handshake: unhealthy; the TLS one stays healthy
    dp.wait_log(rf"target 127\.0\.0\.1:{plain.port} .* is now unhealthy \(active tls probe",
                timeout=scaled(10))
    wait_for(lambda: len(tls_up.handshakes()) >= 3, scaled(10), "TLS probes of the TLS target")
    assert f"target 127.0.0.1:{tls_up.port} " not in dp.log_text()
    # with verification, the test PKI's certificate is not trusted: unhealthy too
    uid = cp.get("/upstreams/hc.test").json["id"]
    hc["active"]["https_verify_certificate"] = True
    cp.ok("PATCH", f"/upstreams/{uid}", json_body={"healthchecks": hc})
    dp.wait_synced()
    dp.wait_log(rf"target 127\.0\.0\.1:{tls_up.port} .* is now unhealthy \(active tls probe",
                timeout=scaled(10))


def test_payload_probe(st):
    good = echo(st, name="good")  # echoes PING back
    bad = socket.socket()  # accepts, says nothing, closes
    bad.bind(("127.0.0.1", 0))
    bad.listen(16)
    st.ports.claim(bad.getsockname()[1])
    hc = {"active": {"type": "tcp", "tcp_send": "PING\r\n", "tcp_expect": "PING",
                     "timeout": 1, "healthy": {"interval": 0.2, "successes": 1},
                     "unhealthy": {"interval": 0.2, "tcp_failures": 1, "timeouts": 1}}}
    try:
        cp, dp = pool(st, hc, [good.port, bad.getsockname()[1]])
        dp.wait_log(rf"target 127\.0\.0\.1:{bad.getsockname()[1]} .* is now unhealthy "
                    r"\(active payload probe", timeout=scaled(10))
        wait_for(lambda: any(c["data"].startswith(b"PING\r\n") for c in good.conns),
                 scaled(10), "the payload probe to reach the good target")
        assert f"target 127.0.0.1:{good.port} " not in dp.log_text()
    finally:
        bad.close()


def test_threshold(st):
    a = echo(st, name="a")
    dead = free_port(st)
    hc = dict(ACTIVE_TCP, threshold=60)
    cp, dp = pool(st, hc, [a.port, dead])
    dp.wait_log(rf"target 127\.0\.0\.1:{dead} .* is now unhealthy", timeout=scaled(10))
    # half the weight is healthy, 60 % is asked: the upstream takes no connections
    n = dp.log_size()
    assert not pinged(dp.port)
    dp.wait_log("failure to get a peer from the ring-balancer", since=n)
    dp.wait_log("status 503", since=n)
    # threshold 100 with every target healthy serves (Kong: never healthy)
    uid = cp.get("/upstreams/hc.test").json["id"]
    tid = [t["id"] for t in cp.get(f"/upstreams/{uid}/targets").json["data"]
           if t["target"] == f"127.0.0.1:{dead}"][0]
    cp.ok("DELETE", f"/upstreams/{uid}/targets/{tid}", expect=204)
    cp.ok("PATCH", f"/upstreams/{uid}", json_body={"healthchecks": dict(ACTIVE_TCP,
                                                                         threshold=100)})
    dp.wait_synced()
    for _ in range(5):
        assert pinged(dp.port)


def test_status_listener_health_view(st):
    a = echo(st, name="a")
    dead = free_port(st)
    cp, dp = pool(st, ACTIVE_TCP, [a.port, dead])
    cp.ok("POST", "/upstreams/hc.test/targets", json_body={"target": "127.0.0.1:7",
                                                           "weight": 0})
    dp.wait_synced()
    dp.wait_log(rf"target 127\.0\.0\.1:{dead} .* is now unhealthy", timeout=scaled(10))
    r = dp.status_get("/upstreams/hc.test/health")
    assert r.status == 200, r
    assert r.json["node_id"] == dp.dp_id() and r.json["next"] is None
    by = {t["target"]: t for t in r.json["data"]}
    assert set(by) == {f"127.0.0.1:{a.port}", f"127.0.0.1:{dead}"}  # weight 0 not listed
    assert by[f"127.0.0.1:{a.port}"]["health"] == "HEALTHY"
    assert by[f"127.0.0.1:{dead}"]["health"] == "UNHEALTHY"
    assert by[f"127.0.0.1:{dead}"]["data"]["addresses"] == [
        {"ip": "127.0.0.1", "port": dead, "health": "UNHEALTHY", "weight": 100}]
    uid = cp.get("/upstreams/hc.test").json["id"]
    assert by[f"127.0.0.1:{a.port}"]["upstream"] == {"id": uid}
    # by id too, and Kong's balancer_health view
    assert dp.status_get(f"/upstreams/{uid}/health").json["data"] == r.json["data"]
    b = dp.status_get("/upstreams/hc.test/health?balancer_health=1").json["data"]
    assert b["id"] == uid and b["health"] == "HEALTHY" and b["balancer_health"] == "HEALTHY"
    assert b["details"] == {"healthy": True, "weight": {"total": 200, "available": 100,
                                                        "unavailable": 100}}
    assert dp.status_get("/upstreams/nope.test/health").status == 404
    assert dp.status_get("/upstreams/hc.test/nope").status == 404


def test_health_view_without_checks(st):
    a = echo(st, name="a")
    cp, dp = pool(st, {}, [a.port])
    t = dp.status_get("/upstreams/hc.test/health").json["data"]
    assert [x["health"] for x in t] == ["HEALTHCHECKS_OFF"]
    assert t[0]["data"]["addresses"][0]["health"] == "HEALTHCHECKS_OFF"
    assert dp.status_get("/upstreams/hc.test/health?balancer_health=1").json["data"][
        "health"] == "HEALTHCHECKS_OFF"
