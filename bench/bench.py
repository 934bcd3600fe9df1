#!/usr/bin/python3
"""Strait's benchmark driver (issue 4): Strait beside HAProxy and nginx's stream module.

Run through bench/run.sh (which installs the packages and builds Strait); see bench/README.md.
Standard library only. Everything runs on 127.0.0.1 with ports chosen at run time; every
process started here is tracked by PID and stopped (SIGTERM, then SIGKILL) in a finally
block; every load is bounded in time (wrk -d, iperf3 -t, the Python TLS clients' deadline).

Targets (columns): direct (client straight to the backend: the ceiling), haproxy (mode tcp,
defaults), haproxy-splice (forced splice), nginx (stream {}), strait (one CP + one DP).
Each proxy listens on three ports: plain HTTP -> nginx backend, plain -> iperf3 server,
TLS-terminating HTTP -> nginx backend (plain); and one per balancing group (issue 16), balanced
over 2 or 100 of the backend's extra ports.
"""

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CONFIGS = os.path.join(HERE, "configs")
RESULTS = os.path.join(HERE, "results")

TARGETS = ["direct", "haproxy", "haproxy-splice", "nginx", "strait"]
PROXIES = TARGETS[1:]
WORKERS = os.cpu_count() or 2
SNI = "bench.test"
BODY = "x" * 63 + "\\n"  # nginx `return` string: 63 x's and a newline = 64 bytes
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

# Metric groups (selectable with --metrics) in the order they run within a round.
GROUPS = ["ka", "c1", "conn", "lb2", "lb100", "bulk1", "bulk4", "tls_ka", "tls_full",
          "tls_resume", "rss", "routes"]

# Balancing groups (issue 16): group -> (targets, HAProxy `balance`, nginx upstream directive,
# Strait upstream algorithm). Each proxy listens on one more port per group, balanced over the
# first `targets` of the backend nginx's LB_BACKENDS extra ports.
LB_GROUPS = {
    "lb2": (2, "roundrobin", "", "round-robin"),
    "lb100": (100, "leastconn", "least_conn;", "least-connections"),
}
LB_BACKENDS = 100

# Table rows: key, label, group, unit/format, higher is better, proxy-only (no direct value)
ROWS = [
    ("ka_rps", "keepalive req/s (wrk c50)", "ka", "k", True, False),
    ("ka_p50", "  latency p50 ms", "ka", "ms", False, False),
    ("ka_p99", "  latency p99 ms", "ka", "ms", False, False),
    ("ka_cpu", "  proxy CPU us/request", "ka", "f1", False, True),
    ("c1_rps", "single-conn req/s (wrk c1)", "c1", "k", True, False),
    ("c1_p99", "  latency p99 ms", "c1", "ms", False, False),
    ("c1_cpu", "  proxy CPU us/request", "c1", "f1", False, True),
    ("conn_rate", "new TCP conn/s (Connection: close)", "conn", "k", True, False),
    ("conn_cpu", "  proxy CPU us/connection", "conn", "f1", False, True),
    ("lb2_rate", "new conn/s, 2 targets (round-robin)", "lb2", "k", True, True),
    ("lb2_cpu", "  proxy CPU us/connection", "lb2", "f1", False, True),
    ("lb100_rate", "new conn/s, 100 targets (least-conn)", "lb100", "k", True, True),
    ("lb100_cpu", "  proxy CPU us/connection", "lb100", "f1", False, True),
    ("bulk1_gbps", "bulk Gbit/s, 1 stream (iperf3)", "bulk1", "f2", True, False),
    ("bulk1_cpu", "  proxy CPU ms/GB", "bulk1", "f0", False, True),
    ("bulk4_gbps", "bulk Gbit/s, 4 streams (iperf3 -P4)", "bulk4", "f2", True, False),
    ("bulk4_cpu", "  proxy CPU ms/GB", "bulk4", "f0", False, True),
    ("tls_ka_rps", "TLS keepalive req/s (wrk c50)", "tls_ka", "k", True, False),
    ("tls_ka_p99", "  latency p99 ms", "tls_ka", "ms", False, False),
    ("tls_ka_cpu", "  proxy CPU us/request", "tls_ka", "f1", False, True),
    ("tls_full_rate", "TLS new conn/s, full (py client)", "tls_full", "k", True, False),
    ("tls_full_cpu", "  proxy CPU us/full handshake+req", "tls_full", "f0", False, True),
    ("tls_resume_rate", "TLS new conn/s, resumed (py client)", "tls_resume", "k", True, False),
    ("tls_resume_pct", "  resumed %", "tls_resume", "f0", True, False),
    ("tls_resume_cpu", "  proxy CPU us/resumed conn+req", "tls_resume", "f0", False, True),
    ("rss_plain", "RSS KiB per idle plain conn", "rss", "f2", False, True),
    ("rss_tls", "RSS KiB per idle TLS conn", "rss", "f2", False, True),
]
ROW_BY_KEY = {r[0]: r for r in ROWS}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- processes


def free_port(used):
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in used:
            used.add(port)
            return port
    raise RuntimeError("no free port")


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    """pid and every live descendant."""
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if os.path.exists(f"/proc/{p}"):
            out.append(p)
            todo.extend(kids.get(p, []))
    return out


