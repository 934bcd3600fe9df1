# Guards issue 2, points 4 and 5 (snapshot and sync): a change on the control plane
# reaches the data plane; the DP's configuration_hash equals the CP's; the DP keeps serving
# when the CP dies and serves from PREFIX/config.cache when restarted without it; a corrupt
# cache and a snapshot whose bytes do not match its hash are both refused; the CP lists its
# data planes with Kong's field names; a DP with a foreign cluster certificate gets nothing;
# `cluster_mtls = off` works and warns.

import os
import re
import socket
import time

import pytest

from conftest import (ZERO_HASH, echo_once, echoes, holds_for, is_refused_connection,
                      recv_exact, wait_for)


def test_change_on_cp_reaches_dp(st, cluster, echo):
    cp, dp, svc, route = cluster
    assert echo_once(dp.port, b"first\n") == b"first\n"
    # the second listener has no route yet
    assert is_refused_connection(dp.listen_ports[1])
    h_before = dp.status_hash()
    cp.route(svc, name="second", destinations=[{"port": dp.listen_ports[1]}])
    wait_for(lambda: echoes(dp.listen_ports[1], b"second\n"), 20,
             "the new route to work on the DP")
    h_after = dp.wait_synced()
    assert h_after != h_before
    # a delete reaches it too
    cp.ok("DELETE", "/routes/second", expect=204)
    wait_for(lambda: is_refused_connection(dp.listen_ports[1]), 20,
             "the deleted route to stop matching")
    assert echo_once(dp.port) == b"ping\n"


def test_dp_hash_equals_cp_hash(st, cluster):
    cp, dp, svc, route = cluster
    st_cp, st_dp = cp.get("/status").json, dp.status()
    assert re.fullmatch(r"[0-9a-f]{64}", st_dp["configuration_hash"])
    assert st_dp["configuration_hash"] != ZERO_HASH
    assert st_dp["configuration_hash"] == st_cp["configuration_hash"]
    assert st_dp["config_version"] == st_cp["config_version"]
    assert st_dp["ready"] is True
    assert isinstance(st_dp["last_sync"], int) and abs(st_dp["last_sync"] - time.time()) < 120
    assert st_dp["control_plane"] == f"127.0.0.1:{cp.cluster_port}"
    for i in range(3):
        cp.ok("PATCH", f"/services/{svc['id']}", json_body={"read_timeout": 5000 + i})
        h = dp.wait_synced()
        assert h == cp.status_hash()
    # going back to an earlier configuration gives the earlier hash on both sides
    cp.ok("PATCH", f"/services/{svc['id']}", json_body={"read_timeout": 5000})
    h1 = dp.wait_synced()
    cp.ok("PATCH", f"/services/{svc['id']}", json_body={"read_timeout": 5001})
    dp.wait_synced()
    cp.ok("PATCH", f"/services/{svc['id']}", json_body={"read_timeout": 5000})
    assert dp.wait_synced() == h1


def test_dp_not_ready_before_first_config(st):
    cp = st.cp()
    cp.kill()  # no control plane at all
    dp = st.dp(cp, wait=False)
    dp.wait_status_up()
    r = dp.status_get("/status/ready")
    assert r.status == 503, r
    assert r.json == {"message": "no configuration available"}
    s = dp.status()
    assert s["ready"] is False and s["configuration_hash"] == ZERO_HASH
    assert s["last_sync"] is None
    assert s["control_plane"] is None


def test_cp_killed_dp_keeps_serving(st, cluster):
    cp, dp, svc, route = cluster
    h = dp.status_hash()
    held = socket.create_connection(("127.0.0.1", dp.port))
    held.sendall(b"before\n")
    assert recv_exact(held, 7) == b"before\n"
    cp.kill()
    # new and established sessions both carry on
    for i in range(5):
        assert echo_once(dp.port, f"after {i}\n".encode()) == f"after {i}\n".encode()
    held.sendall(b"still\n")
    assert recv_exact(held, 6) == b"still\n"
    held.close()
    assert dp.is_ready()
    assert dp.status_hash() == h


def test_dp_restarted_while_cp_down_serves_from_cache(st, cluster):
    cp, dp, svc, route = cluster
    h = dp.status_hash()
    dp_id = dp.dp_id()
    cache = os.path.join(dp.prefix, "config.cache")
    # the DP serves a configuration first and writes it to its cache just after
    wait_for(lambda: os.path.exists(cache) and os.path.getsize(cache) > 0, 10,
             "the DP to write config.cache")
    cp.stop()
    dp.stop()
    dp.start()  # waits for /status/ready with the CP down
    assert dp.status_hash() == h
    assert echo_once(dp.port, b"from cache\n") == b"from cache\n"
    assert dp.dp_id() == dp_id  # the id is made once
    # when the CP comes back, the DP stays in sync with it
    cp.start()
    cp.ok("PATCH", f"/services/{svc['id']}", json_body={"read_timeout": 4321})
    assert dp.wait_synced(timeout=60) != h


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_cache_refused_at_start(st, cluster, damage):
    cp, dp, svc, route = cluster
    cache = os.path.join(dp.prefix, "config.cache")
    cp.stop()
    dp.stop()
    data = open(cache, "rb").read()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytes(b ^ 0x5A for b in data)
    else:
        data = b""
    with open(cache, "wb") as f:
        f.write(data)
    since = dp.log_size()
    dp.start(wait=False)
    dp.wait_status_up()
    dp.wait_log(r"config\.cache: refused", since=since)
    assert not dp.is_ready()
    holds_for(lambda: not dp.is_ready() and dp.status_hash() == ZERO_HASH, 1.0,
              "DP not ready after refusing its cache")
    assert is_refused_connection(dp.port)
    # the CP brings it back
    cp.start()
    dp.wait_ready(timeout=60)
    dp.wait_synced()
    assert echo_once(dp.port) == b"ping\n"


