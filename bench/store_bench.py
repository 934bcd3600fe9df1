#!/usr/bin/env python3
"""Strait's store and propagation benchmark (issue 6, point 7). Never part of the tests.

Two measurements, everything on 127.0.0.1 on ports picked free at run time:

  writes       admin writes per second on each backend (SQLite, Postgres): N concurrent
               HTTP clients (threads, keep-alive http.client) POST /services until a fixed
               count is written, on a fresh CP with an empty store; writes/s and the
               p50/p99 of the POST's latency, per backend and client count.
  propagation  write-to-every-DP latency: two CPs on one Postgres, DPs on each (two per
               CP by default). For each write (a POST /services, alternately through each
               CP): the time from the POST's response until every DP's GET /status shows
               the written CP's new configuration_hash, polled every --poll-ms, bounded by
               --deadline per write. Also the time until each DP, and the other CP, change.

It starts everything itself: a throwaway Postgres (scripts/pg-temp.sh start/stop, in the
work folder), `strait-cp migrations bootstrap`, the cluster certificate pair (`strait-cp
cluster gen_cert`), the CPs and the DPs; it stops them all in a finally block. Standard
library only. Writes bench/results/store-last.json (every sample, the machine, the commit).
"""

import argparse
import datetime
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


BACKENDS = ("sqlite", "postgres", "postgres-async")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port(used=set()):  # noqa: B006 (one set for the run: never the same port twice)
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in used:
            used.add(p)
            return p
    raise RuntimeError("no free port")


def pct(values, p):
    """The p-th percentile (nearest rank) of values, or None when empty."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))
    return v[k]


def summary_ms(values):
    """p50/p99/max/mean in milliseconds of a list of seconds."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50) * 1000, 2),
        "p99_ms": round(pct(values, 99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
    }


def child_env():
    # the binaries read STRAIT_<KEY>: keep the caller's shell out of their configuration
    return {k: v for k, v in os.environ.items() if not k.startswith("STRAIT_")}


class Http:
    """One keep-alive HTTP connection to host:port (reconnects after an error)."""

    def __init__(self, port, timeout=10):
        self.port = port
        self.timeout = timeout
        self.c = None

    def request(self, method, path, body=None):
        for attempt in (0, 1):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                headers = {}
                data = None
                if body is not None:
                    data = json.dumps(body).encode()
                    headers["Content-Type"] = "application/json"
                self.c.request(method, path, body=data, headers=headers)
                r = self.c.getresponse()
                raw = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, raw
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, path):
        status, raw = self.request("GET", path)
        if status != 200:
            raise OSError(f"GET {path} on port {self.port}: {status} {raw[:200]!r}")
        return json.loads(raw)

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            if pred():
                return
        except (OSError, ValueError, KeyError, http.client.HTTPException) as e:
            last = e
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}"
                               + (f" (last error: {last!r})" if last else ""))
        time.sleep(interval)


# ----------------------------------------------------------------------------- processes


class Proc:
    def __init__(self, run, name, binary, conf):
        self.run = run
        self.name = name
        self.binary = binary
        self.conf = conf
        self.dir = os.path.join(run.work, name)
        self.prefix = os.path.join(self.dir, "prefix")
        os.makedirs(self.prefix, exist_ok=True)
        self.conf_path = os.path.join(self.dir, "strait.conf")
        self.log_path = os.path.join(self.dir, "log")
        self.p = None

    def start(self):
        with open(self.conf_path, "w") as f:
            f.write("# written by bench/store_bench.py\n")
            for k, v in self.conf.items():
                f.write(f"{k} = {v}\n")
        with open(self.log_path, "ab") as logf:
            self.p = subprocess.Popen([self.binary, "start", "-c", self.conf_path, "-p",
                                       self.prefix], stdin=subprocess.DEVNULL, stdout=logf,
                                      stderr=logf, env=child_env())
        self.run.procs.append(self)
        return self

    def check_alive(self):
        if self.p.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.p.returncode}; log tail:\n"
                               + self.log_tail())

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.p is None or self.p.poll() is not None:
            return
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log(f"{self.name} (pid {self.p.pid}) ignored SIGTERM for 10 s: SIGKILL")
            self.p.kill()
            self.p.wait()


