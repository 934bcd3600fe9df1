"""Issue 6, points 3, 4 and 6: the real binaries on the test command's throwaway Postgres
(scripts/pg-temp.sh; the `pg` fixture gives each test a fresh, empty database).

- the schema commands: a CP refuses an unbootstrapped database naming the command,
  `migrations list` exits 3 / 0 / 5, bootstrap and up are idempotent, reset needs --yes;
- the seed flow on Postgres: admin API writes reach a DP and traffic flows;
- two CPs on one database (each LISTENs on strait_config): a write through one reaches the
  DP of the other (the latency is printed, never asserted), and an interleaved burst of
  writes through both ends with every CP and DP on one hash;
- an outage (the server stopped): /status says so, writes get a 503 with a message, DPs
  keep proxying and a new DP still gets the configuration; after the server is back,
  writes succeed without restarting the CP, nothing acknowledged is lost and DPs follow;
- two concurrent migration runs: each migration applied once, the second one waits.

The fixtures are requested as (pg, st): the processes stop before the database is dropped."""

import os
import re
import subprocess
import time

from conftest import (CP_BIN, _child_env, echo_once, echoes, pg_ctl, pg_psql, scaled,
                      wait_for, write_conf)


# ----------------------------------------------------------------------------- helpers


def migrations(pg, tmp, *args, env=None):
    """Runs `strait-cp migrations ARGS` against the pg database; returns the
    CompletedProcess (text)."""
    path = os.path.join(str(tmp), "migrations.conf")
    write_conf(path, dict(pg, cluster_mtls="off"))
    return subprocess.run([CP_BIN, "migrations", *args, "-c", path, "-p", str(tmp)],
                          capture_output=True, text=True, env=_child_env(env or {}),
                          timeout=scaled(60))


def bootstrap(pg, tmp):
    r = migrations(pg, tmp, "bootstrap")
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r


def listeners(db):
    """How many backends of db are LISTENing on strait_config (their last statement)."""
    out = pg_psql("strait", "SELECT count(*) FROM pg_stat_activity"
                            f" WHERE datname = '{db}' AND query = 'LISTEN strait_config'")
    return int(out.strip())


def tables(db):
    out = pg_psql(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                      " ORDER BY tablename")
    return out.split()


def service_names(cp):
    r = cp.get("/services?size=1000")
    assert r.status == 200, r
    return sorted(s["name"] for s in r.json["data"])


def setup_seed(st, cp, echo, dp_count=1):
    """A service to the echo upstream and a route on every DP's port; the DPs (created
    first, not started) get started and synced. Returns (dps, service, route)."""
    dps = [st.dp(cp, start=False) for _ in range(dp_count)]
    svc = cp.service("echo", echo.port)
    route = cp.route(svc, name="r-echo", destinations=[{"port": d.port} for d in dps])
    for d in dps:
        d.start()
        d.wait_synced()
    return dps, svc, route


# ----------------------------------------------------------------------------- a. schema


def test_unbootstrapped_database_refused_and_migration_commands(pg, st, tmp_path):
    db = pg["pg_database"]

    # a CP on a database that was never bootstrapped refuses to start, naming the command
    cp = st.cp(conf=pg, start=False)
    cp.start(wait=False)
    try:
        rc = cp.p.wait(timeout=scaled(30))
    finally:
        cp.expect_dead = True
    log = cp.log_text(since_start=True)
    assert rc != 0, log
    assert "strait-cp migrations bootstrap" in log, log

    r = migrations(pg, tmp_path, "list")
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert "bootstrap" in r.stdout + r.stderr

    r = migrations(pg, tmp_path, "bootstrap")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "bootstrapping database" in r.stdout, r.stdout
    assert "schema_migrations" in tables(db) and "services" in tables(db)

    r = migrations(pg, tmp_path, "list")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert "up-to-date" in r.stdout, r.stdout

    r = migrations(pg, tmp_path, "bootstrap")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "already bootstrapped" in r.stdout, r.stdout

    r = migrations(pg, tmp_path, "up")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "already up-to-date" in r.stdout, r.stdout

    # now the CP starts
    cp2 = st.cp(conf=pg)
    cp2.ok("POST", "/services", {"name": "kept", "url": "tcp://127.0.0.1:9"})
    cp2.stop()

    r = migrations(pg, tmp_path, "reset")
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "--yes" in r.stderr, r.stderr
    assert "services" in tables(db)
    assert pg_psql(db, "SELECT name FROM services").split() == ["kept"]

    r = migrations(pg, tmp_path, "reset", "--yes")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert tables(db) == []

    r = migrations(pg, tmp_path, "list")
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)


