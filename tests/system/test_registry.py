# Guards issue 7, points 2, 3 and part of 5: the control plane's data-plane registry
# (GET /clustering/data-planes) with Kong's field names and values, paged like Kong's
# collections; entries purged after cluster_data_plane_purge_delay (test knob
# STRAIT_TEST_PURGE_DELAY_MS on the CP) and removed at once by a DP's goodbye; Kong's
# version rule (same major, DP minor not newer; test knob STRAIT_TEST_DP_VERSION on the
# DP), refused on both sides and listed as kong_version_incompatible; a snapshot the DP
# refuses (test knob STRAIT_TEST_DP_REJECT on the DP) listed as apply_failed with the
# DP's error while the DP keeps serving the previous configuration, until a good one.

import re
import socket
import ssl
import time

import pytest

from conftest import (ZERO_HASH, echo_once, echoes, holds_for, is_refused_connection,
                      openssl_cli, pg_bootstrap, pg_psql, scaled, wait_for)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HASH_RE = re.compile(r"^[0-9a-f]{64}$")
FIELDS = {"id", "ip", "hostname", "version", "sync_status", "sync_error", "config_hash",
          "last_seen", "updated_at", "ttl", "labels", "cert_details"}
PURGE_DEFAULT = 1209600


def cp_version(cp):
    return cp.get("/").json["version"]


def entry(cp, dp_id):
    for d in cp.data_planes():
        if d["id"] == dp_id:
            return d
    return None


def wait_entry(cp, dp_id, pred, what, timeout=20):
    def ok():
        d = entry(cp, dp_id)
        return d if d is not None and pred(d) else None

    return wait_for(ok, timeout, what)


def cert_not_after(path):
    out = openssl_cli("x509", "-noout", "-enddate", "-in", path)
    return int(ssl.cert_time_to_seconds(out.strip().split("=", 1)[1]))


def bump(version, major=0, minor=0, patch=0, suffix=""):
    a, b, c = (int(x) for x in re.match(r"^(\d+)\.(\d+)\.(\d+)", version).groups())
    return f"{a + major}.{b + minor}.{c + patch}{suffix}"


# ----------------------------------------------------------------------------- fields


def test_every_field_with_kong_names_values_and_types(st, echo, cluster_certs):
    cp = st.cp()
    dp = st.dp(cp, start=False, conf={"cluster_dp_labels": "deployment:mycloud,region:us-east-1"})
    svc = cp.service("echo", echo.port)
    cp.route(svc, name="r", destinations=[{"port": dp.port}])
    before = int(time.time())
    dp.start()
    h = dp.wait_synced()
    dp_id = dp.dp_id()
    d = wait_entry(cp, dp_id, lambda d: d["config_hash"] == h, "the DP listed with the CP's hash")
    after = int(time.time())

    assert set(d) == FIELDS, sorted(d)
    assert UUID_RE.match(d["id"]) and d["id"] == dp_id
    assert d["ip"] == "127.0.0.1"
    assert d["hostname"] == socket.gethostname()
    assert isinstance(d["version"], str) and d["version"] == cp_version(cp)
    assert re.match(r"^\d+\.\d+\.\d+", d["version"])
    assert d["sync_status"] == "normal"
    assert d["sync_error"] is None
    assert isinstance(d["config_hash"], str) and HASH_RE.match(d["config_hash"])
    assert d["config_hash"] == cp.status_hash() == dp.status_hash()
    for k in ("last_seen", "updated_at", "ttl"):
        assert isinstance(d[k], int) and not isinstance(d[k], bool), (k, d[k])
    assert before - 1 <= d["last_seen"] <= after + 1
    assert d["updated_at"] == d["last_seen"]
    # Kong: the row's TTL is cluster_data_plane_purge_delay, renewed by every request
    assert PURGE_DEFAULT - 120 <= d["ttl"] <= PURGE_DEFAULT
    assert d["labels"] == {"deployment": "mycloud", "region": "us-east-1"}
    assert d["cert_details"] == {"expiry_timestamp": cert_not_after(cluster_certs[0])}

    # the deprecated map holds the same DP
    r = cp.get("/clustering/status")
    assert r.status == 200 and r.headers.get("Deprecation") == "true"
    assert r.json[dp_id] == {"config_hash": h, "hostname": d["hostname"], "ip": "127.0.0.1",
                             "last_seen": r.json[dp_id]["last_seen"]}

    # Kong: items cannot be changed, the generated collection does not exist
    assert cp.api("DELETE", f"/clustering/data-planes/{dp_id}").status == 404
    assert cp.api("PATCH", f"/clustering/data-planes/{dp_id}", json_body={}).status == 404
    assert cp.get(f"/clustering/data-planes/{dp_id}").status == 404
    assert cp.get("/clustering_data_planes").status == 404
    assert cp.api("POST", "/clustering/data-planes", json_body={}).status == 405

    # the id is persistent (PREFIX/strait.id): a restarted DP comes back with it
    dp.stop()
    wait_for(lambda: entry(cp, dp_id) is None, 20, "the stopped DP to leave")
    dp.start()
    assert dp.dp_id() == dp_id
    wait_entry(cp, dp_id, lambda d: d["sync_status"] == "normal", "the restarted DP, same id")
    assert len(cp.data_planes()) == 1


