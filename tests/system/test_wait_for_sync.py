# Guards issue 7, point 5 (second half): `?wait_for_sync=SECONDS` on every admin write.
# The write answers with its usual status and body once every data plane connected at the
# write has applied the configuration that holds it (at that moment the DPs' own /status
# already shows the new hash); when the wait runs out it answers 202 with the same body and
# X-Strait-Pending-Data-Planes naming the DPs still pending (a DP stopped with SIGSTOP; a DP
# that refuses the snapshot, test knob STRAIT_TEST_DP_REJECT, also named in
# X-Strait-Failed-Data-Planes), the write committed either way; with no DP connected it
# answers at once; a bad value is a 400 that writes nothing; without the parameter nothing
# changes. A waiting write is suspended, never holding one of the admin API's few
# threads: with several writes waiting, GET /status still answers, and the writes finish
# when the stopped DP resumes and acknowledges.

import json
import signal
import threading
import urllib.parse

import pytest

from conftest import http, pg_bootstrap, scaled, wait_for

PENDING = "x-strait-pending-data-planes"
FAILED = "x-strait-failed-data-planes"
COUNT = "x-strait-pending-count"
BAD_MSG = "wait_for_sync must be a number of seconds greater than 0 and at most 300"


def hdr(r, name):
    for k, v in r.headers.items():
        if k.lower() == name:
            return v
    return None


def ids_in(r):
    v = hdr(r, PENDING)
    return sorted(x.strip() for x in v.split(",")) if v else []


def post_json(cp, path, body, timeout=10):
    return http("POST", cp.base + path, json.dumps(body).encode(),
                {"Content-Type": "application/json"}, timeout=timeout)


def services(cp):
    r = cp.get("/services?size=1000")
    assert r.status == 200, r
    return {s["name"]: s for s in r.json["data"]}


@pytest.fixture
def two(st, echo):
    """A CP with two synced DPs."""
    cp = st.cp()
    dps = [st.dp(cp), st.dp(cp)]
    h = cp.status_hash()
    for dp in dps:
        dp.wait_hash(h)
    wait_for(lambda: len(cp.data_planes()) == 2, 20, "both DPs in the registry")
    return cp, dps


def assert_all_applied(cp, dps):
    """What the DPs run right now, with no waiting: the CP's current hash."""
    h = cp.status_hash()
    for dp in dps:
        assert dp.status_hash() == h, (dp.name, dp.status_hash(), h)
    return h


# ----------------------------------------------------------------------------- waits


def test_writes_answer_once_every_dp_applied(two):
    cp, dps = two
    h0 = cp.status_hash()
    r = post_json(cp, "/services?wait_for_sync=10",
                  {"name": "ws1", "protocol": "tcp", "host": "127.0.0.1", "port": 9001})
    assert r.status == 201, r
    assert r.json["name"] == "ws1" and r.json["port"] == 9001
    assert hdr(r, PENDING) is None and hdr(r, COUNT) is None
    h1 = assert_all_applied(cp, dps)
    assert h1 != h0
    sid = r.json["id"]

    # PATCH, PUT, a nested POST and DELETE wait too, with their usual answers
    r = cp.api("PATCH", f"/services/{sid}?wait_for_sync=10", json_body={"port": 9002})
    assert r.status == 200 and r.json["port"] == 9002, r
    assert assert_all_applied(cp, dps) != h1
    r = cp.api("PUT", "/services/ws2?wait_for_sync=10",
               json_body={"protocol": "tcp", "host": "127.0.0.1", "port": 9003})
    assert r.status == 200 and r.json["name"] == "ws2", r
    assert_all_applied(cp, dps)
    r = cp.api("POST", f"/services/{sid}/routes?wait_for_sync=10",
               json_body={"name": "wr1", "protocols": ["tcp"],
                          "destinations": [{"port": dps[0].port}]})
    assert r.status == 201 and r.json["service"] == {"id": sid}, r
    assert_all_applied(cp, dps)
    h2 = cp.status_hash()
    r = cp.api("DELETE", "/routes/wr1?wait_for_sync=10")
    assert r.status == 204 and r.raw == b"", r
    assert assert_all_applied(cp, dps) != h2
    assert "wr1" not in [x["name"] for x in cp.get("/routes").json["data"]]