def test_pending_migrations_listed_then_applied_by_up(pg, tmp_path):
    """A database left behind (the test knob STRAIT_TEST_MIGRATION_TARGET=1): list exits
    5 naming what is pending, up applies it, list then exits 0."""
    r = migrations(pg, tmp_path, "bootstrap", env={"STRAIT_TEST_MIGRATION_TARGET": "1"})
    assert r.returncode == 0, (r.stdout, r.stderr)
    r = migrations(pg, tmp_path, "list")
    assert r.returncode == 5, (r.returncode, r.stdout, r.stderr)
    assert "strait-cp migrations up" in r.stdout, r.stdout
    r = migrations(pg, tmp_path, "up")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "executed" in r.stdout, r.stdout
    r = migrations(pg, tmp_path, "list")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)


# ----------------------------------------------------------------------------- b. seed flow


def test_seed_flow_on_postgres(pg, st, echo, tmp_path):
    bootstrap(pg, tmp_path)
    cp = st.cp(conf=pg)
    (dp,), svc, route = setup_seed(st, cp, echo)
    assert echo_once(dp.port, b"through postgres\n") == b"through postgres\n"
    # the entities are rows of the database, not of a local file
    db = pg["pg_database"]
    assert pg_psql(db, "SELECT name FROM services").split() == ["echo"]
    assert pg_psql(db, "SELECT id FROM routes").split() == [route["id"]]
    assert not os.path.exists(os.path.join(cp.prefix, "strait.db"))


# ----------------------------------------------------------------------------- c. two CPs