class Cp(Proc):
    def __init__(self, run, name, db):
        self.admin_port = free_port()
        self.cluster_port = free_port()
        conf = {
            "admin_listen": f"127.0.0.1:{self.admin_port}",
            "cluster_listen": f"127.0.0.1:{self.cluster_port}",
            "cluster_cert": run.certs[0],
            "cluster_cert_key": run.certs[1],
            "log_level": "notice",
        }
        conf.update(db)
        super().__init__(run, name, run.cp_bin, conf)
        self.http = Http(self.admin_port)

    def wait_ready(self, timeout=30):
        def up():
            self.check_alive()
            return self.http.json("/status") is not None

        wait_until(up, timeout, f"{self.name} /status")

    def status(self):
        return self.http.json("/status")


class Dp(Proc):
    def __init__(self, run, name, cp):
        self.status_port = free_port()
        self.listen_port = free_port()
        conf = {
            "cluster_control_plane": f"127.0.0.1:{cp.cluster_port}",
            "cluster_cert": run.certs[0],
            "cluster_cert_key": run.certs[1],
            "stream_listen": f"127.0.0.1:{self.listen_port}",
            "status_listen": f"127.0.0.1:{self.status_port}",
            "worker_processes": 1,
            "log_level": "notice",
        }
        super().__init__(run, name, run.dp_bin, conf)
        self.cp = cp

    def wait_ready(self, timeout=30):
        h = Http(self.status_port)

        def ready():
            self.check_alive()
            return h.request("GET", "/status/ready")[0] == 200

        try:
            wait_until(ready, timeout, f"{self.name} /status/ready")
        finally:
            h.close()


# ----------------------------------------------------------------------------- postgres


class Postgres:
    """The throwaway server of scripts/pg-temp.sh, in DIR."""

    def __init__(self, pg_dir):
        self.dir = pg_dir
        self.env = None

    def start(self):
        script = os.path.join(REPO, "scripts", "pg-temp.sh")
        r = subprocess.run(["bash", script, "start", self.dir], capture_output=True, text=True,
                           timeout=180)
        if r.returncode != 0:
            raise RuntimeError(f"pg-temp.sh start failed ({r.returncode}): {r.stderr.strip()}")
        env = {}
        for line in r.stdout.splitlines():
            if line.startswith("export ") and "=" in line:
                k, v = line[len("export "):].split("=", 1)
                env[k] = v
        self.env = env
        self.host = env["STRAIT_TEST_PG_HOST"]
        self.port = int(env["STRAIT_TEST_PG_PORT"])
        self.user = env["STRAIT_TEST_PG_USER"]
        self.bin = env["STRAIT_TEST_PG_BIN"]
        return self

    def psql(self, sql, db="strait"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        r = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-A", "-t", "-v",
                            "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port), "-U",
                            self.user, "-d", db, "-c", sql], capture_output=True, text=True,
                           env=env, stdin=subprocess.DEVNULL, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {r.stderr.strip()}")
        return r.stdout

    def durable(self):
        """Undoes pg-temp.sh's test shortcuts (fsync, synchronous_commit and
        full_page_writes off): a commit is on disk when acknowledged, as in production."""
        for k in ("fsync", "full_page_writes", "synchronous_commit"):
            self.psql(f"ALTER SYSTEM SET {k} = on")
        self.psql("SELECT pg_reload_conf()")
        wait_until(lambda: self.psql("SHOW fsync").strip() == "on", 10, "fsync = on")

    def settings(self):
        return {k: self.psql(f"SHOW {k}").strip()
                for k in ("fsync", "synchronous_commit", "full_page_writes", "wal_level",
                          "shared_buffers", "max_connections")}

    def version(self):
        return self.psql("SHOW server_version").strip()

    def stop(self):
        if not os.path.exists(self.dir):
            return
        script = os.path.join(REPO, "scripts", "pg-temp.sh")
        subprocess.run(["bash", script, "stop", self.dir], timeout=120)


