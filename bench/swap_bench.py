#!/usr/bin/python3
"""Traffic through a DP while a big configuration is swapped in (issue 7, point 6).

Runs a CP and a DP (cluster_mtls = off, loopback), a TCP echo upstream and 20 held
connections through the DP that echo in a loop, all in a child process so that this
one's work never stalls their measurements. Then:

  1. loads N services with one route each (and N/10 certificates with one SNI each) with
     `strait-cp config db_import`, and kicks the CP with one admin write;
  2. times the CP's rebuild (until GET /status shows the new hash) and the DP's
     receive + apply + swap (until the DP's /status shows it);
  3. makes one small change (a route renamed) and times that too: the steady-state cost;
and prints the held connections' echo latency (p50, p99, max) in each window, and the
DP's peak and final RSS.

Usage: /usr/bin/python3 bench/swap_bench.py [--build-dir build-scale] [-n 100000]
Standard library only; needs the `openssl` command for the certificates.
"""

import argparse
import json
import multiprocessing as mp
import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(method, url, body=None, timeout=300):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def write_conf(path, conf):
    with open(path, "w") as f:
        for k, v in conf.items():
            f.write(f"{k} = {v}\n")


# ------------------------------------------------------------------ the measuring child


def measurer(ctl, dp_port_q, n_conns):
    """Echo server + held connections; records (start, latency) per echo until told to
    stop, then sends them back."""

    class H(socketserver.BaseRequestHandler):
        def handle(self):
            while True:
                d = self.request.recv(65536)
                if not d:
                    return
                self.request.sendall(d)

    class S(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = S(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    ctl.send(srv.server_address[1])
    dp_port = dp_port_q.recv()
    socks = [socket.create_connection(("127.0.0.1", dp_port), timeout=30) for _ in range(n_conns)]
    lat, errors = [], []
    stop = threading.Event()

    def loop():
        i = 0
        while not stop.is_set():
            for k, s in enumerate(socks):
                msg = f"c{k} n{i}\n".encode()
                t0 = time.monotonic()
                try:
                    s.sendall(msg)
                    got = b""
                    while len(got) < len(msg):
                        d = s.recv(len(msg) - len(got))
                        if not d:
                            raise OSError("closed")
                        got += d
                except OSError as e:
                    errors.append(f"connection {k}: {e!r}")
                    return
                lat.append((t0, time.monotonic() - t0))
            i += 1
            time.sleep(0.001)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    ctl.send("running")
    ctl.recv()  # stop
    stop.set()
    t.join()
    ctl.send((lat, errors))


def summary(lat, t0, t1):
    v = sorted(x for t, x in lat if t0 <= t < t1)
    if not v:
        return "no echoes"
    return (f"{len(v):6d} echoes  p50 {v[len(v) // 2] * 1e3:6.2f} ms  "
            f"p99 {v[min(len(v) - 1, len(v) * 99 // 100)] * 1e3:7.2f} ms  max {v[-1] * 1e3:7.2f} ms")


# ------------------------------------------------------------------ the configuration


def gen_pairs(folder, n=4):
    pairs = []
    for i in range(n):
        crt, key = os.path.join(folder, f"c{i}.crt"), os.path.join(folder, f"c{i}.key")
        algo = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] if i % 2 == 0 \
            else ["-newkey", "rsa:2048"]
        subprocess.run(["openssl", "req", "-x509", "-nodes", *algo, "-keyout", key, "-out", crt,
                        "-days", "365", "-subj", f"/CN=bench{i}"], check=True, capture_output=True)
        pairs.append((open(crt).read(), open(key).read()))
    return pairs


def gen_doc(n, n_certs, pairs):
    services = []
    for i in range(n):
        routes = [{"name": f"route-{i}", "protocols": ["tcp"],
                   "destinations": [{"ip": "192.0.2.1", "port": 1 + i % 60000}]}]
        if i % 3 == 1:
            routes = [{"name": f"route-{i}", "protocols": ["tls"], "snis": [f"r{i}.bench.test"]}]
        services.append({"name": f"svc-{i}", "host": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                         "port": 9000 + i % 1000, "routes": routes})
    certs = []
    for i in range(n_certs):
        cert, key = pairs[i % len(pairs)]
        certs.append({"cert": cert, "key": key, "snis": [{"name": f"c{i}.bench.test"}]})
    return {"_format_version": "3.0", "services": services, "certificates": certs}


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith(("VmHWM", "VmRSS")):
                k, v = ln.split(":")
                out[k] = int(v.split()[0]) // 1024
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    ap.add_argument("-n", type=int, default=100000, help="services, one route each")
    ap.add_argument("--certs", type=int, default=None, help="certificates (default n/10)")
    ap.add_argument("--conns", type=int, default=20)
    a = ap.parse_args()
    n_certs = a.n // 10 if a.certs is None else a.certs
    cp_bin = os.path.join(a.build_dir, "control-plane", "strait-cp")
    dp_bin = os.path.join(a.build_dir, "data-plane", "strait-dp")
    tmp = tempfile.mkdtemp(prefix="strait-swapbench-")
    admin, cluster, dp_port, status = free_port(), free_port(), free_port(), free_port()
    common = {"cluster_mtls": "off", "cluster_max_payload": 256 << 20, "log_level": "notice"}
    cp_dir, dp_dir = os.path.join(tmp, "cp"), os.path.join(tmp, "dp")
    os.makedirs(cp_dir)
    os.makedirs(dp_dir)
    write_conf(os.path.join(cp_dir, "strait.conf"), dict(common, admin_listen=f"127.0.0.1:{admin}",
                                                          cluster_listen=f"127.0.0.1:{cluster}"))
    write_conf(os.path.join(dp_dir, "strait.conf"), dict(
        common, cluster_control_plane=f"127.0.0.1:{cluster}",
        stream_listen=f"127.0.0.1:{dp_port}", status_listen=f"127.0.0.1:{status}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAIT_")}
    procs = []

    def start(binary, d):
        log = open(os.path.join(d, "log"), "ab")
        p = subprocess.Popen([binary, "start", "-c", os.path.join(d, "strait.conf"), "-p", d],
                             stdout=log, stderr=log, env=env)
        procs.append(p)
        return p

    def wait(pred, what, timeout=600):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                v = pred()
                if v:
                    return v
            except OSError:
                pass
            time.sleep(0.01)
        sys.exit(f"timed out waiting for {what}")

    cp_hash = lambda: http("GET", f"http://127.0.0.1:{admin}/status")["configuration_hash"]
    dp_hash = lambda: http("GET", f"http://127.0.0.1:{status}/status")["configuration_hash"]
    ctl, child_ctl = mp.Pipe()
    port_q, child_port_q = mp.Pipe()
    m = mp.Process(target=measurer, args=(child_ctl, child_port_q, a.conns), daemon=True)
    m.start()
    echo_port = ctl.recv()
    try:
        start(cp_bin, cp_dir)
        wait(lambda: cp_hash(), "the CP")
        svc = http("POST", f"http://127.0.0.1:{admin}/services",
                   json.dumps({"name": "echo", "host": "127.0.0.1", "port": echo_port}).encode())
        http("POST", f"http://127.0.0.1:{admin}/routes", json.dumps(
            {"name": "r-echo", "protocols": ["tcp"], "service": {"id": svc["id"]},
             "destinations": [{"port": dp_port}]}).encode())
        dpp = start(dp_bin, dp_dir)
        h = wait(lambda: cp_hash() == dp_hash() and cp_hash(), "the DP in sync")
        port_q.send(dp_port)
        assert ctl.recv() == "running"
        print(f"# {a.n} services and routes, {n_certs} certificates and SNIs, "
              f"{a.conns} held connections", flush=True)
        doc_path = os.path.join(tmp, "big.json")
        with open(doc_path, "w") as f:
            json.dump(gen_doc(a.n, n_certs, gen_pairs(tmp)), f)
        time.sleep(1)
        # the CP is stopped while the file goes into its database, so that its start
        # (one read of the store, one build) is the one rebuild measured; the DP keeps
        # serving meanwhile
        cpp = procs.pop(0)
        cpp.terminate()
        cpp.wait(timeout=60)
        t_imp0 = time.monotonic()
        r = subprocess.run([cp_bin, "config", "db_import", doc_path, "-c",
                            os.path.join(cp_dir, "strait.conf"), "-p", cp_dir],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            sys.exit(f"db_import: {r.stdout}{r.stderr}")
        dp_log_path = os.path.join(dp_dir, "log")
        mark = os.path.getsize(dp_log_path)

        def dp_connected():
            with open(dp_log_path, "rb") as f:
                f.seek(mark)
                return b"connected to control plane" in f.read()

        t0 = time.monotonic()
        start(cp_bin, cp_dir)
        t1 = wait(lambda: cp_hash() != h and time.monotonic(), "the CP to start and build")
        big = cp_hash()
        t1c = wait(lambda: dp_connected() and time.monotonic(), "the DP to reconnect", 120)
        t2 = wait(lambda: dp_hash() == big and time.monotonic(), "the DP to apply")
        t1 = max(t1, t1c)
        time.sleep(2)
        r1 = rss(dpp.pid)
        t3 = time.monotonic()
        http("PATCH", f"http://127.0.0.1:{admin}/routes/route-0", json.dumps({"name": "route-0b"}).encode())
        t4 = wait(lambda: cp_hash() != big and time.monotonic(), "the CP to rebuild")
        h2 = cp_hash()
        t5 = wait(lambda: dp_hash() == h2 and time.monotonic(), "the DP to apply")
        time.sleep(2)
        r2 = rss(dpp.pid)
        ctl.send("stop")
        lat, errors = ctl.recv()
        dp_log = open(os.path.join(dp_dir, "log")).read()
        cp_log = open(os.path.join(cp_dir, "log")).read()
        size = [ln for ln in cp_log.splitlines() if "configuration version" in ln][-2]
        print(f"CP snapshot: {size.split(']')[-1].strip()}")
        print(f"db_import:                 {t0 - t_imp0:7.2f} s")
        print(f"CP start (read + build):   {t1 - t0:7.2f} s   {size.split('hash')[1].strip()}")
        print(f"DP receive+apply+swap:     {t2 - t1:7.2f} s   (from its reconnection)")
        print(f"one route renamed: CP {t4 - t3:5.2f} s, DP {t5 - t4:5.2f} s")
        print(f"DP RSS: after the big apply {r1['VmRSS']} MiB, after the change {r2['VmRSS']} MiB, "
              f"peak {r2['VmHWM']} MiB")
        print("echo latency on the held connections:")
        print(f"  before (2 s)             {summary(lat, t_imp0 - 2, t_imp0)}")
        print(f"  db_import (CPU busy)     {summary(lat, t_imp0, t0)}")
        print(f"  CP start and build       {summary(lat, t0, t1)}")
        print(f"  DP apply and swap        {summary(lat, t1, t2)}")
        print(f"  after                    {summary(lat, t2, t3)}")
        print(f"  small change (CP + DP)   {summary(lat, t3, t5)}")
        print(f"  connection errors: {errors or 'none'}")
        applied = [ln for ln in dp_log.splitlines() if "applied" in ln]
        print("  " + "\n  ".join(applied[-3:]))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=60)
        m.terminate()
        print(f"# logs and prefixes in {tmp}")


if __name__ == "__main__":
    main()