def test_two_cps_one_database(pg, st, echo, tmp_path):
    bootstrap(pg, tmp_path)
    db = pg["pg_database"]
    cp1 = st.cp(conf=pg)
    cp2 = st.cp(conf=pg)
    # each CP listens for the other's commits
    wait_for(lambda: listeners(db) == 2, 10, "both CPs to LISTEN on strait_config")

    dp1 = st.dp(cp1, start=False)
    dp2 = st.dp(cp2, start=False)
    svc = cp1.service("echo", echo.port)
    cp1.route(svc, name="r-echo", destinations=[{"port": dp1.port}, {"port": dp2.port}])
    for d in (dp1, dp2):
        d.start()
        d.wait_synced()
    assert echoes(dp2.port), "DP of CP2 proxies what was written through CP1"

    # one write through CP1: time until both DPs run it. CP2's admin API is not asked
    # meanwhile (its /status rebuilds on demand): only its LISTEN (or its 5 s poll) moves it.
    h0 = dp2.status_hash()
    t0 = time.monotonic()
    r = cp1.api("POST", "/services", json_body={"name": "late", "url": "tcp://127.0.0.1:9"})
    assert r.status == 201, r
    t_ack = time.monotonic()
    h1 = wait_for(lambda: (lambda h: h if h != h0 else None)(cp1.status_hash()), 10,
                  "CP1 to publish")
    seen = {}

    def both():
        for name, d in (("dp1", dp1), ("dp2", dp2)):
            if name not in seen and d.status_hash() == h1:
                seen[name] = time.monotonic()
        return len(seen) == 2

    wait_for(both, 20, "both DPs on CP1's new hash", interval=0.01)
    print(f"\n[two CPs] write acknowledged in {(t_ack - t0) * 1000:.0f} ms; on dp1 after "
          f"{(seen['dp1'] - t0) * 1000:.0f} ms, on dp2 (other CP) after "
          f"{(seen['dp2'] - t0) * 1000:.0f} ms")
    assert cp2.status_hash() == h1

    # a burst of 50 writes through both CPs, interleaved
    for i in range(50):
        cp = cp1 if i % 2 == 0 else cp2
        r = cp.api("POST", "/services",
                   json_body={"name": f"burst-{i:02d}", "url": f"tcp://127.0.0.1:{1000 + i}"})
        assert r.status == 201, (i, r)
    t_burst = time.monotonic()
    final = cp1.status_hash()  # /status reads its writes: the hash of the final state
    wait_for(lambda: dp1.status_hash() == final and dp2.status_hash() == final, 20,
             "both DPs on the final hash", interval=0.01)
    print(f"[two CPs] 50 interleaved writes: both DPs on the final hash "
          f"{(time.monotonic() - t_burst) * 1000:.0f} ms after the last acknowledgement")
    assert cp2.status_hash() == final
    assert cp1.status_hash() == final
    expect = sorted(["echo", "late"] + [f"burst-{i:02d}" for i in range(50)])
    assert service_names(cp1) == expect
    assert service_names(cp2) == expect
    assert dp1.status_hash() == final and dp2.status_hash() == final
    assert echoes(dp1.port) and echoes(dp2.port)


# ----------------------------------------------------------------------------- d. outage


def test_postgres_outage(pg, st, echo, tmp_path):
    bootstrap(pg, tmp_path)
    cp = st.cp(conf=pg)
    pid = cp.p.pid
    dp_late = st.dp(cp, start=False)  # its port is in the route; started during the outage
    (dp,), svc, route = setup_seed(st, cp, echo)
    late_route = cp.route(svc, name="r-late", destinations=[{"port": dp_late.port}])
    acked = cp.ok("POST", "/services", {"name": "before-outage", "url": "tcp://127.0.0.1:9"})
    h_before = cp.status_hash()
    dp.wait_hash(h_before)
    assert cp.get("/status").json["database"]["reachable"] is True

    log_mark = cp.log_size()
    pg_ctl("stop")
    try:
        wait_for(lambda: cp.get("/status").json["database"]["reachable"] is False, 15,
                 "GET /status database.reachable false")
        st_ = cp.get("/status")
        assert st_.status == 200 and st_.json["configuration_hash"] == h_before, st_

        r = cp.api("POST", "/services", json_body={"name": "during", "url": "tcp://127.0.0.1:9"})
        assert r.status == 503, r
        assert isinstance(r.json, dict) and r.json.get("message"), r
        assert "database" in r.json["message"], r

        # the DP keeps proxying
        assert echo_once(dp.port, b"outage\n") == b"outage\n"
        # a DP started now still gets the configuration the CP holds
        dp_late.start()
        dp_late.wait_hash(h_before)
        assert echo_once(dp_late.port, b"late\n") == b"late\n"
        cp.check_alive()
    finally:
        pg_ctl("start")

    # back: writes succeed without restarting the CP
    wait_for(lambda: cp.get("/status").json["database"]["reachable"] is True, 20,
             "GET /status database.reachable true again")

    def write_after():
        r = cp.api("POST", "/services", json_body={"name": "after", "url": "tcp://127.0.0.1:9"})
        assert r.status in (201, 409), r  # 409: an earlier try committed
        return True

    wait_for(write_after, 20, "a write to succeed after the outage")
    assert cp.p.pid == pid and cp.alive()
    names = service_names(cp)
    assert names == sorted(["echo", "before-outage", "after"]), names
    assert cp.get(f"/routes/{route['id']}").status == 200
    assert cp.get(f"/routes/{late_route['id']}").status == 200
    assert cp.get(f"/services/{acked['id']}").json["name"] == "before-outage"

    h_after = cp.status_hash()
    assert h_after != h_before
    dp.wait_hash(h_after)
    dp_late.wait_hash(h_after)
    assert echoes(dp.port) and echoes(dp_late.port)

    # the LISTEN connection: lost once, regained once
    cp.wait_log(r"LISTEN strait_config connection regained", timeout=20, since=log_mark)
    with open(cp.log_path, "rb") as f:
        f.seek(log_mark)
        text = f.read().decode(errors="replace")
    assert len(re.findall(r"LISTEN strait_config connection lost", text)) == 1, text
    assert len(re.findall(r"LISTEN strait_config connection regained", text)) == 1, text