def test_post_config_waits(two):
    cp, dps = two
    doc = {"_format_version": "3.0",
           "services": [{"name": "cfg1", "protocol": "tcp", "host": "127.0.0.1", "port": 9100}]}
    h0 = cp.status_hash()
    r = post_json(cp, "/config?wait_for_sync=10", doc)
    assert r.status == 201, r
    assert [s["name"] for s in r.json["services"].values()] == ["cfg1"]
    assert hdr(r, PENDING) is None
    assert assert_all_applied(cp, dps) != h0
    # check_hash with the same text: 304 at once, nothing to wait for
    r = http("POST", cp.base + "/config?check_hash=1&wait_for_sync=10",
             json.dumps(doc).encode(), {"Content-Type": "application/json"})
    assert r.status == 304 and r.raw == b"", r


def test_stopped_dp_gives_202_with_its_id(st, two):
    cp, (dp1, dp2) = two
    stopped_id = dp2.dp_id()
    r = post_json(cp, "/services?wait_for_sync=10",
                  {"name": "early", "protocol": "tcp", "host": "127.0.0.1", "port": 9199})
    assert r.status == 201, r
    dp2.p.send_signal(signal.SIGSTOP)
    try:
        r = post_json(cp, "/services?wait_for_sync=1.5",
                      {"name": "late", "protocol": "tcp", "host": "127.0.0.1", "port": 9200})
        assert r.status == 202, r
        # the usual body, and the DP that was connected but did not acknowledge
        assert r.json["name"] == "late" and r.json["port"] == 9200, r.json
        assert ids_in(r) == [stopped_id], r.headers
        assert hdr(r, COUNT) == "1"
        assert hdr(r, FAILED) is None
        # the write is committed, and the running DP has it
        assert "late" in services(cp)
        assert dp1.status_hash() == cp.status_hash()

        # deleting "late" gives back the configuration the stopped DP runs: nothing to wait
        # for (a hash covers the configuration, not its version)
        r = cp.api("DELETE", "/services/late?wait_for_sync=10")
        assert r.status == 204 and hdr(r, PENDING) is None, r
        assert "late" not in services(cp)
        # a DELETE that runs out answers 202 too, without a body
        r = cp.api("DELETE", "/services/early?wait_for_sync=0.5")
        assert r.status == 202 and r.raw == b"", r
        assert ids_in(r) == [stopped_id]
        assert "early" not in services(cp)
    finally:
        dp2.p.send_signal(signal.SIGCONT)
    dp2.wait_synced()
    # once it is back, waits end with the usual answer again
    r = post_json(cp, "/services?wait_for_sync=10",
                  {"name": "back", "protocol": "tcp", "host": "127.0.0.1", "port": 9201})
    assert r.status == 201 and hdr(r, PENDING) is None, r
    assert_all_applied(cp, [dp1, dp2])


def test_every_pending_dp_is_listed(st, two):
    cp, dps = two
    for dp in dps:
        dp.p.send_signal(signal.SIGSTOP)
    try:
        r = post_json(cp, "/services?wait_for_sync=1",
                      {"name": "both", "protocol": "tcp", "host": "127.0.0.1", "port": 9250})
        assert r.status == 202 and r.json["name"] == "both", r
        assert hdr(r, PENDING) == ", ".join(sorted(dp.dp_id() for dp in dps)), r.headers
        assert hdr(r, COUNT) == "2"
    finally:
        for dp in dps:
            dp.p.send_signal(signal.SIGCONT)
    for dp in dps:
        dp.wait_synced()


def test_waiting_writes_hold_no_thread(st, two):
    """Six writes wait at once (the admin API has two threads on SQLite, pg_pool_size = 4
    on Postgres) while a DP is stopped: the API keeps answering, and the writes end with
    201 when the DP resumes."""
    cp, (dp1, dp2) = two
    results = {}

    def write(i):
        results[i] = post_json(cp, "/services?wait_for_sync=120",
                               {"name": f"par{i}", "protocol": "tcp", "host": "127.0.0.1",
                                "port": 9300 + i}, timeout=150)

    dp2.p.send_signal(signal.SIGSTOP)
    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(6)]
    try:
        for t in threads:
            t.start()
        # all four committed (and are waiting: none has answered)
        wait_for(lambda: all(f"par{i}" in services(cp) for i in range(6)), 20,
                 "the six writes to commit")
        r = cp.get("/status")
        assert r.status == 200 and r.json["entities"]["services"] == 6, r
        r = cp.get("/clustering/data-planes")
        assert r.status == 200 and len(r.json["data"]) == 2, r
        assert not results, f"a write answered while the stopped DP had not applied it: {results}"
        assert all(t.is_alive() for t in threads)
    finally:
        dp2.p.send_signal(signal.SIGCONT)
    for t in threads:
        t.join(timeout=scaled(60))
        assert not t.is_alive(), "a waiting write did not end after the DP resumed"
    for i in range(6):
        r = results[i]
        assert r.status == 201 and r.json["name"] == f"par{i}", r
        assert hdr(r, PENDING) is None
    assert_all_applied(cp, [dp1, dp2])