def test_labels_empty_object_without_cluster_dp_labels(st, cluster):
    cp, dp, svc, route = cluster
    d = wait_entry(cp, dp.dp_id(), lambda d: True, "the DP listed")
    assert d["labels"] == {}


# ----------------------------------------------------------------------------- paging


def test_paging_three_dps_size_two(st, echo):
    cp = st.cp()
    dps = [st.dp(cp, wait=False) for _ in range(3)]
    ids = sorted(d.dp_id() for d in wait_for(
        lambda: dps if all(_has_id(d) for d in dps) else None, 20, "the DP ids"))
    wait_for(lambda: len(cp.data_planes()) == 3, 20, "three DPs listed")

    r = cp.get("/clustering/data-planes?size=2")
    assert r.status == 200, r
    first = r.json
    assert [d["id"] for d in first["data"]] == ids[:2]
    assert first["offset"] == ids[1]
    assert first["next"] == f"/clustering/data-planes?offset={ids[1]}&size=2"
    r = cp.get(first["next"])
    assert r.status == 200, r
    assert [d["id"] for d in r.json["data"]] == ids[2:]
    assert r.json["next"] is None and "offset" not in r.json
    # a page that ends exactly at the last entry has no next page
    r = cp.get("/clustering/data-planes?size=3")
    assert [d["id"] for d in r.json["data"]] == ids and r.json["next"] is None
    # default page size (100) holds them all, in id order
    r = cp.get("/clustering/data-planes")
    assert [d["id"] for d in r.json["data"]] == ids and r.json["next"] is None
    # an offset past the last id: an empty page
    r = cp.get(f"/clustering/data-planes?offset={ids[2]}")
    assert r.status == 200 and r.json == {"data": [], "next": None}


def _has_id(dp):
    try:
        return bool(dp.dp_id())
    except OSError:
        return False


@pytest.mark.parametrize("query,code,name,message", [
    ("size=0", 9, "invalid size", "size must be an integer between 1 and 1000"),
    ("size=1001", 9, "invalid size", "size must be an integer between 1 and 1000"),
    ("size=1.5", 9, "invalid size", "size must be an integer between 1 and 1000"),
    ("size=abc", 9, "invalid size", "size must be a number"),
    ("offset=%21%21%21", 7, "invalid offset",
     "'!!!' is not a valid offset: bad base64 encoding"),
    ("offset=abcd", 7, "invalid offset", "'abcd' is not a valid offset: bad offset"),
])
def test_paging_errors_are_kongs(st, query, code, name, message):
    cp = st.cp()
    r = cp.get(f"/clustering/data-planes?{query}")
    assert r.status == 400, r
    assert r.json == {"code": code, "name": name, "message": message}