# ----------------------------------------------------------------------------- e. migrations race


def applied_counts(db):
    out = pg_psql(db, "SELECT version, count(*) FROM schema_migrations GROUP BY version"
                      " ORDER BY version")
    return [tuple(int(x) for x in line.split("|")) for line in out.split()]


def migration_lock_held(db):
    out = pg_psql("strait", "SELECT count(*) FROM pg_locks l JOIN pg_database d"
                            " ON d.oid = l.database WHERE l.locktype = 'advisory'"
                            f" AND l.granted AND d.datname = '{db}'")
    return int(out.strip()) > 0


def race(pg, tmp_path, command, env=None):
    """Runs `migrations COMMAND` twice, the second started while the first holds the
    migration lock (which it keeps STRAIT_TEST_MIGRATION_DELAY_MS). Returns both results
    as (returncode, stdout, stderr)."""
    db = pg["pg_database"]
    path = os.path.join(str(tmp_path), "race.conf")
    write_conf(path, dict(pg, cluster_mtls="off"))
    env = dict(env or {}, STRAIT_TEST_MIGRATION_DELAY_MS=str(int(scaled(1500))))
    cmd = [CP_BIN, "migrations", command, "-c", path, "-p", str(tmp_path)]

    def spawn():
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_child_env(env))

    first = spawn()
    try:
        wait_for(lambda: migration_lock_held(db) or first.poll() is not None, 10,
                 "the first run to take the migration lock")
        second = spawn()
    except BaseException:
        first.kill()
        first.wait()
        raise
    out = []
    for p in (first, second):
        o, e = p.communicate(timeout=scaled(60))
        out.append((p.returncode, o, e))
    return out


def test_concurrent_bootstrap_runs_once(pg, tmp_path):
    first, second = race(pg, tmp_path, "bootstrap")
    assert first[0] == 0, first
    assert second[0] == 0, second
    assert "bootstrapping database" in first[1], first
    assert "waiting for another strait-cp" in second[1], second
    assert "already bootstrapped" in second[1], second
    counts = applied_counts(pg["pg_database"])
    assert counts and all(n == 1 for _, n in counts), counts
    assert [v for v, _ in counts] == list(range(1, len(counts) + 1)), counts
    r = migrations(pg, tmp_path, "list")
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_concurrent_up_runs_once(pg, tmp_path):
    r = migrations(pg, tmp_path, "bootstrap", env={"STRAIT_TEST_MIGRATION_TARGET": "1"})
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert applied_counts(pg["pg_database"]) == [(1, 1)]
    first, second = race(pg, tmp_path, "up")
    assert first[0] == 0, first
    assert second[0] == 0, second
    assert "executed" in first[1], first
    assert "waiting for another strait-cp" in second[1], second
    assert "already up-to-date" in second[1], second
    counts = applied_counts(pg["pg_database"])
    assert len(counts) >= 2 and all(n == 1 for _, n in counts), counts
    r = migrations(pg, tmp_path, "list")
    assert r.returncode == 0, (r.stdout, r.stderr)