def proc_cpu_ticks(pid):
    """utime+stime of one process (its thread group: live and exited threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return 0
    fields = st[st.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def thread_cpu(pid):
    """{tid: [comm, ticks]} from /proc/PID/task/*/stat, for the per-thread breakdown."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        out[t] = [comm, int(fields[11]) + int(fields[12])]
    return out


def proc_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Procs:
    """Every process the bench starts, stopped in reverse order at the end."""

    def __init__(self):
        self.items = []  # (name, Popen, known descendant pids)

    def start(self, name, cmd, logpath, env=None):
        logf = open(logpath, "ab")
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                             env=env, start_new_session=True)
        logf.close()
        self.items.append([name, p, set(), cmd, logpath, env])
        log(f"started {name} (pid {p.pid}): {' '.join(cmd)}")
        return p

    def restart(self, name):
        for i in range(len(self.items) - 1, -1, -1):
            if self.items[i][0] == name:
                item = self.items.pop(i)
                rc = self.stop_one(item)
                p = self.start(name, item[3], item[4], item[5])
                self.note_children()
                return p, rc
        raise KeyError(name)

    def note_children(self):
        for item in self.items:
            if item[1].poll() is None:
                item[2].update(tree(item[1].pid))

    def stop_one(self, item, grace=8.0):
        name, p, known = item[:3]
        known.update(tree(p.pid) if p.poll() is None else [])
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"{name} (pid {p.pid}) ignored SIGTERM for {grace}s: SIGKILL")
                p.kill()
                p.wait()
            except ProcessLookupError:
                pass
        for pid in known:
            if pid != p.pid and os.path.exists(f"/proc/{pid}"):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 3
        for pid in known:
            if pid == p.pid:
                continue
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.05)
            if os.path.exists(f"/proc/{pid}"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return p.returncode

    def stop_all(self):
        rcs = {}
        for item in reversed(self.items):
            rcs[item[0]] = self.stop_one(item)
        self.items = []
        return rcs


def wait_until(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- HTTP (admin API)

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, url, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _opener.open(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


# ----------------------------------------------------------------------------- the bench


class Target:
    def __init__(self, name, pname=None):
        self.name = name
        self.pname = pname or name  # the name of its process in Procs
        self.proc = None  # Popen of the main process (CPU/RSS are summed over its tree)
        self.http_port = self.iperf_port = self.tls_port = None
        self.lb_ports = {}  # balancing group -> the port balanced over its targets

    def pids(self):
        if self.proc is None:
            return []
        return tree(self.proc.pid)

    def cpu_ticks(self):
        return sum(proc_cpu_ticks(p) for p in self.pids())

    def rss_kib(self):
        return sum(proc_rss_kib(p) for p in self.pids())

    def alive(self):
        return self.proc is None or self.proc.poll() is None


class Bench:
    def __init__(self, args):
        self.args = args
        self.procs = Procs()
        self.used_ports = set()
        self.work = tempfile.mkdtemp(prefix="strait-bench-")
        self.configs = {}  # file name -> text, every generated config
        self.samples = {}  # row key -> target -> [values]
        self.raw = []  # every run: dict
        self.notes = []  # anomalies worth a line in the report
        self.targets = {}
        self.route_samples = {}
        self.strait = {}
        self.unshare = False
        self.hosts_file = os.path.join(self.work, "hosts")

    # -- helpers

    def port(self):
        return free_port(self.used_ports)

    def fill(self, template, out_name, values):
        # limits that fit RLIMIT_NOFILE (a container may not allow raising it): HAProxy needs
        # 2 fds per connection plus 2 per pipe (maxpipes = maxconn/4 by default) and refuses
        # to start when they do not fit
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        values = dict(values, NOFILE=nofile, MAXCONN=min(40000, (nofile - 300) * 2 // 5),
                      WORKER_CONNECTIONS=min(40000, nofile - 100))
        with open(os.path.join(CONFIGS, template)) as f:
            text = f.read()
        for k, v in values.items():
            text = text.replace("{{" + k + "}}", str(v))
        left = re.findall(r"\{\{[A-Z_]+\}\}", text)
        if left:
            raise RuntimeError(f"{template}: unfilled placeholders {left}")
        path = os.path.join(self.work, out_name)
        with open(path, "w") as f:
            f.write(text)
        self.configs[out_name] = text
        return path

    def note(self, msg):
        log("NOTE: " + msg)
        self.notes.append(msg)

    def add(self, key, target, value):
        if value is None:
            return
        self.samples.setdefault(key, {}).setdefault(target, []).append(value)

    # -- set-up

    def make_certs(self):
        self.cert = os.path.join(self.work, "bench.crt")
        self.key = os.path.join(self.work, "bench.key")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "30", "-subj", f"/CN={SNI}", "-addext",
             f"subjectAltName=DNS:{SNI}", "-keyout", self.key, "-out", self.cert],
            check=True, capture_output=True)
        self.pem = os.path.join(self.work, "bench.pem")  # HAProxy: cert + key in one file
        with open(self.pem, "w") as out:
            for p in (self.cert, self.key):
                with open(p) as f:
                    out.write(f.read())
        self.cluster_cert = os.path.join(self.work, "cluster.crt")
        self.cluster_key = os.path.join(self.work, "cluster.key")
        subprocess.run([self.cp_bin, "cluster", "gen_cert", self.cluster_cert, self.cluster_key],
                       check=True, capture_output=True)
        with open(self.hosts_file, "w") as f:
            f.write(f"127.0.0.1 localhost\n127.0.0.1 {SNI}\n")
        # wrk sends the URL's host as SNI: to send bench.test without touching /etc/hosts,
        # wrk runs in a private mount namespace where this hosts file is bind-mounted.
        r = subprocess.run(self.unshare_prefix() + ["getent", "hosts", SNI],
                           capture_output=True, text=True)
        self.unshare = r.returncode == 0 and "127.0.0.1" in r.stdout
        if not self.unshare:
            self.note("unshare -m unavailable: wrk uses https://127.0.0.1 (SNI '127.0.0.1'); "
                      "Strait's TLS route also matches by destination port")

    def unshare_prefix(self):
        return ["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"', self.hosts_file]

    def start_backends(self):
        self.backend_http = self.port()
        self.backend_https = self.port()
        self.backend_iperf = self.port()
        self.backend_lb = [self.port() for _ in range(LB_BACKENDS)]
        lb_listen = "\n".join(f"        listen 127.0.0.1:{p};" for p in self.backend_lb)
        os.makedirs(os.path.join(self.work, "nginx-backend-tmp"), exist_ok=True)
        conf = self.fill("nginx-backend.conf", "nginx-backend.conf", {
            "WORKERS": WORKERS, "WORK": self.work, "BACKEND_HTTP": self.backend_http,
            "BACKEND_HTTPS": self.backend_https, "CERT": self.cert, "KEY": self.key,
            "BODY": BODY, "BACKEND_LB_LISTEN": lb_listen})
        self.backend = Target("backend")
        self.backend.proc = self.procs.start(
            "nginx-backend", ["nginx", "-e", os.path.join(self.work, "nginx-backend.error.log"),
                              "-p", self.work, "-c", conf],
            os.path.join(self.work, "nginx-backend.out"))
        self.iperf = Target("iperf3")
        self.iperf.proc = self.procs.start(
            "iperf3-server", ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(self.backend_iperf)],
            os.path.join(self.work, "iperf3-server.log"))
        wait_until(lambda: all(port_open(p) for p in
                               [self.backend_http, self.backend_https] + self.backend_lb),
                   15, "the nginx backend")
        wait_until(lambda: port_open(self.backend_iperf), 15, "the iperf3 server")
        d = Target("direct")
        d.http_port, d.iperf_port, d.tls_port = (self.backend_http, self.backend_iperf,
                                                 self.backend_https)
        self.targets["direct"] = d

    def proxy_ports(self, t):
        t.http_port, t.iperf_port, t.tls_port = self.port(), self.port(), self.port()
        t.lb_ports = {g: self.port() for g in LB_GROUPS}
        return {"WORKERS": WORKERS, "WORK": self.work, "PORT_HTTP": t.http_port,
                "PORT_IPERF": t.iperf_port, "PORT_TLS": t.tls_port,
                "BACKEND_HTTP": self.backend_http, "BACKEND_IPERF": self.backend_iperf,
                "CERT": self.cert, "KEY": self.key, "CERT_PEM": self.pem}

    def lb_servers(self, group):
        """The backend ports a balancing group's upstream spreads over."""
        return self.backend_lb[:LB_GROUPS[group][0]]

    def haproxy_lb(self, t):
        """A frontend and a backend per balancing group (no health checks, as the others)."""
        out = []
        for g, (_n, balance, _nginx, _strait) in LB_GROUPS.items():
            out += [f"frontend {g}", f"    bind 127.0.0.1:{t.lb_ports[g]}",
                    f"    default_backend {g}", "", f"backend {g}", f"    balance {balance}"]
            out += [f"    server t{i} 127.0.0.1:{p}" for i, p in enumerate(self.lb_servers(g), 1)]
            out.append("")
        return "\n".join(out)

    def nginx_lb(self, t):
        """An upstream block and a server per balancing group."""
        out = []
        for g, (_n, _haproxy, directive, _strait) in LB_GROUPS.items():
            out.append(f"    upstream {g} {{")
            if directive:
                out.append(f"        {directive}")
            out += [f"        server 127.0.0.1:{p};" for p in self.lb_servers(g)]
            out += ["    }", "    server {", f"        listen 127.0.0.1:{t.lb_ports[g]};",
                    f"        proxy_pass {g};", "    }"]
        return "\n".join(out)

    def start_haproxy(self, name, template):
        t = Target(name)
        vals = self.proxy_ports(t)
        vals["LB_BLOCKS"] = self.haproxy_lb(t)
        conf = self.fill(template, template, vals)
        r = subprocess.run(["haproxy", "-c", "-f", conf], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"haproxy -c {conf}: {r.stdout}{r.stderr}")
        t.proc = self.procs.start(name, ["haproxy", "-db", "-f", conf],
                                  os.path.join(self.work, f"{name}.log"))
        self.targets[name] = t

    def start_nginx_proxy(self):
        t = Target("nginx", "nginx-proxy")
        vals = self.proxy_ports(t)
        vals["STREAM_MODULE"] = self.stream_module
        vals["LB_BLOCKS"] = self.nginx_lb(t)
        conf = self.fill("nginx-proxy.conf", "nginx-proxy.conf", vals)
        t.proc = self.procs.start(
            "nginx-proxy", ["nginx", "-e", os.path.join(self.work, "nginx-proxy.error.log"),
                            "-p", self.work, "-c", conf],
            os.path.join(self.work, "nginx-proxy.out"))
        self.targets["nginx"] = t

    def start_strait(self):
        t = Target("strait", "strait-dp")
        vals = self.proxy_ports(t)
        self.cp_admin, self.cp_cluster, self.dp_status = self.port(), self.port(), self.port()
        vals.update({"CP_ADMIN": self.cp_admin, "CP_CLUSTER": self.cp_cluster,
                     "DP_STATUS": self.dp_status, "CLUSTER_CERT": self.cluster_cert,
                     "CLUSTER_KEY": self.cluster_key,
                     "LB_LISTEN": ", ".join(f"127.0.0.1:{p}" for p in t.lb_ports.values())})
        cp_conf = self.fill("strait-cp.conf", "strait-cp.conf", vals)
        dp_conf = self.fill("strait-dp.conf", "strait-dp.conf", vals)
        self.cp_prefix = os.path.join(self.work, "strait-cp")
        self.dp_prefix = os.path.join(self.work, "strait-dp")
        os.makedirs(self.cp_prefix)
        os.makedirs(self.dp_prefix)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRAIT_")}
        self.cp_log = os.path.join(self.work, "strait-cp.log")
        self.dp_log = os.path.join(self.work, "strait-dp.log")
        self.cp_proc = self.procs.start(
            "strait-cp", [self.cp_bin, "start", "-c", cp_conf, "-p", self.cp_prefix],
            self.cp_log, env)
        self.cp = f"http://127.0.0.1:{self.cp_admin}"
        wait_until(lambda: http("GET", self.cp + "/status")[0] == 200, 20, "strait-cp /status")
        # the configuration, with the admin API (Kong's shape)
        api = self.api
        s_http = api("POST", "/services", {"name": "bench-http",
                                           "url": f"tcp://127.0.0.1:{self.backend_http}"})
        s_iperf = api("POST", "/services", {"name": "bench-iperf",
                                            "url": f"tcp://127.0.0.1:{self.backend_iperf}"})
        self.s_http = s_http
        api("POST", "/routes", {"name": "bench-http", "protocols": ["tcp"],
                                "destinations": [{"port": t.http_port}],
                                "service": {"id": s_http["id"]}})
        api("POST", "/routes", {"name": "bench-iperf", "protocols": ["tcp"],
                                "destinations": [{"port": t.iperf_port}],
                                "service": {"id": s_iperf["id"]}})
        with open(self.cert) as f:
            cert_pem = f.read()
        with open(self.key) as f:
            key_pem = f.read()
        api("POST", "/certificates", {"cert": cert_pem, "key": key_pem, "snis": [SNI]})
        api("POST", "/routes", {"name": "bench-tls", "protocols": ["tls"], "snis": [SNI],
                                "service": {"id": s_http["id"]}})
        # balancing (issue 16): an upstream per group with its targets, a service whose host
        # is the upstream's name (its port is then ignored) and a route on the group's port
        for g, (_n, _haproxy, _nginx, algorithm) in LB_GROUPS.items():
            up = f"{g}.bench"
            api("POST", "/upstreams", {"name": up, "algorithm": algorithm})
            for p in self.lb_servers(g):
                api("POST", f"/upstreams/{up}/targets", {"target": f"127.0.0.1:{p}"})
            s = api("POST", "/services", {"name": f"bench-{g}", "protocol": "tcp", "host": up,
                                          "port": 1})
            api("POST", "/routes", {"name": f"bench-{g}", "protocols": ["tcp"],
                                    "destinations": [{"port": t.lb_ports[g]}],
                                    "service": {"id": s["id"]}})
        if not self.unshare:
            api("POST", "/routes", {"name": "bench-tls-port", "protocols": ["tls"],
                                    "destinations": [{"port": t.tls_port}],
                                    "service": {"id": s_http["id"]}})
        t.proc = self.procs.start(
            "strait-dp", [self.dp_bin, "start", "-c", dp_conf, "-p", self.dp_prefix],
            self.dp_log, env)
        self.dp = f"http://127.0.0.1:{self.dp_status}"
        self.targets["strait"] = t
        self.wait_strait_sync()

    def api(self, method, path, body=None):
        code, out = http(method, self.cp + path, body)
        if code not in (200, 201):
            raise RuntimeError(f"admin API {method} {path} -> {code}: {out}")
        return out

    def wait_strait_sync(self, timeout=60):
        """Until the DP's configuration_hash equals the CP's, and the CP's has settled."""
        def synced():
            if self.targets["strait"].proc.poll() is not None:
                raise RuntimeError(f"strait-dp exited with {self.targets['strait'].proc.returncode}"
                                   f"; see {self.dp_log}")
            c1 = http("GET", self.cp + "/status")[1]["configuration_hash"]
            d = http("GET", self.dp + "/status")[1]
            time.sleep(0.3)
            c2 = http("GET", self.cp + "/status")[1]["configuration_hash"]
            return c1 == c2 == d["configuration_hash"] and d.get("ready") and c1 != "0" * 64
        t0 = time.monotonic()
        wait_until(synced, timeout, "strait-dp to take the CP's configuration", 0.1)
        return time.monotonic() - t0

    def strait_status(self):
        try:
            return http("GET", self.dp + "/status", timeout=5)[1]
        except OSError as e:
            return {"error": repr(e)}

    def wait_proxies(self, only=None):
        for name in PROXIES:
            t = self.targets.get(name)
            if t is None or (only and name != only):
                continue
            def up():
                if t.proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {t.proc.returncode} at start; see "
                                       f"its log in {self.work}")
                return all(port_open(p) for p in [t.http_port, t.iperf_port, t.tls_port]
                           + list(t.lb_ports.values()))
            wait_until(up, 20, f"{name}'s listeners")

    def restart_fresh(self, target):
        """Restarts a proxy (same config and ports) and warms it with a few plain and TLS
        requests, so an RSS delta is not hidden by memory a pool kept from earlier runs."""
        t = self.targets[target]
        t.proc, rc = self.procs.restart(t.pname)
        if target == "strait" and rc != 0:
            self.note(f"strait-dp exited with code {rc} on SIGTERM (restart for the RSS rows)")
        self.wait_proxies(only=target)
        if target == "strait":
            self.wait_strait_sync()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        req = f"GET / HTTP/1.1\r\nHost: {SNI}\r\n\r\n".encode()
        for _ in range(20):
            _open_idle(t.http_port, False, ctx, req).close()
            _open_idle(t.tls_port, True, ctx, req).close()
        time.sleep(0.5)

    def sanity(self):
        """One request through every path of every target before measuring."""
        for name, t in self.targets.items():
            r = wrk_run(self, t, "http", 1, 1, 1, [])
            if r["requests"] < 10 or r["errors"]:
                raise RuntimeError(f"{name}: plain HTTP path does not work: {r}")
            r = wrk_run(self, t, "https", 1, 1, 1, [])
            if r["requests"] < 10 or r["errors"]:
                raise RuntimeError(f"{name}: TLS path does not work: {r}")
            r = iperf_run(t, 1, 1)
            if not r.get("bytes"):
                raise RuntimeError(f"{name}: iperf path does not work: {r}")
            for g, port in t.lb_ports.items():
                # 20 connections must reach at least 2 of the group's targets, and no other
                seen = {backend_port_of(port) for _ in range(20)}
                if not seen <= set(self.lb_servers(g)) or len(seen) < 2:
                    raise RuntimeError(f"{name}: {g} is not balanced over its targets: "
                                       f"20 connections reached backend ports {sorted(seen)}")
                log(f"sanity: {name} {g}: 20 connections reached {len(seen)} targets")
        log("sanity: every path of every target answers")

    # -- the measurements

    def measure(self, target, group, rnd):
        t = self.targets[target]
        a = self.args
        proxy = target != "direct"
        cpu0 = t.cpu_ticks() if proxy else 0
        thr0 = {p: thread_cpu(p) for p in t.pids()} if proxy else {}
        t0 = time.monotonic()
        rec = {"round": rnd, "group": group, "target": target}
        units = None  # denominator for CPU per unit
        if group == "ka":
            r = wrk_run(self, t, "http", 2, 50, a.duration, [])
            rec.update(r)
            self.add("ka_rps", target, r["rps"])
            self.add("ka_p50", target, r["lat"].get("50%"))
            self.add("ka_p99", target, r["lat"].get("99%"))
            units = ("ka_cpu", r["requests"], 1e6)
        elif group == "c1":
            r = wrk_run(self, t, "http", 1, 1, a.duration, [])
            rec.update(r)
            self.add("c1_rps", target, r["rps"])
            self.add("c1_p99", target, r["lat"].get("99%"))
            units = ("c1_cpu", r["requests"], 1e6)
        elif group == "conn":
            r = wrk_run(self, t, "http", 2, 50, a.duration, ["Connection: close"])
            rec.update(r)
            self.add("conn_rate", target, r["rps"])
            units = ("conn_cpu", r["requests"], 1e6)
        elif group in LB_GROUPS:
            if not proxy:
                return None  # the balancing rows are proxy-only
            r = wrk_run(self, t, "http", 2, 50, a.duration, ["Connection: close"],
                        t.lb_ports[group])
            rec.update(r)
            self.add(f"{group}_rate", target, r["rps"])
            units = (f"{group}_cpu", r["requests"], 1e6)
        elif group in ("bulk1", "bulk4"):
            streams = 1 if group == "bulk1" else 4
            r = iperf_run(t, streams, a.duration)
            rec.update(r)
            self.add(f"{group}_gbps", target, r.get("gbps"))
            units = (f"{group}_cpu", (r.get("bytes") or 0) / 1e9, 1e3)
        elif group == "tls_ka":
            r = wrk_run(self, t, "https", 2, 50, a.duration, [])
            rec.update(r)
            self.add("tls_ka_rps", target, r["rps"])
            self.add("tls_ka_p99", target, r["lat"].get("99%"))
            units = ("tls_ka_cpu", r["requests"], 1e6)
        elif group == "tls_full":
            r = tls_conn_run(t.tls_port, a.duration, a.tls_clients, False)
            rec.update(r)
            self.add("tls_full_rate", target, r["rate"])
            if r["reused"]:
                self.note(f"round {rnd} {target}: {r['reused']} 'full' handshakes resumed")
            units = ("tls_full_cpu", r["conns"], 1e6)
        elif group == "tls_resume":
            r = tls_conn_run(t.tls_port, a.duration, a.tls_clients, True)
            rec.update(r)
            self.add("tls_resume_rate", target, r["rate"])
            if r["conns"]:
                self.add("tls_resume_pct", target, 100.0 * r["reused"] / r["conns"])
                if r["reused"] < 0.9 * r["conns"]:
                    self.note(f"round {rnd} {target}: only {r['reused']}/{r['conns']} TLS "
                              "connections resumed")
            units = ("tls_resume_cpu", r["conns"], 1e6)
        elif group == "rss":
            if not proxy:
                return None
            for kind in ("plain", "tls"):
                self.restart_fresh(target)
                r = hold_run(t, kind, a.hold)
                rec[kind] = r
                if r["opened"]:
                    self.add(f"rss_{kind}", target, r["rss_delta_kib"] / r["opened"])
                if r["opened"] < a.hold or r["verified"] < r["checked"]:
                    self.note(f"round {rnd} {target}: held {r['opened']}/{a.hold} {kind} "
                              f"connections, {r['verified']}/{r['checked']} answered a request"
                              f" ({r.get('error')})")
        wall = time.monotonic() - t0
        rec["wall_s"] = round(wall, 3)
        if proxy and group != "rss":  # rss restarts the proxy: no CPU figure
            cpu_s = (t.cpu_ticks() - cpu0) / CLK_TCK
            rec["proxy_cpu_s"] = cpu_s
            thr1 = {p: thread_cpu(p) for p in t.pids()}
            rec["proxy_threads_cpu_s"] = {
                f"{p}/{tid}:{v[0]}": (v[1] - thr0.get(p, {}).get(tid, [None, 0])[1]) / CLK_TCK
                for p, th in thr1.items() for tid, v in th.items()}
            if units and units[1]:
                self.add(units[0], target, cpu_s * units[2] / units[1])
        if proxy and not t.alive():
            self.note(f"{target} exited (code {t.proc.returncode}) during {group} round {rnd}")
        if target == "strait":
            rec["strait_status"] = self.strait_status()
        errs = rec.get("errors")
        if errs:
            self.note(f"round {rnd} {group} {target}: wrk errors {errs}")
        self.raw.append(rec)
        return rec

    def routes_phase(self):
        """Strait's per-connection routing cost with 1 route, then 1,000 tcp routes."""
        t = self.targets["strait"]
        a = self.args
        out = {"1": [], "1000": []}
        for n in ("1", "1000"):
            if n == "1000":
                used = {t.http_port, t.iperf_port, t.tls_port, *t.lb_ports.values()}
                t0 = time.monotonic()
                port, made = 20000, 0
                while made < 999:
                    port += 1
                    if port in used:
                        continue
                    self.api("POST", "/routes", {
                        "protocols": ["tcp"], "destinations": [{"port": port}],
                        "service": {"id": self.s_http["id"]}})
                    made += 1
                posted = time.monotonic() - t0
                sync = self.wait_strait_sync(120)
                self.strait["routes_1000_post_s"] = round(posted, 2)
                self.strait["routes_1000_sync_s"] = round(sync, 2)
                log(f"routes: 999 extra routes posted in {posted:.1f}s, DP in sync {sync:.1f}s "
                    "later")
            for rnd in range(1, a.rounds + 1):
                cpu0 = t.cpu_ticks()
                r = wrk_run(self, t, "http", 2, 50, a.duration, ["Connection: close"])
                cpu_s = (t.cpu_ticks() - cpu0) / CLK_TCK
                r["proxy_cpu_s"] = cpu_s
                r["cpu_us_per_conn"] = cpu_s * 1e6 / r["requests"] if r["requests"] else None
                r["round"] = rnd
                out[n].append(r)
                log(f"routes {n:>4}: round {rnd}: {r['rps']:.0f} conn/s, "
                    f"{r['cpu_us_per_conn'] or 0:.1f} us CPU/conn")
                if r["errors"]:
                    self.note(f"routes {n} round {rnd}: wrk errors {r['errors']}")
        self.route_samples = out

    # -- the whole run

    def run(self):
        a = self.args
        self.cp_bin = os.path.join(a.strait_build, "control-plane", "strait-cp")
        self.dp_bin = os.path.join(a.strait_build, "data-plane", "strait-dp")
        for b in (self.cp_bin, self.dp_bin):
            if not os.access(b, os.X_OK):
                raise RuntimeError(f"{b} is missing: build Strait first (bench/run.sh does)")
        self.stream_module = find_stream_module()
        log(f"work dir {self.work}")
        self.make_certs()
        self.start_backends()
        if "haproxy" in a.targets:
            self.start_haproxy("haproxy", "haproxy.cfg")
        if "haproxy-splice" in a.targets:
            self.start_haproxy("haproxy-splice", "haproxy-splice.cfg")
        if "nginx" in a.targets:
            self.start_nginx_proxy()
        if "strait" in a.targets:
            self.start_strait()
        self.wait_proxies()
        self.procs.note_children()
        for name in list(self.targets):
            if name not in a.targets:
                del self.targets[name]
        self.sanity()
        order = [x for x in TARGETS if x in self.targets]
        groups = [g for g in GROUPS if g in a.metrics and g != "routes"]
        # warm-up: one short keepalive run per target
        for name in order:
            wrk_run(self, self.targets[name], "http", 2, 50, 1, [])
        if "strait" in self.targets:
            self.strait["status_start"] = self.strait_status()
            self.strait["cp_cpu_s_start"] = proc_cpu_ticks(self.cp_proc.pid) / CLK_TCK
        for rnd in range(1, a.rounds + 1):
            # round-robin, with the order rotated each round so no target always goes first
            k = (rnd - 1) % len(order)
            rorder = order[k:] + order[:k]
            for g in groups:
                for name in rorder:
                    rec = self.measure(name, g, rnd)
                    if rec is not None:
                        log(f"round {rnd}/{a.rounds} {g:<10} {name:<15} {summary(rec)}")
        if "strait" in self.targets:
            self.strait["status_end"] = self.strait_status()
            self.strait["cp_cpu_s_end"] = proc_cpu_ticks(self.cp_proc.pid) / CLK_TCK
            if "routes" in a.metrics:
                self.routes_phase()
            self.strait["dp_alive_at_end"] = self.targets["strait"].alive()

    def collect_logs(self):
        logs = {}
        for fn in sorted(os.listdir(self.work)):
            if fn.endswith(".log") or fn.endswith(".out"):
                try:
                    with open(os.path.join(self.work, fn), errors="replace") as f:
                        text = f.read()
                except OSError:
                    continue
                logs[fn] = text[-20000:]
        return logs


# ----------------------------------------------------------------------------- load tools

UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", v)
    return float(m.group(1)) * UNIT_MS[m.group(2)] if m else None


def wrk_run(bench, t, scheme, threads, conns, duration, headers, port=None):
    if scheme == "http":
        url = f"http://127.0.0.1:{port or t.http_port}/"
        prefix = []
    else:
        host = SNI if bench.unshare else "127.0.0.1"
        url = f"https://{host}:{t.tls_port}/"
        prefix = bench.unshare_prefix() if bench.unshare else []
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--latency",
           "--timeout", "5s"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    try:
        p = subprocess.run(prefix + cmd, capture_output=True, text=True, timeout=duration + 60)
        out = p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        out = f"wrk did not finish in time: {e}"
    r = {"cmd": " ".join(cmd), "requests": 0, "rps": 0.0, "lat": {}, "errors": {},
         "out": out}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M):
        r["lat"][m.group(1) + "%"] = parse_ms(m.group(2))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        for k, v in zip(("connect", "read", "write", "timeout"), m.groups()):
            if int(v):
                r["errors"][k] = int(v)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["errors"]["non2xx"] = int(m.group(1))
    # with Connection: close, the read "errors" are wrk seeing the close it asked for
    if any(h.lower().startswith("connection: close") for h in headers):
        r["errors"].pop("read", None)
    if "Requests/sec" not in out:
        r["errors"]["no_result"] = 1
    return r


def backend_port_of(port):
    """One Connection: close request through port: the backend port that answered it (the
    backend names it in X-Backend-Port on its balancing ports), or None."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        while True:
            c = s.recv(4096)
            if not c:
                break
            got += c
    m = re.search(rb"\r\nX-Backend-Port: (\d+)\r\n", got)
    return int(m.group(1)) if m else None


def iperf_run(t, streams, duration):
    cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(t.iperf_port), "-t", str(duration),
           "-P", str(streams), "-J", "--connect-timeout", "5000"]
    r = {"cmd": " ".join(cmd)}
    for attempt in range(3):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
            j = json.loads(p.stdout)
        except (subprocess.TimeoutExpired, ValueError) as e:
            r["error"] = repr(e)
            time.sleep(1)
            continue
        if "error" in j:
            r["error"] = j["error"]  # e.g. "the server is busy running a test": retry
            time.sleep(1)
            continue
        end = j.get("end", {})
        recv = end.get("sum_received", {})
        r.update({"gbps": recv.get("bits_per_second", 0) / 1e9, "bytes": recv.get("bytes", 0),
                  "seconds": recv.get("seconds"),
                  "retransmits": end.get("sum_sent", {}).get("retransmits")})
        r.pop("error", None)
        break
    return r


def _tls_conn_worker(port, duration, resume, q):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    req = f"GET / HTTP/1.1\r\nHost: {SNI}\r\nConnection: close\r\n\r\n".encode()
    sess = None
    conns = reused = errors = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s = ctx.wrap_socket(raw, server_hostname=SNI, session=sess if resume else None)
            s.sendall(req)
            got = b""
            while True:
                c = s.recv(4096)
                if not c:
                    break
                got += c
            if not got.startswith(b"HTTP/1.1 200"):
                errors += 1
            if s.session_reused:
                reused += 1
            if resume:
                sess = s.session  # the newest ticket (TLS 1.3 sends it after the handshake)
            conns += 1
            try:
                s.close()
            except OSError:
                pass
        except (OSError, ssl.SSLError):
            errors += 1
            sess = None
    q.put((conns, reused, errors))


def tls_conn_run(port, duration, clients, resume):
    """New TLS connections, one request each (Connection: close), from `clients` Python
    processes: each a full handshake (no session offered), or resuming the last session
    (tickets). wrk is not used here: it keeps the session across reconnects (SSL_clear), so
    it resumes against some servers and not others."""
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=_tls_conn_worker, args=(port, duration, resume, q))
          for _ in range(clients)]
    t0 = time.monotonic()
    for p in ps:
        p.start()
    res = []
    for _ in ps:
        try:
            res.append(q.get(timeout=duration + 30))
        except Exception:  # noqa: BLE001 - a worker that never reported
            res.append((0, 0, 1))
    for p in ps:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    wall = time.monotonic() - t0
    conns = sum(r[0] for r in res)
    failed = sum(r[2] for r in res)
    return {"conns": conns, "reused": sum(r[1] for r in res),
            "errors": {"failed": failed} if failed else {},
            "rate": conns / wall if wall else 0, "wall": wall, "clients": clients}


def _open_idle(port, tls, ctx, req):
    """One connection (a TLS handshake on the TLS port), one keepalive request answered, then
    left idle: the state a proxy keeps for a quiet keepalive client."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_hostname=SNI) if tls else raw
        s.sendall(req)
        got = b""
        while len(got) < 64 or not got.endswith(b"\n"):
            c = s.recv(4096)
            if not c:
                raise OSError("closed before the response")
            got += c
        if not got.startswith(b"HTTP/1.1 200"):
            raise OSError(f"bad response {got[:40]!r}")
        return s
    except BaseException:
        raw.close()
        raise


def hold_run(t, kind, n):
    """Opens n connections (plain, or TLS with a full handshake), one request each, and holds
    them idle; reads the proxy's summed VmRSS before and with them held; checks a sample
    still answers; closes them."""
    import concurrent.futures
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls = kind == "tls"
    port = t.tls_port if tls else t.http_port
    req = f"GET / HTTP/1.1\r\nHost: {SNI}\r\n\r\n".encode()
    gc_settle()
    rss0 = t.rss_kib()
    socks = []
    errs = []
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        futs = [ex.submit(_open_idle, port, tls, ctx, req) for _ in range(n)]
        for f in futs:
            try:
                socks.append(f.result(timeout=max(5.0, t0 + 180 - time.monotonic())))
            except Exception as e:  # noqa: BLE001 - counted and reported
                errs.append(repr(e))
    open_s = time.monotonic() - t0
    time.sleep(1.5)
    rss1 = t.rss_kib()
    checked = verified = 0
    for s in random.sample(socks, min(10, len(socks))):
        checked += 1
        try:
            s.settimeout(5)
            s.sendall(req)
            got = s.recv(4096)
            if got.startswith(b"HTTP/1.1 200"):
                verified += 1
        except (OSError, ssl.SSLError):
            pass
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    time.sleep(1.0)
    return {"kind": kind, "wanted": n, "opened": len(socks), "open_s": round(open_s, 2),
            "rss_before_kib": rss0, "rss_held_kib": rss1, "rss_after_kib": t.rss_kib(),
            "rss_delta_kib": rss1 - rss0, "checked": checked, "verified": verified,
            "failed": len(errs), "error": errs[0] if errs else None}


def gc_settle():
    time.sleep(0.5)


def summary(rec):
    g = rec["group"]
    cpu = rec.get("proxy_cpu_s")
    cpu_s = f", proxy CPU {cpu:.2f}s" if cpu is not None else ""
    if g in ("bulk1", "bulk4"):
        return f"{rec.get('gbps') or 0:.2f} Gbit/s{cpu_s} {rec.get('error') or ''}"
    if g in ("tls_full", "tls_resume"):
        return f"{rec['rate']:.0f} conn/s, {rec['reused']}/{rec['conns']} resumed{cpu_s}"
    if g == "rss":
        return ", ".join(f"{k}: {rec[k]['rss_delta_kib'] / max(rec[k]['opened'], 1):.2f} "
                         f"KiB/conn ({rec[k]['opened']} held)" for k in ("plain", "tls"))
    lat = rec.get("lat", {})
    p50, p99 = lat.get("50%"), lat.get("99%")
    return (f"{rec['rps']:.0f}/s p50 {p50 or 0:.3g} p99 {p99 or 0:.3g} ms{cpu_s}"
            f"{' errors ' + str(rec['errors']) if rec.get('errors') else ''}")


def find_stream_module():
    for p in ("/usr/lib/nginx/modules/ngx_stream_module.so",
              "/usr/lib64/nginx/modules/ngx_stream_module.so",
              "/usr/share/nginx/modules/ngx_stream_module.so"):
        if os.path.exists(p):
            return p
    raise RuntimeError("nginx's stream module is missing (Debian: libnginx-mod-stream)")


# ----------------------------------------------------------------------------- report


def machine_info(dp_bin=None):
    def cmd(c):
        try:
            p = subprocess.run(c, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    model = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1048576:.1f} GiB"
    return {
        "cpu_model": model, "cores": os.cpu_count(), "memory": mem,
        "kernel": platform.release(), "os": cmd(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        "haproxy": cmd(["haproxy", "-v"]), "nginx": cmd(["nginx", "-v"]),
        "openssl": cmd(["openssl", "version"]), "wrk": cmd(["wrk", "-v"]),
        "iperf3": cmd(["iperf3", "-v"]), "python": platform.python_version(),
        "strait_commit": cmd(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]),
        "strait_dp_built": (time.strftime("%Y-%m-%d %H:%M:%S",
                                          time.localtime(os.path.getmtime(dp_bin)))
                            if dp_bin and os.path.exists(dp_bin) else None),
        "strait_dirty": bool(cmd(["sh", "-c", f"git -C {REPO} status --porcelain "
                                              "-- common data-plane control-plane | head -1"])),
    }


def fmt(v, f):
    if v is None:
        return "-"
    if f == "k":
        return f"{v / 1000:.1f}k"
    if f == "ms":
        return f"{v:.2f}" if v < 10 else f"{v:.1f}"
    if f == "f0":
        return f"{v:.0f}"
    if f == "f1":
        return f"{v:.1f}"
    if f == "f2":
        return f"{v:.2f}"
    return str(v)


def stats(vals):
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "samples": vals}


def render(bench, info, elapsed):
    a = bench.args
    cols = [t for t in TARGETS if t in bench.targets]
    S = {k: {t: stats(v) for t, v in d.items()} for k, d in bench.samples.items()}
    lines = []
    lines.append(f"Strait bench, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}: "
                 f"{a.rounds} round(s) x {a.duration}s per run, {a.hold} held connections, "
                 f"total {elapsed / 60:.1f} min")
    lines.append(f"machine: {info['cpu_model']}, {info['cores']} cores, {info['memory']}, "
                 f"kernel {info['kernel']}, {info['os']}")
    lines.append(f"versions: {info['haproxy']}; {info['nginx']}; {info['openssl']}; "
                 f"{info['wrk']}; {info['iperf3']}; strait: repo at {info['strait_commit']}"
                 f"{' (+ uncommitted changes)' if info['strait_dirty'] else ''}, strait-dp "
                 f"built {info['strait_dp_built']}")
    lines.append(f"load average at start {info.get('loadavg_start')}, at end "
                 f"{info.get('loadavg_end')} (other jobs on the machine skew every number)")
    lines.append("cells: median [min-max] over the rounds; CPU = the proxy's own utime+stime "
                 "(all processes and threads) per unit")
    lines.append("")
    w0 = max(len(r[1]) for r in ROWS) + 1
    cw = 21
    head = "metric".ljust(w0) + "".join(c.rjust(cw) for c in cols)
    lines.append(head)
    lines.append("-" * len(head))
    for key, label, group, f, _hib, _po in ROWS:
        if key not in S:
            continue
        row = label.ljust(w0)
        for c in cols:
            s = S[key].get(c)
            if s is None:
                row += "-".rjust(cw)
            elif s["n"] == 1:
                row += fmt(s["median"], f).rjust(cw)
            else:
                cell = f"{fmt(s['median'], f)} [{fmt(s['min'], f)}-{fmt(s['max'], f)}]"
                row += cell.rjust(cw)
        lines.append(row)
    # ratios
    lines.append("")
    lines.append("ratios of medians: vs haproxy (default) | vs direct")
    head = "metric".ljust(w0) + "".join(c.rjust(cw) for c in cols if c != "direct")
    lines.append(head)
    lines.append("-" * len(head))
    for key, label, group, f, _hib, _po in ROWS:
        if key not in S:
            continue
        row = label.ljust(w0)
        hp = S[key].get("haproxy")
        dr = S[key].get("direct")
        for c in cols:
            if c == "direct":
                continue
            s = S[key].get(c)
            if s is None:
                row += "-".rjust(cw)
                continue
            r1 = f"{s['median'] / hp['median']:.2f}x" if hp and hp["median"] else "-"
            r2 = f"{s['median'] / dr['median']:.2f}d" if dr and dr["median"] else "-"
            row += f"{r1} | {r2}".rjust(cw)
        lines.append(row)
    # Strait's targets from issue 4
    if "strait" in cols:
        lines.append("")
        lines.append("issue 4 targets for Strait (medians of this run)")

        def med(k, t):
            s = S.get(k, {}).get(t)
            return s["median"] if s else None

        checks = []

        def chk(label, val, goal, ok):
            checks.append((label, val, goal, ok))

        def ratio(k, t1, t2):
            x, y = med(k, t1), med(k, t2)
            return x / y if x is not None and y else None

        r = ratio("ka_rps", "strait", "haproxy")
        chk("keepalive req/s vs haproxy", r, ">= 1.15x", r is not None and r >= 1.15)
        r = ratio("conn_rate", "strait", "haproxy")
        chk("new TCP conn/s vs haproxy", r, ">= 1.25x", r is not None and r >= 1.25)
        r = ratio("bulk1_gbps", "strait", "haproxy-splice")
        chk("bulk 1 stream vs haproxy-splice", r, ">= 1.00x", r is not None and r >= 1.0)
        r = ratio("bulk1_gbps", "strait", "direct")
        chk("bulk 1 stream vs direct", r, ">= 0.80x", r is not None and r >= 0.8)
        r = ratio("bulk1_cpu", "strait", "haproxy-splice")
        chk("proxy CPU per GB vs haproxy-splice", r, "<= 0.80x", r is not None and r <= 0.8)
        r = ratio("tls_ka_rps", "strait", "haproxy")
        chk("TLS keepalive req/s vs haproxy", r, ">= 1.10x", r is not None and r >= 1.1)
        best = [v for v in (med("tls_full_cpu", "haproxy"), med("tls_full_cpu", "nginx"))
                if v is not None]
        v = med("tls_full_cpu", "strait")
        r = v / min(best) if v is not None and best else None
        chk("CPU per full TLS handshake vs the better", r, "<= 0.90x", r is not None and r <= 0.9)
        v = med("rss_plain", "strait")
        chk("RSS per idle plain conn (KiB)", v, "<= 2", v is not None and v <= 2)
        v = med("rss_tls", "strait")
        chk("RSS per idle TLS conn (KiB)", v, "<= 15", v is not None and v <= 15)
        for label, val, goal, ok in checks:
            vs = "-" if val is None else (f"{val:.2f}")
            verdict = "n/a" if val is None else ("met" if ok else "MISSED")
            lines.append(f"  {label.ljust(42)} {vs.rjust(8)}  target {goal.ljust(9)} {verdict}")
    if bench.route_samples:
        lines.append("")
        lines.append("Strait routing cost (Connection: close, wrk c50; not interleaved: 1 route "
                     "first, then 999 more tcp routes that never match)")
        for n, rs in bench.route_samples.items():
            rates = [r["rps"] for r in rs]
            cpus = [r["cpu_us_per_conn"] for r in rs if r["cpu_us_per_conn"]]
            s1, s2 = stats(rates), stats(cpus)
            if s1 and s2:
                lines.append(f"  {n:>5} route(s): {fmt(s1['median'], 'k')} conn/s "
                             f"[{fmt(s1['min'], 'k')}-{fmt(s1['max'], 'k')}], "
                             f"{s2['median']:.1f} us CPU/conn [{s2['min']:.1f}-{s2['max']:.1f}]")
        if "routes_1000_post_s" in bench.strait:
            lines.append(f"  (999 POST /routes took {bench.strait['routes_1000_post_s']}s; "
                         f"the DP was in sync {bench.strait['routes_1000_sync_s']}s later)")
    if "cp_cpu_s_end" in bench.strait:
        lines.append("")
        lines.append(f"strait-cp CPU during the rounds (not on the data path): "
                     f"{bench.strait['cp_cpu_s_end'] - bench.strait['cp_cpu_s_start']:.2f}s")
    if bench.notes:
        lines.append("")
        lines.append("notes:")
        for n in bench.notes:
            lines.append("  - " + n)
    return "\n".join(lines) + "\n", S


# ----------------------------------------------------------------------------- main


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 200000
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Strait beside HAProxy and nginx (issue 4)")
    ap.add_argument("--quick", action="store_true",
                    help="1 round, 2s runs, 1000 held connections (for iterating)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 3)")
    ap.add_argument("--duration", type=int, default=None, help="seconds per run (default 5)")
    ap.add_argument("--hold", type=int, default=None,
                    help="idle connections held for the RSS rows (default 5000)")
    ap.add_argument("--metrics", default=",".join(GROUPS),
                    help="comma-separated groups: " + ",".join(GROUPS))
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help="comma-separated: " + ",".join(TARGETS))
    ap.add_argument("--tls-clients", type=int, default=2,
                    help="Python TLS new-connection client processes (default 2)")
    ap.add_argument("--strait-build", default=os.path.join(REPO, "build"),
                    help="Strait's CMake build dir (default build/)")
    ap.add_argument("--out", default=RESULTS, help="where last.txt and last.json go")
    ap.add_argument("--clean", action="store_true",
                    help="delete the work dir in /tmp at the end (default: keep it)")
    a = ap.parse_args(argv)
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.duration = a.duration or (2 if a.quick else 5)
    a.hold = a.hold or (1000 if a.quick else 5000)
    a.metrics = [m.strip() for m in a.metrics.split(",") if m.strip()]
    a.targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    for m in a.metrics:
        if m not in GROUPS:
            ap.error(f"unknown metric group {m!r}; choose from {','.join(GROUPS)}")
    for t in a.targets:
        if t not in TARGETS:
            ap.error(f"unknown target {t!r}; choose from {','.join(TARGETS)}")
    if "direct" not in a.targets:
        a.targets.insert(0, "direct")  # the ceiling is always measured
    if "routes" in a.metrics and "strait" not in a.targets:
        a.metrics.remove("routes")
    a.strait_build = os.path.abspath(a.strait_build)
    return a


def main(argv):
    a = parse_args(argv)
    nofile = raise_nofile()
    if nofile[0] < 3 * a.hold:
        log(f"warning: RLIMIT_NOFILE is {nofile[0]}, low for {a.hold} held connections")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    bench = Bench(a)
    started = time.monotonic()
    info = machine_info(os.path.join(a.strait_build, "data-plane", "strait-dp"))
    with open("/proc/loadavg") as f:
        info["loadavg_start"] = " ".join(f.read().split()[:3])
    failure = None
    try:
        bench.run()
    except KeyboardInterrupt as e:
        failure = f"interrupted: {e}"
    except Exception as e:  # noqa: BLE001 - reported, then the processes are stopped
        import traceback
        traceback.print_exc()
        failure = f"{type(e).__name__}: {e}"
    finally:
        bench.procs.note_children()
        rcs = bench.procs.stop_all()
        log(f"stopped every process: {rcs}")
    if rcs.get("strait-dp") not in (0, None):
        bench.note(f"strait-dp exited with code {rcs.get('strait-dp')} on SIGTERM")
    if failure:
        bench.note("run failed: " + failure)
    elapsed = time.monotonic() - started
    with open("/proc/loadavg") as f:
        info["loadavg_end"] = " ".join(f.read().split()[:3])
    text, S = render(bench, info, elapsed)
    logs = bench.collect_logs()
    for name in ("strait-dp.log", "strait-cp.log"):
        bad = [ln for ln in logs.get(name, "").splitlines()
               if re.search(r"\[(error|crit|alert|emerg)\]", ln)]
        if bad:
            text += f"\n{name}: {len(bad)} error-level line(s), first: {bad[0]}\n"
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "last.txt"), "w") as f:
        f.write(text)
    result = {
        "when": datetime.datetime.now().isoformat(timespec="seconds"),
        "args": {k: v for k, v in vars(a).items()}, "machine": info, "elapsed_s": elapsed,
        "workers": WORKERS, "rlimit_nofile": list(nofile), "work_dir": bench.work,
        "unshare_sni": bench.unshare, "failure": failure, "notes": bench.notes,
        "summary": S, "runs": bench.raw, "routes": bench.route_samples,
        "strait": bench.strait, "exit_codes": rcs, "configs": bench.configs, "logs": logs,
    }
    with open(os.path.join(a.out, "last.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    print()
    print(text)
    print(f"written: {os.path.join(a.out, 'last.txt')}, {os.path.join(a.out, 'last.json')}")
    if a.clean:
        shutil.rmtree(bench.work, ignore_errors=True)
    else:
        print(f"work dir (configs, logs, prefixes) kept: {bench.work}")
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