# ----------------------------------------------------------------------------- purge, goodbye


def test_silent_dp_purged_after_the_delay_live_one_stays(st, echo):
    purge_ms = int(scaled(4) * 1000)
    cp = st.cp(conf={"cluster_heartbeat": 1}, env={"STRAIT_TEST_PURGE_DELAY_MS": str(purge_ms)})
    cp.wait_log(r"STRAIT_TEST_PURGE_DELAY_MS=%d" % purge_ms)
    live = st.dp(cp, conf={"cluster_heartbeat": 1}, wait=False)
    dead = st.dp(cp, conf={"cluster_heartbeat": 1}, wait=False)
    wait_for(lambda: len(cp.data_planes()) == 2, 20, "two DPs listed")
    d = entry(cp, dead.dp_id())
    assert 0 < d["ttl"] <= (purge_ms + 999) // 1000
    # a crash: no goodbye, so the entry stays until the delay passes
    dead.kill()
    assert entry(cp, dead.dp_id()) is not None
    wait_for(lambda: entry(cp, dead.dp_id()) is None, 30, "the silent DP to be purged")
    assert "said goodbye" not in cp.log_text()
    # the live DP renews its entry with every request (every heartbeat)
    holds_for(lambda: entry(cp, live.dp_id()) is not None, scaled(4) + 1,
              "the live DP listed")
    assert live.dp_id() in cp.get("/clustering/status").json


def test_goodbye_removes_at_once_crash_does_not(st, echo):
    cp = st.cp()
    a = st.dp(cp, wait=False)
    b = st.dp(cp, wait=False)
    wait_for(lambda: len(cp.data_planes()) == 2, 20, "two DPs listed")
    a_id, b_id = a.dp_id(), b.dp_id()
    since = cp.log_size()
    a.stop()  # SIGTERM: a clean stop says goodbye
    line = cp.wait_log(r"said goodbye", since=since)
    assert a_id in line, line
    assert entry(cp, a_id) is None
    assert a_id not in cp.get("/clustering/status").json
    # a crash says nothing: with the default purge delay the entry stays
    b.kill()
    holds_for(lambda: entry(cp, b_id) is not None, 2.0, "the crashed DP still listed")


# ----------------------------------------------------------------------------- versions


def refused_dp(st, cp, version):
    dp = st.dp(cp, env={"STRAIT_TEST_DP_VERSION": version}, wait=False)
    dp.wait_status_up()
    return dp


@pytest.mark.parametrize("how", ["major", "minor"])
def test_incompatible_dp_refused_both_sides_log_listed(st, echo, how):
    cp = st.cp()
    svc = cp.service("echo", echo.port)
    v = cp_version(cp)
    if how == "major":
        dv = bump(v, major=1)
        why = (f"data plane version {dv} is incompatible with control plane version {v} "
               f"({v.split('.')[0]}.x.y are accepted)")
    else:
        dv = bump(v, minor=1)
        why = f"data plane version {dv} is incompatible with older control plane version {v}"
    since = cp.log_size()
    dp = refused_dp(st, cp, dv)
    cp.route(svc, destinations=[{"port": dp.port}])
    dp_id = dp.dp_id()
    line = cp.wait_log(r"refused data plane", since=since)
    assert re.search(r"\[warn\]", line) and dp_id in line and why in line, line
    line = dp.wait_log(r"control plane refused this data plane")
    assert why in line, line
    d = wait_entry(cp, dp_id, lambda d: True, "the refused DP listed")
    assert d["sync_status"] == "kong_version_incompatible"
    assert d["version"] == dv
    assert d["sync_error"] == why
    assert d["config_hash"] == ZERO_HASH
    # it gets no configuration
    holds_for(lambda: not dp.is_ready(), 2.0, "refused DP not ready")
    assert dp.status_hash() == ZERO_HASH
    assert is_refused_connection(dp.port)