def test_dp_refusing_the_snapshot_is_pending_and_failed(st, echo):
    cp = st.cp()
    good = st.dp(cp)
    bad = st.dp(cp, env={"STRAIT_TEST_DP_REJECT": "poison-pill"})
    wait_for(lambda: len(cp.data_planes()) == 2, 20, "both DPs in the registry")
    good.wait_synced()
    bad.wait_synced()
    r = post_json(cp, "/services?wait_for_sync=1",
                  {"name": "poison-pill", "protocol": "tcp", "host": "127.0.0.1", "port": 9400})
    assert r.status == 202, r
    assert r.json["name"] == "poison-pill"
    assert ids_in(r) == [bad.dp_id()], r.headers
    # once the DP has reported the failure, a wait names it as failed too
    wait_for(lambda: [d["sync_status"] for d in cp.data_planes() if d["id"] == bad.dp_id()]
             == ["apply_failed"], 20, "the DP's apply_failed report")
    r = post_json(cp, "/services?wait_for_sync=1",
                  {"name": "next", "protocol": "tcp", "host": "127.0.0.1", "port": 9401})
    assert r.status == 202 and r.json["name"] == "next", r
    assert ids_in(r) == [bad.dp_id()], r.headers
    assert hdr(r, FAILED) == bad.dp_id(), r.headers
    assert good.status_hash() == cp.status_hash()
    assert bad.status_hash() != cp.status_hash()


def test_waits_for_the_dps_of_every_cp_on_the_database(pg, st, echo, tmp_path):
    """On Postgres the registry is shared, and so is the wait: a write on CP1 waits for
    the DPs of CP2 too. It answers once they run it; a DP of CP2 that refuses the
    snapshot keeps a write on CP1 pending, named (and, once it reported, failed)."""
    pg_bootstrap(pg, tmp_path)
    cp1, cp2 = st.cp(conf=dict(pg)), st.cp(conf=dict(pg))
    good = st.dp(cp1)
    bad = st.dp(cp2, env={"STRAIT_TEST_DP_REJECT": "poison-pill"})
    both = sorted([good.dp_id(), bad.dp_id()])
    wait_for(lambda: sorted(d["id"] for d in cp1.data_planes()) == both, 20,
             "CP1 to list both DPs")
    r = post_json(cp1, "/services?wait_for_sync=30",
                  {"name": "shared", "protocol": "tcp", "host": "127.0.0.1", "port": 9600},
                  timeout=40)
    assert r.status == 201 and hdr(r, PENDING) is None, r
    # answered only once the DP of the other CP ran it
    assert bad.status_hash() == good.status_hash() == cp1.status_hash()

    r = post_json(cp1, "/services?wait_for_sync=2",
                  {"name": "poison-pill", "protocol": "tcp", "host": "127.0.0.1", "port": 9601})
    assert r.status == 202 and r.json["name"] == "poison-pill", r
    assert ids_in(r) == [bad.dp_id()], r.headers
    wait_for(lambda: [d["sync_status"] for d in cp1.data_planes() if d["id"] == bad.dp_id()]
             == ["apply_failed"], 20, "the DP's apply_failed report, through CP2")
    r = post_json(cp1, "/services?wait_for_sync=2",
                  {"name": "next", "protocol": "tcp", "host": "127.0.0.1", "port": 9602})
    assert r.status == 202, r
    assert ids_in(r) == [bad.dp_id()] and hdr(r, FAILED) == bad.dp_id(), r.headers
    assert good.status_hash() == cp1.status_hash()


# ----------------------------------------------------------------------------- at once