def test_snapshot_with_wrong_hash_refused(st, cluster, echo):
    cp, dp, svc, route = cluster
    good = dp.status_hash()
    # same database and prefix, but every snapshot it sends now has one byte flipped
    cp.restart(env={"STRAIT_TEST_CORRUPT_SNAPSHOT": "1"})
    assert cp.status_hash() == good
    since = dp.log_size()
    cp.route(svc, name="new", destinations=[{"port": dp.listen_ports[1]}])
    assert cp.status_hash() != good
    # the DP says why: the bytes do not match the hash
    dp.wait_log(r"(?i)(hash.*match|match.*hash)", timeout=60, since=since)
    holds_for(lambda: dp.status_hash() == good, 1.0, "DP keeping the old hash")
    assert dp.is_ready()
    assert echo_once(dp.port, b"old route\n") == b"old route\n"
    assert is_refused_connection(dp.listen_ports[1])
    # the CP sees the DP still on the old configuration
    wait_for(lambda: [d for d in cp.data_planes() if d["config_hash"] == good], 20,
             "the CP to list the DP with its old hash")
    # and a CP that sends good bytes again is obeyed
    cp.restart(env={})
    h = dp.wait_synced(timeout=60)
    assert h != good
    assert echo_once(dp.listen_ports[1], b"new route\n") == b"new route\n"


def test_data_planes_listed_with_kong_fields(st, cluster):
    cp, dp, svc, route = cluster
    now = time.time()
    want = cp.status_hash()
    # the DP reports the hash it applied with its next request, just after applying it
    dps = wait_for(lambda: [d for d in cp.data_planes() if d["config_hash"] == want], 20,
                   "the data plane listed with the CP's hash in /clustering/data-planes")
    r = cp.get("/clustering/data-planes")
    assert r.json["next"] is None
    assert len(dps) == 1, dps
    d = dps[0]
    assert d["id"] == dp.dp_id()
    assert d["ip"] == "127.0.0.1"
    assert d["hostname"] == socket.gethostname()
    assert d["version"] and isinstance(d["version"], str)
    assert d["sync_status"] == "normal"
    assert d["config_hash"] == cp.status_hash()
    assert isinstance(d["last_seen"], int) and abs(d["last_seen"] - now) < 120
    assert isinstance(d["labels"], dict)
    assert d["cert_details"]["expiry_timestamp"] > now + 86400
    # the DP that stops says goodbye
    dp.stop()
    wait_for(lambda: cp.data_planes() == [], 20, "the stopped DP to leave the list")


def test_foreign_cluster_certificate_gets_nothing(st, echo, foreign_certs):
    # A DP from another cluster: neither side trusts the other's certificate.
    cp = st.cp()
    svc = cp.service("echo", echo.port)
    cp.route(svc, destinations=[{"port": 1}])
    dp = st.dp(cp, certs=foreign_certs, wait=False)
    dp.wait_status_up()
    holds_for(lambda: not dp.is_ready(), 3.0, "foreign DP not ready")
    assert dp.status_hash() == ZERO_HASH
    assert cp.data_planes() == []
    assert not os.path.exists(os.path.join(dp.prefix, "config.cache"))


def test_dp_trusting_cp_with_foreign_certificate_refused(st, echo, cluster_certs,
                                                         foreign_certs, tmp_path):
    # The cluster certificate is public; its key is not. A DP that trusts the CP's
    # certificate but presents its own (foreign) one must be refused by the CP, and the
    # CP says so. The DP's certificate file holds its foreign leaf first and the real
    # cluster certificate after it, so in shared mode the DP trusts the CP.
    mixed = tmp_path / "mixed.crt"
    mixed.write_text(open(foreign_certs[0]).read() + open(cluster_certs[0]).read())
    cp = st.cp()
    svc = cp.service("echo", echo.port)
    cp.route(svc, destinations=[{"port": 1}])
    since = cp.log_size()
    dp = st.dp(cp, certs=(str(mixed), foreign_certs[1]), wait=False)
    dp.wait_status_up()
    line = cp.wait_log(r"refused data plane", timeout=30, since=since)
    assert re.search(r"\[warn\].*refused data plane 127\.0\.0\.1", line), line
    assert "does not match the cluster certificate" in line, line
    holds_for(lambda: not dp.is_ready(), 2.0, "refused DP not ready")
    assert dp.status_hash() == ZERO_HASH
    assert cp.data_planes() == []
    assert not os.path.exists(os.path.join(dp.prefix, "config.cache"))


def test_cluster_mtls_off_works_and_warns(st, echo):
    cp = st.cp(mtls="off")
    cp.wait_log(r"\[warn\].*cluster_mtls")
    svc = cp.service("echo", echo.port)
    dp = st.dp(cp, mtls="off", start=False)
    cp.route(svc, destinations=[{"port": dp.port}])
    dp.start()
    dp.wait_synced()
    assert echo_once(dp.port) == b"ping\n"
    assert len(cp.data_planes()) == 1