@pytest.mark.parametrize("how", ["patch-newer", "suffix", "minor-older"])
def test_compatible_versions_accepted(st, echo, how):
    cp = st.cp()
    v = cp_version(cp)
    major, minor, _ = (int(x) for x in v.split(".")[:3])
    if how == "patch-newer":
        dv = bump(v, patch=1000)
    elif how == "suffix":
        dv = v + "-enterprise-version"
    else:
        if minor == 0:
            pytest.fail("the CP's minor is 0: no older minor to test")  # never with 0.1.0+
        dv = f"{major}.{minor - 1}.7"
    svc = cp.service("echo", echo.port)
    dp = st.dp(cp, env={"STRAIT_TEST_DP_VERSION": dv}, start=False)
    cp.route(svc, destinations=[{"port": dp.port}])
    dp.start()
    dp.wait_synced()
    d = wait_entry(cp, dp.dp_id(), lambda d: d["version"] == dv, "the DP listed")
    assert d["sync_status"] == "normal" and d["sync_error"] is None
    assert echo_once(dp.port) == b"ping\n"


# ----------------------------------------------------------------------------- apply_failed


def test_rejected_snapshot_reported_old_config_kept_then_recovered(st, echo):
    cp = st.cp()
    marker = "strait-test-rejected-svc"
    dp = st.dp(cp, listeners=2, start=False, env={"STRAIT_TEST_DP_REJECT": marker})
    svc = cp.service("echo", echo.port)
    cp.route(svc, name="old", destinations=[{"port": dp.port}])
    dp.start()
    good = dp.wait_synced()
    dp_id = dp.dp_id()
    wait_entry(cp, dp_id, lambda d: d["sync_status"] == "normal" and d["config_hash"] == good,
               "the DP listed in sync")
    # a connection opened on the old configuration, to keep using across the refusal
    held = socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10))
    held.sendall(b"before\n")
    assert held.recv(64) == b"before\n"

    dp_since, cp_since = dp.log_size(), cp.log_size()
    bad_svc = cp.service(marker, echo.port)
    cp.route(bad_svc, name="new", destinations=[{"port": dp.listen_ports[1]}])
    bad = cp.status_hash()
    assert bad != good
    # (the service alone made a snapshot the DP refused too: wait for the last one)
    line = dp.wait_log(r"refused configuration version \d+ \(hash %s\)" % bad, since=dp_since)
    assert marker in line, line
    d = wait_entry(cp, dp_id, lambda d: d["sync_status"] == "apply_failed",
                   "the CP to list the DP as apply_failed")
    assert d["sync_error"] == f"STRAIT_TEST_DP_REJECT: the snapshot holds '{marker}'"
    assert d["config_hash"] == good
    line = cp.wait_log(r"could not apply the configuration", since=cp_since)
    assert dp_id in line and marker in line, line
    # the DP keeps serving the previous configuration, old and new connections alike
    holds_for(lambda: dp.status_hash() == good, 1.0, "DP keeping the old hash")
    assert dp.is_ready()
    held.sendall(b"during\n")
    assert held.recv(64) == b"during\n"
    assert echo_once(dp.port, b"old route\n") == b"old route\n"
    assert is_refused_connection(dp.listen_ports[1])

    # the next good snapshot (the marker gone) is applied and clears apply_failed
    cp.ok("PATCH", f"/services/{bad_svc['id']}", json_body={"name": "accepted"})
    h = dp.wait_synced(timeout=30)
    assert h not in (good, bad)
    d = wait_entry(cp, dp_id, lambda d: d["sync_status"] == "normal",
                   "apply_failed to clear")
    assert d["sync_error"] is None and d["config_hash"] == h
    wait_for(lambda: echoes(dp.listen_ports[1], b"new route\n"), 20, "the new route")
    held.sendall(b"after\n")
    assert held.recv(64) == b"after\n"
    held.close()