def test_no_dp_connected_answers_at_once(st):
    cp = st.cp()
    r = post_json(cp, "/services?wait_for_sync=300",
                  {"name": "alone", "protocol": "tcp", "host": "127.0.0.1", "port": 9500},
                  timeout=20)
    assert r.status == 201 and r.json["name"] == "alone", r
    assert hdr(r, PENDING) is None and hdr(r, COUNT) is None
    r = cp.api("DELETE", "/services/alone?wait_for_sync=300")
    assert r.status == 204, r


def test_dp_that_said_goodbye_is_not_waited_for(st, echo):
    cp = st.cp()
    dp = st.dp(cp)
    wait_for(lambda: len(cp.data_planes()) == 1, 20, "the DP in the registry")
    dp.stop()
    wait_for(lambda: len(cp.data_planes()) == 0, 20, "the DP's goodbye")
    r = post_json(cp, "/services?wait_for_sync=300",
                  {"name": "gone", "protocol": "tcp", "host": "127.0.0.1", "port": 9501},
                  timeout=20)
    assert r.status == 201 and hdr(r, PENDING) is None, r


def test_without_the_parameter_nothing_changes(two):
    cp, dps = two
    r = post_json(cp, "/services",
                  {"name": "plain", "protocol": "tcp", "host": "127.0.0.1", "port": 9600})
    assert r.status == 201 and hdr(r, PENDING) is None and hdr(r, COUNT) is None, r
    # a failed write answers its error at once, the parameter notwithstanding
    r = post_json(cp, "/services?wait_for_sync=30",
                  {"name": "plain", "protocol": "tcp", "host": "127.0.0.1", "port": 9600})
    assert r.status == 409 and hdr(r, PENDING) is None, r
    # reads ignore it
    r = cp.get("/services?wait_for_sync=abc")
    assert r.status == 200, r


@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "301", "300.5", "1e2", "0x10", " 5",
                                   "nan", "inf", "1.2.3", ".", "0.0001"])
def test_bad_values_are_refused_and_write_nothing(st, value):
    cp = st.cp()
    q = "wait_for_sync=" + urllib.parse.quote(value)
    before = cp.status_hash()
    r = post_json(cp, "/services?" + q,
                  {"name": "never", "protocol": "tcp", "host": "127.0.0.1", "port": 9700})
    assert r.status == 400, r
    assert r.json == {"message": BAD_MSG}, r.json
    r = post_json(cp, "/config?" + q, {"_format_version": "3.0", "services": [
        {"name": "never", "protocol": "tcp", "host": "127.0.0.1", "port": 9700}]})
    assert r.status == 400 and r.json == {"message": BAD_MSG}, r
    r = cp.api("DELETE", "/services/never?" + q)
    assert r.status == 400 and r.json == {"message": BAD_MSG}, r
    assert services(cp) == {}
    assert cp.status_hash() == before


def test_limits_accepted(st):
    cp = st.cp()
    for i, v in enumerate(["300", "0.5", "1", "2.25", "300.0"]):
        r = post_json(cp, f"/services?wait_for_sync={v}",
                      {"name": f"ok{i}", "protocol": "tcp", "host": "127.0.0.1", "port": 9800 + i})
        assert r.status == 201, (v, r)


def test_cp_stops_cleanly_while_a_write_waits(st, two):
    """SIGTERM during a wait: the wait ends at once and the CP exits 0 (the teardown checks
    the sanitizers' logs too)."""
    cp, (dp1, dp2) = two
    result = {}

    def write():
        try:
            result["r"] = post_json(cp, "/services?wait_for_sync=120",
                                    {"name": "bye", "protocol": "tcp", "host": "127.0.0.1",
                                     "port": 9900}, timeout=150)
        except OSError as e:
            result["error"] = e

    dp2.p.send_signal(signal.SIGSTOP)
    t = threading.Thread(target=write, daemon=True)
    try:
        t.start()
        wait_for(lambda: "bye" in services(cp), 20, "the write to commit")
        assert t.is_alive()
        assert cp.stop(timeout=20) == 0
        t.join(timeout=scaled(20))
        assert not t.is_alive(), "the waiting write did not end when the CP stopped"
        # the answer when libmicrohttpd could still send it: 202, the stopped DP pending
        # (and maybe the other one, when the stop came before its acknowledgement)
        r = result.get("r")
        assert r is None or (r.status == 202 and dp2.dp_id() in ids_in(r)), result
        if r is not None:
            assert hdr(r, COUNT) == str(len(ids_in(r))), r.headers
    finally:
        dp2.p.send_signal(signal.SIGCONT)