class Run:
    def __init__(self, args):
        self.args = args
        build = args.strait_build
        self.cp_bin = os.path.join(build, "control-plane", "strait-cp")
        self.dp_bin = os.path.join(build, "data-plane", "strait-dp")
        for b in (self.cp_bin, self.dp_bin):
            if not os.access(b, os.X_OK):
                sys.exit(f"store_bench: {b} is missing: build first (bench/run-store.sh)")
        self.work = tempfile.mkdtemp(prefix="strait-storebench-")
        # the Postgres server (user postgres when we are root) must reach its folder inside
        os.chmod(self.work, 0o711)
        self.procs = []
        self.pg = None
        self.ndb = 0

    def gen_certs(self):
        cert = os.path.join(self.work, "cluster.crt")
        key = os.path.join(self.work, "cluster.key")
        subprocess.run([self.cp_bin, "cluster", "gen_cert", cert, key], check=True,
                       capture_output=True, env=child_env(), timeout=60)
        self.certs = (cert, key)

    def pg_database(self, sync=True):
        """A fresh, bootstrapped database: the CP conf keys for it. sync=False: its
        commits do not wait for the disk (synchronous_commit = off)."""
        self.ndb += 1
        name = f"bench{self.ndb}"
        self.pg.psql(f"CREATE DATABASE {name}")
        if not sync:
            self.pg.psql(f"ALTER DATABASE {name} SET synchronous_commit = off")
        keys = {"database": "postgres", "pg_host": self.pg.host, "pg_port": self.pg.port,
                "pg_user": self.pg.user, "pg_database": name}
        path = os.path.join(self.work, f"bootstrap-{name}.conf")
        with open(path, "w") as f:
            for k, v in dict(keys, cluster_mtls="off").items():
                f.write(f"{k} = {v}\n")
        r = subprocess.run([self.cp_bin, "migrations", "bootstrap", "-c", path, "-p",
                            self.work], capture_output=True, text=True, env=child_env(),
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"migrations bootstrap failed: {r.stdout}{r.stderr}")
        return keys

    def stop_procs(self, procs=None):
        procs = list(self.procs if procs is None else procs)
        # data planes first: they say goodbye to their control plane
        for p in sorted(procs, key=lambda p: 0 if isinstance(p, Dp) else 1):
            try:
                p.stop()
            except Exception as e:  # noqa: BLE001 (stop what can be stopped)
                log(f"stopping {p.name}: {e!r}")
            if p in self.procs:
                self.procs.remove(p)

    def close(self):
        self.stop_procs()
        if self.pg is not None:
            self.pg.stop()
        if self.args.keep:
            log(f"work folder kept: {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def service_body(tag, i):
    return {"name": f"{tag}-{i}", "protocol": "tcp", "host": "127.0.0.1",
            "port": 10000 + i % 50000, "tags": ["bench"]}


# ----------------------------------------------------------------------------- writes


def bench_writes(run, backend, clients, total, rnd=0):
    """A fresh CP on an empty store; `clients` threads POST /services until `total` are
    written. Returns the result record."""
    name = f"cp-{backend}-c{clients}-r{rnd + 1}"
    db = {} if backend == "sqlite" else run.pg_database(sync=backend != "postgres-async")
    cp = Cp(run, name, db).start()
    try:
        cp.wait_ready()
        # warm-up (not counted): the first requests open the connections
        for i in range(20):
            s, raw = cp.http.request("POST", "/services", service_body("warm", i))
            if s != 201:
                raise RuntimeError(f"{name}: warm-up POST /services -> {s} {raw[:200]!r}")
        lock = threading.Lock()
        nxt = [0]
        lat = [[] for _ in range(clients)]
        errors = []
        start_evt = threading.Event()

        def worker(k):
            h = Http(cp.admin_port, timeout=30)
            mine = lat[k]
            start_evt.wait()
            while True:
                with lock:
                    i = nxt[0]
                    if i >= total:
                        break
                    nxt[0] += 1
                t0 = time.perf_counter()
                try:
                    s, raw = h.request("POST", "/services", service_body("svc", i))
                except (OSError, http.client.HTTPException) as e:
                    errors.append(repr(e))
                    continue
                t1 = time.perf_counter()
                if s == 201:
                    mine.append((t1, t1 - t0))
                else:
                    errors.append(f"{s} {raw[:200]!r}")
            h.close()

        threads = [threading.Thread(target=worker, args=(k,), daemon=True)
                   for k in range(clients)]
        for t in threads:
            t.start()
        t0 = time.perf_counter()
        start_evt.set()
        for t in threads:
            t.join(timeout=600)
        elapsed = time.perf_counter() - t0
        done = sorted(x for ls in lat for x in ls)
        all_lat = [d for _, d in done]
        # writes/s in each quarter of the run (by completion order): does the rate fall as
        # the store grows?
        quarters = []
        prev_t = t0
        for q in range(4):
            part = done[q * len(done) // 4:(q + 1) * len(done) // 4]
            if part:
                quarters.append(round(len(part) / max(part[-1][0] - prev_t, 1e-9), 1))
                prev_t = part[-1][0]
        cp.check_alive()
        # every acknowledged write is there
        st = cp.status()
        rec = {
            "backend": backend,
            "clients": clients,
            "writes": len(all_lat),
            "errors": len(errors),
            "error_samples": errors[:5],
            "seconds": round(elapsed, 3),
            "writes_per_s": round(len(all_lat) / elapsed, 1) if elapsed > 0 else None,
            "writes_per_s_by_quarter": quarters,
            "latency": summary_ms(all_lat),
            "latency_ms": [round(x * 1000, 2) for x in all_lat],
            "cp_status_after": {k: st.get(k) for k in ("configuration_hash", "database")},
        }
        count = count_services(cp)
        rec["services_in_store"] = count
        if count != 20 + len(all_lat):
            rec["check"] = f"FAILED: {count} services, expected {20 + len(all_lat)}"
        return rec
    finally:
        run.stop_procs([cp])


def combine(backend, clients, recs):
    """One configuration over its rounds: the median, min and max writes/s; the latency
    percentiles over every write of every round."""
    rates = [r["writes_per_s"] for r in recs]
    lat = [x / 1000.0 for r in recs for x in r["latency_ms"]]
    out = {
        "backend": backend,
        "clients": clients,
        "writes": sum(r["writes"] for r in recs),
        "errors": sum(r["errors"] for r in recs),
        "writes_per_s": round(statistics.median(rates), 1),
        "writes_per_s_rounds": rates,
        "latency": summary_ms(lat),
        "rounds": recs,
    }
    checks = [r["check"] for r in recs if "check" in r]
    if checks:
        out["check"] = "; ".join(checks)
    return out


def count_services(cp):
    n = 0
    path = "/services?size=1000"
    while path:
        body = cp.http.json(path)
        n += len(body["data"])
        path = body.get("next")
    return n


# ----------------------------------------------------------------------------- propagation


class Watcher(threading.Thread):
    """Watches one DP's GET /status on its own keep-alive connection, for the whole run.
    For each round (arm()), it polls every `interval` s until the configuration_hash
    differs from `prev`, and records when (seconds after t0, at the arrival of the answer
    that showed it) and the hash it then saw."""

    def __init__(self, port, interval):
        super().__init__(daemon=True)
        self.h = Http(port, timeout=5)
        self.interval = interval
        self.go = threading.Event()
        self.done = threading.Event()
        self.quit = False
        self.prev = self.t0 = self.deadline = None

    def arm(self, prev, t0, deadline):
        self.prev, self.t0, self.deadline = prev, t0, deadline
        self.when = self.hash = self.error = None
        self.polls = 0
        self.done.clear()
        self.go.set()

    def run(self):
        while True:
            self.go.wait()
            self.go.clear()
            if self.quit:
                break
            self.round()
            self.done.set()
        self.h.close()

    def round(self):
        while True:
            try:
                h = self.h.json("/status")["configuration_hash"]
            except (OSError, ValueError, KeyError, http.client.HTTPException) as e:
                self.error = repr(e)
                h = None
            now = time.perf_counter()
            self.polls += 1
            if h is not None and h != self.prev:
                self.when = now - self.t0
                self.hash = h
                return
            if now - self.t0 > self.deadline:
                return
            time.sleep(self.interval)

    def stop(self):
        self.quit = True
        self.go.set()


def bench_propagation(run, n_writes, dps_per_cp, poll_ms, deadline, gap_ms):
    db = run.pg_database()
    cps = [Cp(run, f"cp-fleet{k + 1}", db).start() for k in range(2)]
    procs = list(cps)
    watchers = {}
    try:
        for cp in cps:
            cp.wait_ready()
        dps = []
        for k, cp in enumerate(cps):
            for j in range(dps_per_cp):
                d = Dp(run, f"dp{k + 1}{chr(ord('a') + j)}", cp).start()
                dps.append(d)
                procs.append(d)
        for d in dps:
            d.wait_ready()
        for d in dps:
            watchers[d.name] = Watcher(d.status_port, poll_ms / 1000.0)
            watchers[d.name].start()

        def dp_hashes():
            return {d.name: watchers[d.name].h.json("/status")["configuration_hash"]
                    for d in dps}

        def in_sync():
            # note: a CP's GET /status rebuilds its snapshot when its store moved on (read
            # your writes), so it is read only here, between measured writes
            c = {cp.status()["configuration_hash"] for cp in cps}
            return len(c | set(dp_hashes().values())) == 1

        # a first write, then every plane on one hash
        s, raw = cps[0].http.request("POST", "/services", service_body("seed", 0))
        if s != 201:
            raise RuntimeError(f"seed POST /services -> {s} {raw[:200]!r}")
        wait_until(in_sync, 30, "every CP and DP on one configuration_hash", 0.02)

        samples = []
        for i in range(n_writes):
            src = cps[i % 2]
            # a random pause, so that writes do not fall in step with a CP's timers
            time.sleep(random.uniform(0, gap_ms / 1000.0))
            prev = set(dp_hashes().values())
            if len(prev) != 1:
                raise RuntimeError(f"DPs not in sync before write {i}: {prev}")
            prev = prev.pop()
            # only the DPs are polled during the measurement: polling a CP's /status would
            # make that CP rebuild its snapshot, and hide the propagation between CPs
            t_req = time.perf_counter()
            s, raw = src.http.request("POST", "/services", service_body("prop", i))
            t0 = time.perf_counter()
            if s != 201:
                raise RuntimeError(f"POST /services via {src.name} -> {s} {raw[:200]!r}")
            for w in watchers.values():
                w.arm(prev, t0, deadline)
            for w in watchers.values():
                w.done.wait(timeout=deadline + 10)
            # the target: the written CP's configuration (read after the DPs answered)
            target = src.status()["configuration_hash"]
            rec = {
                "write": i,
                "via": src.name,
                "post_ms": ms(t0 - t_req),
                "dp_ms": {n: ms(w.when) for n, w in watchers.items()},
                "polls": {n: w.polls for n, w in watchers.items()},
            }
            bad = {n: {"hash": w.hash, "error": w.error} for n, w in watchers.items()
                   if w.when is None or w.hash != target}
            if bad:
                rec["missed"] = bad
                rec["all_dps_ms"] = None
                log(f"  write {i} via {src.name}: missed by {sorted(bad)}")
                wait_until(in_sync, 30, "every plane on one hash after a missed write", 0.05)
            else:
                rec["all_dps_ms"] = max(rec["dp_ms"].values())
            samples.append(rec)
            if (i + 1) % 10 == 0:
                log(f"  propagation: {i + 1}/{n_writes} writes")
        for cp in cps:
            cp.check_alive()

        def col(key):
            return [r[key] / 1000.0 for r in samples if r[key] is not None]

        same, cross = [], []
        owner = {d.name: d.cp.name for d in dps}
        for r in samples:
            for dname, v in r["dp_ms"].items():
                if v is not None:
                    (same if owner[dname] == r["via"] else cross).append(v / 1000.0)
        return {
            "cps": 2,
            "dps": len(dps),
            "writes": n_writes,
            "poll_ms": poll_ms,
            "deadline_s": deadline,
            "gap_ms": gap_ms,
            "missed": sum(1 for r in samples if r["all_dps_ms"] is None),
            "every_dp": summary_ms(col("all_dps_ms")),
            "dp_same_cp": summary_ms(same),
            "dp_other_cp": summary_ms(cross),
            "post": summary_ms(col("post_ms")),
            "samples": samples,
        }
    finally:
        for w in watchers.values():
            w.stop()
        run.stop_procs(procs)


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 3)


# ----------------------------------------------------------------------------- main


def machine():
    info = {"host": platform.node(), "kernel": platform.release(), "cores": os.cpu_count(),
            "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["commit"] = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        if dirty:
            info["commit"] += "+dirty"
    except OSError:
        pass
    return info


def fmt(v):
    return "-" if v is None else f"{v:.1f}"


def print_report(res):
    print()
    print("Admin writes (POST /services, keep-alive clients, a fresh CP on an empty store each "
          "round): writes/s the median of the rounds, latency over every write")
    print(f"{'backend':<14} {'clients':>7} {'writes':>7} {'errors':>6} {'writes/s':>9} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  writes/s of each round")
    for r in res.get("writes", []):
        lt = r["latency"]
        print(f"{r['backend']:<14} {r['clients']:>7} {r['writes']:>7} {r['errors']:>6} "
              f"{fmt(r['writes_per_s']):>9} {fmt(lt.get('p50_ms')):>7} "
              f"{fmt(lt.get('p99_ms')):>7} {fmt(lt.get('max_ms')):>7}  "
              + " ".join(f"{q:.0f}" for q in r["writes_per_s_rounds"])
              + (f"  {r['check']}" if "check" in r else ""))
    p = res.get("propagation")
    if p:
        print()
        print(f"Write to every DP: 2 CPs on one Postgres, {p['dps']} DPs, {p['writes']} writes "
              f"alternately through each CP, polled every {p['poll_ms']} ms "
              f"(missed: {p['missed']})")
        print(f"{'from the POST response until':<44} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
        rows = [("every DP shows the new hash", "every_dp"),
                ("a DP of the written CP", "dp_same_cp"),
                ("a DP of the other CP", "dp_other_cp")]
        for label, key in rows:
            s = p[key]
            print(f"{label:<44} {fmt(s.get('p50_ms')):>7} {fmt(s.get('p99_ms')):>7} "
                  f"{fmt(s.get('max_ms')):>7}")
        s = p["post"]
        print(f"{'(the POST itself)':<44} {fmt(s.get('p50_ms')):>7} {fmt(s.get('p99_ms')):>7} "
              f"{fmt(s.get('max_ms')):>7}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strait-build", default=os.path.join(REPO, "build"),
                    help="CMake build folder holding control-plane/strait-cp (default build/)")
    ap.add_argument("--quick", action="store_true",
                    help="1 round of 500 writes per backend and client count, 20 propagation "
                         "writes")
    ap.add_argument("--writes", type=int,
                    help="writes per backend, client count and round (2000)")
    ap.add_argument("--rounds", type=int, help="rounds of the write measurement (3)")
    ap.add_argument("--clients", default="1,8",
                    help="concurrent admin clients, comma-separated (default 1,8)")
    ap.add_argument("--backends", default="sqlite,postgres,postgres-async",
                    help="comma-separated: sqlite, postgres, postgres-async (a database with "
                         "synchronous_commit = off)")
    ap.add_argument("--pg-fast", action="store_true",
                    help="keep pg-temp.sh's test settings (fsync, synchronous_commit and "
                         "full_page_writes off) instead of a durable server")
    ap.add_argument("--prop-writes", type=int, help="propagation writes (100)")
    ap.add_argument("--dps-per-cp", type=int, default=2)
    ap.add_argument("--poll-ms", type=float, default=5.0)
    ap.add_argument("--gap-ms", type=float, default=50.0,
                    help="random pause (0 to this many ms) before each propagation write")
    ap.add_argument("--deadline", type=float, default=15.0,
                    help="seconds a write may take to reach every DP before it counts as missed")
    ap.add_argument("--only", choices=("writes", "propagation"), help="one measurement only")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "store-last.json"))
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, configs)")
    args = ap.parse_args()
    writes = args.writes or (500 if args.quick else 2000)
    prop_writes = args.prop_writes or (20 if args.quick else 100)
    rounds = args.rounds or (1 if args.quick else 3)
    clients = [int(x) for x in args.clients.split(",") if x]
    backends = [b for b in args.backends.split(",") if b]
    for b in backends:
        if b not in BACKENDS:
            sys.exit(f"store_bench: unknown backend {b!r}")

    run = Run(args)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)  # stop everything as on Ctrl-C
    res = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "machine": machine(), "args": vars(args)}
    res["machine"]["loadavg_start"] = os.getloadavg()
    interrupted = False
    try:
        log(f"work folder {run.work}")
        run.gen_certs()
        log("starting a throwaway Postgres (scripts/pg-temp.sh)")
        run.pg = Postgres(os.path.join(run.work, "pg"))  # stopped by run.close() even when
        run.pg.start()                                   # interrupted while starting
        if not args.pg_fast:
            run.pg.durable()
        res["postgres"] = {"version": run.pg.version(), "port": run.pg.port,
                           "settings": run.pg.settings()}
        log(f"Postgres {res['postgres']['version']} on port {run.pg.port}")
        if args.only in (None, "writes"):
            # rounds interleave the configurations (the order rotated each round), so that
            # a burst of other work on the machine does not land on one configuration
            combos = [(b, c) for b in backends for c in clients]
            per = {combo: [] for combo in combos}
            for rnd in range(rounds):
                order = combos[rnd % len(combos):] + combos[:rnd % len(combos)]
                for b, c in order:
                    log(f"writes, round {rnd + 1}/{rounds}: {b}, {c} client(s), {writes} "
                        "POST /services")
                    r = bench_writes(run, b, c, writes, rnd)
                    log(f"  {r['writes_per_s']} writes/s, p50 {r['latency'].get('p50_ms')} ms, "
                        f"p99 {r['latency'].get('p99_ms')} ms, errors {r['errors']}")
                    per[(b, c)].append(r)
            res["writes"] = [combine(b, c, per[(b, c)]) for b, c in combos]
        if args.only in (None, "propagation"):
            log(f"propagation: 2 CPs, {2 * args.dps_per_cp} DPs, {prop_writes} writes")
            res["propagation"] = bench_propagation(run, prop_writes, args.dps_per_cp,
                                                   args.poll_ms, args.deadline, args.gap_ms)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted")
    finally:
        run.close()
    if interrupted:
        sys.exit(130)
    res["machine"]["loadavg_end"] = os.getloadavg()
    print_report(res)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    text = json.dumps(res, indent=1)
    # arrays of numbers (the raw samples) on one line each
    text = re.sub(r"\[\s*(-?[0-9.e+-]+(?:,\s*-?[0-9.e+-]+)*)\s*\]",
                  lambda m: "[" + ",".join(m.group(1).replace(",", " ").split()) + "]", text)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    log(f"results: {args.out}")
    failed = [r for r in res.get("writes", []) if r["errors"] or "check" in r]
    if failed or res.get("propagation", {}).get("missed"):
        log("some writes failed or were missed: see the JSON")
        sys.exit(1)


if __name__ == "__main__":
    main()