# ----------------------------------------------------------------------------- shared


def ids_listed(cp, size=None):
    """Every DP id cp lists, following the pages (size per page when given)."""
    ids, path = [], "/clustering/data-planes" + (f"?size={size}" if size else "")
    while path:
        r = cp.get(path)
        assert r.status == 200, r
        ids += [d["id"] for d in r.json["data"]]
        path = r.json["next"]
    return ids


def test_registry_shared_by_the_cps_of_one_database(pg, st, echo, tmp_path):
    """Two CPs on one Postgres database (Kong's clustering_data_planes): each lists the
    DPs of both, with the same fields, paged across both sources; a goodbye leaves both
    lists at once, a DP that crashed leaves both after the purge delay, a live one
    stays."""
    pg_bootstrap(pg, tmp_path)
    purge_ms = int(scaled(6) * 1000)
    env = {"STRAIT_TEST_PURGE_DELAY_MS": str(purge_ms)}
    cp1 = st.cp(conf=dict(pg, cluster_heartbeat=1), env=env)
    cp2 = st.cp(conf=dict(pg, cluster_heartbeat=1), env=env)
    a = st.dp(cp1, conf={"cluster_heartbeat": 1, "cluster_dp_labels": "site:one"}, wait=False)
    b = st.dp(cp2, conf={"cluster_heartbeat": 1}, wait=False)
    c = st.dp(cp2, conf={"cluster_heartbeat": 1}, wait=False)
    for dp in (a, b, c):
        dp.wait_status_up()  # it has written its id
    ids = sorted([a.dp_id(), b.dp_id(), c.dp_id()])
    for cp in (cp1, cp2):
        wait_for(lambda: ids_listed(cp) == ids, 20, f"{cp.name} to list the three DPs")
    assert a.status()["control_plane"] == f"127.0.0.1:{cp1.cluster_port}"
    assert b.status()["control_plane"] == f"127.0.0.1:{cp2.cluster_port}"

    # the same entry on both CPs, in Kong's shape (last_seen and ttl move)
    same = ("id", "ip", "hostname", "version", "sync_status", "sync_error", "config_hash",
            "labels", "cert_details")
    for dp in (a, b):
        e1, e2 = entry(cp1, dp.dp_id()), entry(cp2, dp.dp_id())
        assert set(e1) == FIELDS and set(e2) == FIELDS, (e1, e2)
        assert {k: e1[k] for k in same} == {k: e2[k] for k in same}, (e1, e2)
        assert 0 < e1["ttl"] <= (purge_ms + 999) // 1000
    assert entry(cp2, a.dp_id())["labels"] == {"site": "one"}
    # pages of one cross the CP's own entries and the database's
    for cp in (cp1, cp2):
        assert ids_listed(cp, size=1) == ids
        assert sorted(cp.get("/clustering/status").json) == ids
    rows = pg_psql(pg["pg_database"], "SELECT id FROM clustering_data_planes ORDER BY id")
    assert rows.split() == ids

    # a clean stop says goodbye (to CP2): gone from both lists and from the database
    since = cp2.log_size()
    b.stop()
    cp2.wait_log(r"said goodbye", since=since)
    for cp in (cp1, cp2):
        wait_for(lambda: b.dp_id() not in ids_listed(cp), 10, f"{cp.name} to drop the DP")
    # a crash says nothing: listed by both until the delay passes, then by neither
    c.kill()
    assert c.dp_id() in ids_listed(cp1)
    for cp in (cp1, cp2):
        wait_for(lambda: c.dp_id() not in ids_listed(cp), 30, f"{cp.name} to purge the DP")
    wait_for(lambda: pg_psql(pg["pg_database"], "SELECT id FROM clustering_data_planes")
             .split() == [a.dp_id()], 70, "the purge of the database's rows")
    # the live one renews its entry with every request
    holds_for(lambda: ids_listed(cp2) == [a.dp_id()], scaled(3), "the live DP listed")
