# Guards issue 16, point 5: health visible across the fleet. Each DP reports the health
# of its checked upstreams with its sync requests, and at once when a peer's health
# changes (not at its long poll's end: with cluster_heartbeat = 60 the CP shows the change
# within 5 s). The CP's GET /upstreams/{u}/health keeps Kong's fields and adds, per target
# and address, data_planes: {healthy, unhealthy, unchecked}; ?data_plane={id} is one DP's
# view. Two DPs where only one has seen a target fail (passive checks, traffic through
# one DP) disagree, and the CP shows both. On Postgres, a CP counts the DPs of every CP of
# the database. /clustering/data-planes stays Kong's shape.

from conftest import EchoServer, free_port, pg_bootstrap, pinged, scaled, wait_for

HC = {"passive": {"unhealthy": {"tcp_failures": 1}}}


def make_pool(st, cps):
    """Upstream fleet.test (passive checks) over a live echo and a dead port, a service
    and a route on it; one DP per CP of cps (cluster_heartbeat 60). Returns (echo port,
    dead port, dps)."""
    e = EchoServer("live")
    st.ports.claim(e.port)
    st.echos.append(e)
    dead = free_port(st)
    cp = cps[0]
    cp.ok("POST", "/upstreams", json_body={"name": "fleet.test", "healthchecks": HC})
    for port in (e.port, dead):
        cp.ok("POST", "/upstreams/fleet.test/targets", json_body={"target": f"127.0.0.1:{port}"})
    dps = [st.dp(c, start=False, conf={"cluster_heartbeat": 60}) for c in cps]
    svc = cp.ok("POST", "/services", json_body={"name": "pool", "host": "fleet.test", "port": 1})
    cp.ok("POST", "/routes", json_body={"protocols": ["tcp"], "service": {"id": svc["id"]},
                                        "destinations": [{"port": d.port} for d in dps]})
    for d in dps:
        d.start()
    for d in dps:
        d.wait_hash(cps[0].status_hash())
    return e.port, dead, dps


def health(cp, query=""):
    r = cp.get("/upstreams/fleet.test/health" + query)
    assert r.status == 200, r
    return {t["target"]: t for t in r.json["data"]}


def test_fleet_view_two_dps_disagree(st):
    cp = st.cp(conf={"cluster_heartbeat": 60})
    live, dead, (d1, d2) = make_pool(st, [cp, cp])
    tl, td = f"127.0.0.1:{live}", f"127.0.0.1:{dead}"
    # both DPs report, nothing failed yet: healthy on both
    wait_for(lambda: health(cp)[td]["data_planes"] == {"healthy": 2, "unhealthy": 0,
                                                      "unchecked": 0},
             scaled(10), "both DPs to report")
    # traffic through d1 only: d1 finds the dead target, d2 does not
    for _ in range(4):
        assert pinged(d1.port)
    d1.wait_log(r"is now unhealthy \(passive check\)")
    wait_for(lambda: health(cp)[td]["data_planes"] == {"healthy": 1, "unhealthy": 1,
                                                      "unchecked": 0},
             5 * float(__import__("os").environ.get("STRAIT_TEST_TIMEOUT_MULT", "1")),
             "the CP to show d1's news within 5 s (cluster_heartbeat is 60)")
    h = health(cp)
    assert h[td]["health"] == "HEALTHY"  # some DP still serves it
    assert h[tl]["data_planes"] == {"healthy": 2, "unhealthy": 0, "unchecked": 0}
    assert h[td]["data"]["addresses"] == [{
        "ip": "127.0.0.1", "port": dead, "health": "HEALTHY",
        "data_planes": {"healthy": 1, "unhealthy": 1, "unchecked": 0}}]
    uid = cp.get("/upstreams/fleet.test").json["id"]
    assert h[td]["upstream"] == {"id": uid} and h[td]["weight"] == 100
    assert isinstance(h[td]["created_at"], int) and "updated_at" in h[td]
    # one DP's view
    one = health(cp, f"?data_plane={d1.dp_id()}")
    assert one[td]["health"] == "UNHEALTHY"
    assert one[td]["data_planes"] == {"healthy": 0, "unhealthy": 1, "unchecked": 0}
    two = health(cp, f"?data_plane={d2.dp_id()}")
    assert two[td]["health"] == "HEALTHY"
    assert cp.get("/upstreams/fleet.test/health?data_plane=nope").status == 404
    assert cp.get("/upstreams/nope.test/health").status == 404
    # Kong's /clustering/data-planes shape is untouched
    for e in cp.get("/clustering/data-planes").json["data"]:
        assert "upstream_health" not in e


def test_upstream_without_checks_is_unchecked(st):
    cp = st.cp()
    e = EchoServer("e")
    st.ports.claim(e.port)
    st.echos.append(e)
    cp.ok("POST", "/upstreams", json_body={"name": "fleet.test"})
    cp.ok("POST", "/upstreams/fleet.test/targets", json_body={"target": f"127.0.0.1:{e.port}"})
    dp = st.dp(cp)
    dp.wait_synced()
    h = health(cp)
    t = h[f"127.0.0.1:{e.port}"]
    assert t["health"] == "HEALTHCHECKS_OFF"
    assert t["data_planes"] == {"healthy": 0, "unhealthy": 0, "unchecked": 1}


def test_fleet_view_across_cps_on_postgres(pg, st, tmp_path):
    pg_bootstrap(pg, tmp_path)
    cp1 = st.cp(conf=dict(pg, cluster_heartbeat=60))
    cp2 = st.cp(conf=dict(pg, cluster_heartbeat=60))
    live, dead, (d1, d2) = make_pool(st, [cp1, cp2])
    td = f"127.0.0.1:{dead}"
    for _ in range(4):
        assert pinged(d2.port)  # d2, on cp2, finds the dead target
    d2.wait_log(r"is now unhealthy \(passive check\)")
    # cp1 counts cp2's DP too (the shared registry)
    wait_for(lambda: health(cp1)[td]["data_planes"] == {"healthy": 1, "unhealthy": 1,
                                                       "unchecked": 0},
             scaled(15), "cp1 to show the DPs of both CPs")
    assert health(cp1, f"?data_plane={d2.dp_id()}")[td]["health"] == "UNHEALTHY"
