# System-test harness (issue 2): fixtures that own the real strait-cp and strait-dp
# processes, their configuration files, prefixes, ports and logs, plus an echo upstream.
#
# Every process a test starts is stopped by the fixture's teardown with SIGTERM; it must
# exit 0 within a deadline, and its log must hold no AddressSanitizer, LeakSanitizer,
# ThreadSanitizer or UBSan ("runtime error") report (the sanitizers' options come from
# CTest's environment: ASAN_OPTIONS, TSAN_OPTIONS, ...). Waits poll with a deadline scaled by
# STRAIT_TEST_TIMEOUT_MULT (default 1, or 3 under a sanitizer build); nothing sleeps to
# synchronise.
#
# Environment: STRAIT_BIN_DIR (the CMake build folder; default <repo>/build),
# STRAIT_SANITIZE (set by CTest for sanitizer builds), STRAIT_TEST_TIMEOUT_MULT.

import json
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.environ.get("STRAIT_BIN_DIR") or os.path.join(REPO, "build")
CP_BIN = os.path.join(BIN_DIR, "control-plane", "strait-cp")
DP_BIN = os.path.join(BIN_DIR, "data-plane", "strait-dp")
SANITIZED = bool(os.environ.get("STRAIT_SANITIZE"))
MULT = float(os.environ.get("STRAIT_TEST_TIMEOUT_MULT") or (3 if SANITIZED else 1))

SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error")
ZERO_HASH = "0" * 64


def scaled(seconds):
    return seconds * MULT


def wait_for(pred, timeout, what, interval=0.05):
    """Polls pred() until it returns a true value (returned) or the scaled deadline passes."""
    deadline = time.monotonic() + scaled(timeout)
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except (OSError, ValueError, AssertionError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {scaled(timeout):.1f}s waiting for {what}{extra}")
        time.sleep(interval)


def holds_for(pred, duration, what, interval=0.05):
    """Asserts pred() stays true for `duration` seconds (unscaled: a minimum, not a limit)."""
    end = time.monotonic() + duration
    while time.monotonic() < end:
        assert pred(), f"{what} stopped holding"
        time.sleep(interval)


# ----------------------------------------------------------------------------- session


def pytest_configure(config):
    # A private base folder: pytest prunes old numbered folders of other sessions (of
    # other users of this machine), which would pull the prefixes from under running
    # processes. Kept after the run for the logs; pass --basetemp to choose it.
    if not config.option.basetemp:
        config.option.basetemp = tempfile.mkdtemp(prefix="strait-system-")
        config._strait_own_basetemp = config.option.basetemp


def pytest_sessionfinish(session, exitstatus):
    own = getattr(session.config, "_strait_own_basetemp", None)
    if own and exitstatus == 0:
        shutil.rmtree(own, ignore_errors=True)


# ----------------------------------------------------------------------------- ports


class PortAllocator:
    """Hands out free loopback ports, never the same one twice in a session, below the
    kernel's ephemeral range (32768+ by default): a port taken from that range could be
    given to some process's outgoing connection (a DP's upstream connects, a probe)
    between the check and the listener's bind, and the listener would then fail with
    EADDRINUSE. 20000..20999 stay out too (test_balancing's dead targets)."""

    LOW, HIGH = 21000, 32000

    def __init__(self):
        self.used = set()
        self.rng = random.Random(os.getpid())

    def get(self):
        for _ in range(1000):
            port = self.rng.randrange(self.LOW, self.HIGH)
            if port in self.used:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            finally:
                s.close()
            self.used.add(port)
            return port
        raise RuntimeError("no free port")

    def claim(self, port):
        self.used.add(port)


@pytest.fixture(scope="session")
def ports():
    return PortAllocator()


# ----------------------------------------------------------------------------- HTTP


class Resp:
    def __init__(self, status, body, headers):
        self.status = status
        self.raw = body
        self.headers = headers
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<Resp {self.status} {self.raw[:300]!r}>"


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, url, body=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _opener.open(req, timeout=scaled(timeout)) as r:
            return Resp(r.status, r.read(), dict(r.headers))
    except urllib.error.HTTPError as e:
        return Resp(e.code, e.read(), dict(e.headers))


# ----------------------------------------------------------------------------- processes


def _child_env(extra):
    # The binaries read STRAIT_<KEY> for their keys: drop whatever the caller's shell had
    # (and the harness's own STRAIT_* knobs), then add what this process is given.
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAIT_")}
    env.update(extra or {})
    return env


def write_conf(path, conf):
    with open(path, "w") as f:
        f.write("# written by tests/system/conftest.py\n")
        for k, v in conf.items():
            if v is None:
                continue
            if isinstance(v, bool):
                v = "on" if v else "off"
            f.write(f"{k} = {v}\n")


class Proc:
    """One strait-cp or strait-dp process with its conf file, prefix and log."""

    binary = None
    kind = None

    def __init__(self, harness, name, conf, env=None):
        self.h = harness
        self.name = name
        self.dir = os.path.join(harness.tmp, name)
        self.prefix = os.path.join(self.dir, "prefix")
        os.makedirs(self.prefix, exist_ok=True)
        self.conf_path = os.path.join(self.dir, "strait.conf")
        self.log_path = os.path.join(self.dir, f"{self.kind}.log")
        self.conf = conf
        self.env = env or {}
        self.p = None
        self.starts = 0
        self.expect_dead = False

    # -- life cycle

    def start(self, wait=True, env=None):
        assert self.p is None or self.p.poll() is not None, f"{self.name} already running"
        if env is not None:
            self.env = env
        write_conf(self.conf_path, self.conf)
        self.starts += 1
        self.log_mark = self.log_size()
        with open(self.log_path, "ab") as log:
            log.write(f"---- start #{self.starts} of {self.name} ----\n".encode())
            log.flush()
            self.p = subprocess.Popen(
                [self.binary, "start", "-c", self.conf_path, "-p", self.prefix],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=_child_env(self.env),
            )
        self.expect_dead = False
        if wait:
            self.wait_ready()
        return self

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def check_alive(self):
        if self.p is not None and self.p.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.p.returncode}; log tail:\n{self.log_tail()}"
            )
        return True

    def stop(self, timeout=10):
        """SIGTERM; requires exit 0 within the deadline. Returns the exit code."""
        if self.p is None:
            return None
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=scaled(timeout))
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError(
                    f"{self.name} did not exit within {scaled(timeout):.0f}s of SIGTERM; "
                    f"log tail:\n{self.log_tail()}"
                )
        rc = self.p.returncode
        self.check_sanitizers()
        assert rc == 0, f"{self.name} exited {rc} after SIGTERM; log tail:\n{self.log_tail()}"
        return rc

    def kill(self):
        """SIGKILL (a crash, as far as the others can tell)."""
        if self.alive():
            self.p.kill()
            self.p.wait()
        self.expect_dead = True

    def restart(self, wait=True, env=None):
        self.stop()
        return self.start(wait=wait, env=env)

    # -- logs

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_text(self, since_start=False):
        try:
            with open(self.log_path, "rb") as f:
                if since_start:
                    f.seek(self.log_mark)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, pattern, timeout=10, since=0):
        rx = re.compile(pattern)

        def found():
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
            # whole lines only: a line being written may show its head alone
            for line in text[:text.rfind("\n") + 1].splitlines():
                if rx.search(line):
                    return line
            return None

        try:
            return wait_for(found, timeout, f"{self.name} log line /{pattern}/")
        except AssertionError as e:
            # the other processes' last lines too: the cause is often on the other side
            others = "".join(f"\n---- {p.name} (last lines) ----\n{p.log_tail(15)}"
                             for p in self.h.procs if p is not self)
            raise AssertionError(f"{e}; log tail:\n{self.log_tail()}{others}") from None

    def check_sanitizers(self):
        bad = [ln for ln in self.log_text().splitlines() if SANITIZER_RE.search(ln)]
        assert not bad, f"sanitizer report in {self.log_path}:\n" + "\n".join(bad[:20])


class Cp(Proc):
    binary = CP_BIN
    kind = "cp"

    def __init__(self, harness, name, conf=None, env=None, certs=None, mtls="shared"):
        self.admin_port = harness.ports.get()
        self.cluster_port = harness.ports.get()
        certs = certs if certs is not None else harness.certs
        base = {
            "admin_listen": f"127.0.0.1:{self.admin_port}",
            "cluster_listen": f"127.0.0.1:{self.cluster_port}",
            "log_level": "info",
        }
        if mtls != "off":
            base["cluster_cert"] = certs[0]
            base["cluster_cert_key"] = certs[1]
        if mtls != "shared":
            base["cluster_mtls"] = mtls
        base.update(conf or {})
        super().__init__(harness, name, base, env)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.admin_port}"

    def wait_ready(self, timeout=20):
        def ready():
            self.check_alive()
            return self.get("/status").status == 200

        wait_for(ready, timeout, f"{self.name} admin API /status")

    # -- admin API

    def api(self, method, path, json_body=None, form=None, body=None, ctype=None):
        headers = {}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif isinstance(body, str):
            body = body.encode()
        if ctype is not None:
            headers["Content-Type"] = ctype
        return http(method, self.base + path, body, headers)

    def get(self, path):
        return self.api("GET", path)

    def ok(self, method, path, json_body=None, form=None, expect=(200, 201), settle=True):
        """A request that must succeed. A write also waits until the CP publishes the
        new configuration (its /status hash changes): the snapshot is rebuilt
        asynchronously after the commit. Pass settle=False for a write that changes
        nothing."""
        h0 = self.status_hash() if method != "GET" and settle else None
        r = self.api(method, path, json_body=json_body, form=form)
        assert r.status in (expect if isinstance(expect, tuple) else (expect,)), (
            f"{method} {path} -> {r.status} {r.raw[:500]!r}"
        )
        if h0 is not None:
            wait_for(lambda: self.status_hash() != h0, 10,
                     f"{self.name} to publish the configuration after {method} {path}")
        return r.json

    def status_hash(self):
        return self.get("/status").json["configuration_hash"]

    def service(self, name, port, host="127.0.0.1", **fields):
        body = {"name": name, "protocol": "tcp", "host": host, "port": port}
        body.update(fields)
        return self.ok("POST", "/services", json_body=body)

    def route(self, service, name=None, sources=None, destinations=None, **fields):
        body = {"protocols": ["tcp"], "service": {"id": service["id"]}}
        if name:
            body["name"] = name
        if sources is not None:
            body["sources"] = sources
        if destinations is not None:
            body["destinations"] = destinations
        body.update(fields)
        return self.ok("POST", "/routes", json_body=body)

    def data_planes(self):
        r = self.get("/clustering/data-planes")
        assert r.status == 200, r
        return r.json["data"]


class Dp(Proc):
    binary = DP_BIN
    kind = "dp"

    def __init__(self, harness, name, cp, listeners=1, conf=None, env=None, certs=None,
                 mtls="shared", listen_flags=None):
        # listen_flags: one entry per listener (None, or flags such as "ssl")
        self.status_port = harness.ports.get()
        self.listen_ports = [harness.ports.get() for _ in range(listeners)]
        flags = list(listen_flags or [])
        flags += [None] * (listeners - len(flags))
        certs = certs if certs is not None else harness.certs
        base = {
            "cluster_control_plane": f"127.0.0.1:{cp.cluster_port}",
            "stream_listen": ", ".join(f"127.0.0.1:{p}" + (f" {f}" if f else "")
                                       for p, f in zip(self.listen_ports, flags)),
            "status_listen": f"127.0.0.1:{self.status_port}",
            "log_level": "info",
        }
        if mtls != "off":
            base["cluster_cert"] = certs[0]
            base["cluster_cert_key"] = certs[1]
        if mtls != "shared":
            base["cluster_mtls"] = mtls
        base.update(conf or {})
        super().__init__(harness, name, base, env)
        self.cp = cp

    @property
    def port(self):
        return self.listen_ports[0]

    def status_get(self, path):
        return http("GET", f"http://127.0.0.1:{self.status_port}{path}", timeout=5)

    def status(self):
        r = self.status_get("/status")
        assert r.status == 200, r
        return r.json

    def is_ready(self):
        return self.status_get("/status/ready").status == 200

    def wait_ready(self, timeout=20):
        def ready():
            self.check_alive()
            return self.is_ready()

        wait_for(ready, timeout, f"{self.name} /status/ready = 200")

    def wait_status_up(self, timeout=20):
        """Waits until the status listener answers (ready or not)."""

        def up():
            self.check_alive()
            return self.status_get("/status").status == 200

        wait_for(up, timeout, f"{self.name} /status answering")

    def status_hash(self):
        return self.status()["configuration_hash"]

    def wait_hash(self, h, timeout=20):
        wait_for(lambda: self.status_hash() == h, timeout, f"{self.name} configuration_hash {h}")

    def wait_synced(self, timeout=20):
        """Waits until this DP's hash equals its CP's current hash; returns it."""
        h = self.cp.status_hash()
        self.wait_hash(h, timeout)
        return h

    def dp_id(self):
        with open(os.path.join(self.prefix, "strait.id")) as f:
            return f.read().strip()


# ----------------------------------------------------------------------------- echo


class EchoServer:
    """A threaded TCP echo upstream (on 127.0.0.1 unless host says another loopback
    address) that remembers what it received.

    Each connection gets back exactly its bytes; when the client half-closes, the
    server finishes and shuts its own write side. `conns` holds one record per
    connection: {"peer", "data" (bytes received), "eof" (saw the client's FIN)}."""

    def __init__(self, name="echo", port=0, host="127.0.0.1"):
        self.name = name
        self.conns = []
        self.lock = threading.Lock()
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                rec = {"peer": self.client_address, "data": bytearray(), "eof": False}
                with owner.lock:
                    owner.conns.append(rec)
                sock = self.request
                while True:
                    try:
                        d = sock.recv(65536)
                    except OSError:
                        return
                    if not d:
                        rec["eof"] = True
                        break
                    with owner.lock:
                        rec["data"] += d
                    try:
                        sock.sendall(d)
                    except OSError:
                        return
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            allow_reuse_address = True
            daemon_threads = True
            request_queue_size = 1024

        self.srv = Server((host, port), Handler)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def received(self):
        with self.lock:
            return b"".join(bytes(c["data"]) for c in self.conns)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


# ----------------------------------------------------------------------------- clients


def pinged(port, payload=b"ping\n", src=None):
    """One connection through a DP on 127.0.0.1:port (from src, if given): True when the
    payload came back."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(scaled(10))
    try:
        if src is not None:
            s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(payload)
        return recv_exact(s, len(payload)) == payload
    except (OSError, AssertionError):
        return False
    finally:
        s.close()


def free_port(st):
    """A port nothing listens on (claimed from the harness: no other test takes it)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    st.ports.claim(port)
    return port


def recv_exact(sock, n, timeout=10):
    sock.settimeout(scaled(timeout))
    buf = bytearray()
    while len(buf) < n:
        d = sock.recv(min(65536, n - len(buf)))
        if not d:
            raise AssertionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += d
    return bytes(buf)


def echo_once(port, payload=b"ping\n", timeout=10):
    """Connects to port, sends payload, returns what comes back (len(payload) bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout)) as s:
        s.sendall(payload)
        return recv_exact(s, len(payload), timeout)


def echoes(port, payload=b"ping\n"):
    try:
        return echo_once(port, payload, timeout=3) == payload
    except (OSError, AssertionError):
        return False


def closed_without_data(sock, timeout=10):
    """True when the peer closes (EOF or reset) without sending anything."""
    sock.settimeout(scaled(timeout))
    try:
        d = sock.recv(4096)
    except ConnectionResetError:
        return True
    except socket.timeout:
        raise AssertionError(f"connection still open after {scaled(timeout):.1f}s")
    assert d == b"", f"unexpected bytes from the proxy: {d!r}"
    return True


def is_refused_connection(port, payload=b"x"):
    """Connects and sends; True when the DP closes the connection without echoing."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
    except OSError:
        return True
    with s:
        try:
            s.sendall(payload)
        except OSError:
            return True
        return closed_without_data(s, timeout=5)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def binaries():
    for b in (CP_BIN, DP_BIN):
        if not os.access(b, os.X_OK):
            pytest.fail(f"{b} is missing: build first (STRAIT_BIN_DIR={BIN_DIR})")
    return CP_BIN, DP_BIN


def gen_cert(tmpdir, stem):
    cert = os.path.join(tmpdir, f"{stem}.crt")
    key = os.path.join(tmpdir, f"{stem}.key")
    r = subprocess.run(
        [CP_BIN, "cluster", "gen_cert", cert, key],
        capture_output=True,
        text=True,
        env=_child_env({}),
        timeout=scaled(30),
    )
    assert r.returncode == 0, f"gen_cert failed: {r.returncode} {r.stdout} {r.stderr}"
    assert os.path.exists(cert) and os.path.exists(key)
    return cert, key


@pytest.fixture(scope="session")
def cluster_certs(binaries, tmp_path_factory):
    """The cluster certificate pair, made once per session with `strait-cp cluster gen_cert`."""
    return gen_cert(str(tmp_path_factory.mktemp("certs")), "cluster")


@pytest.fixture(scope="session")
def foreign_certs(binaries, tmp_path_factory):
    """A second, unrelated pair: a data plane from another cluster."""
    return gen_cert(str(tmp_path_factory.mktemp("foreign")), "foreign")


class Harness:
    def __init__(self, tmp, ports, certs):
        self.tmp = tmp
        self.ports = ports
        self.certs = certs
        self.procs = []
        self.echos = []
        self.pg_dbs = []
        self.n = 0

    def _name(self, kind):
        self.n += 1
        return f"{kind}{self.n}"

    def cp(self, conf=None, env=None, start=True, **kw):
        # STRAIT_TEST_CP_DATABASE=postgres: every CP whose test does not pick a database
        # gets a fresh, bootstrapped Postgres one (to run any suite on that backend)
        if os.environ.get("STRAIT_TEST_CP_DATABASE") == "postgres" and \
                "database" not in (conf or {}):
            conf = dict(conf or {}, **self._pg_database())
        c = Cp(self, self._name("cp"), conf, env, **kw)
        self.procs.append(c)
        if start:
            c.start()
        return c

    def dp(self, cp, conf=None, env=None, start=True, wait=True, **kw):
        d = Dp(self, self._name("dp"), cp, conf=conf, env=env, **kw)
        self.procs.append(d)
        if start:
            d.start(wait=wait)
        return d

    def echo(self, name="echo"):
        e = EchoServer(name)
        self.ports.claim(e.port)
        self.echos.append(e)
        return e

    def tls_echo(self, cert, key, client_ca=None, name="tls-echo"):
        """A TLS echo upstream (TlsEchoServer) with its own certificate."""
        e = TlsEchoServer(cert, key, client_ca=client_ca, name=name)
        self.ports.claim(e.port)
        self.echos.append(e)
        return e

    def _pg_database(self):
        keys = pg_database_new()
        self.pg_dbs.append(keys["pg_database"])
        path = os.path.join(self.tmp, f"bootstrap-{keys['pg_database']}.conf")
        write_conf(path, dict(keys, cluster_mtls="off"))
        subprocess.run([CP_BIN, "migrations", "bootstrap", "-c", path, "-p", self.tmp],
                       check=True, capture_output=True, timeout=scaled(60), env=_child_env({}))
        return keys

    def teardown(self):
        errors = []
        # data planes first: they say goodbye to their control plane
        for p in sorted(self.procs, key=lambda p: 0 if isinstance(p, Dp) else 1):
            try:
                if p.expect_dead and not p.alive():
                    p.check_sanitizers()
                else:
                    p.stop()
            except AssertionError as e:
                errors.append(str(e))
        for e in self.echos:
            e.close()
        for name in self.pg_dbs:
            pg_psql("strait", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if errors:
            pytest.fail("teardown:\n" + "\n\n".join(errors), pytrace=False)


@pytest.fixture
def st(tmp_path, ports, cluster_certs):
    """The harness: st.cp(), st.dp(cp), st.echo(); stops and checks everything at the end."""
    h = Harness(str(tmp_path), ports, cluster_certs)
    yield h
    h.teardown()


@pytest.fixture
def echo(st):
    return st.echo()


@pytest.fixture
def cluster(st, echo):
    """A CP, a service to the echo upstream with a tcp route on the DP's first listener,
    and a DP (two listeners) that is ready and in sync."""
    cp = st.cp()
    dp = st.dp(cp, listeners=2, start=False)
    svc = cp.service("echo", echo.port)
    route = cp.route(svc, name="r-echo", destinations=[{"port": dp.port}])
    dp.start()
    dp.wait_synced()
    return cp, dp, svc, route


# ----------------------------------------------------------------------------- TLS (issue 3)
#
# A test PKI made with the openssl command line (session scope), a TLS echo upstream that
# records what each handshake carried (SNI, version, client certificate), and TLS clients:
# Python's ssl module and `openssl s_client` subprocesses.


def openssl_cli(*args, input=None, timeout=60):
    """Runs `openssl args...`; returns stdout (bytes when input is bytes, else text)."""
    binary = isinstance(input, bytes)
    r = subprocess.run(["openssl", *args], input=input, capture_output=True,
                       text=not binary, timeout=scaled(timeout))
    err = r.stderr.decode(errors="replace") if binary else r.stderr
    assert r.returncode == 0, f"openssl {' '.join(args)}: {err}"
    return r.stdout


def read_text(path):
    with open(path) as f:
        return f.read()


def pem_to_der(path):
    """The DER bytes of the first certificate of a PEM file."""
    pem = read_text(path)
    end = "-----END CERTIFICATE-----"
    first = pem[: pem.index(end) + len(end)] + "\n"
    return ssl.PEM_cert_to_DER_cert(first)


def cert_subject(der):
    """`CN=...,O=...` (RFC 2253, most specific first) of a DER certificate."""
    out = openssl_cli("x509", "-inform", "DER", "-noout", "-subject", "-nameopt", "RFC2253",
                      input=der)
    return out.decode().strip().split("=", 1)[1]


def cert_key_type(der):
    """'rsa' or 'ec': the public key algorithm of a DER certificate."""
    out = openssl_cli("x509", "-inform", "DER", "-noout", "-text", input=der).decode()
    if "rsaEncryption" in out:
        return "rsa"
    if "id-ecPublicKey" in out:
        return "ec"
    raise AssertionError(f"unknown key type in:\n{out[:2000]}")


class Pki:
    """Keys and certificates made with the openssl CLI, memoised by stem.

    ca(stem): a self-signed CA (basicConstraints CA:TRUE). leaf(stem, cn, sans, kind, ca):
    a leaf signed by that CA with subjectAltName (DNS:<cn> when sans is None) and
    serverAuth+clientAuth. self_signed(stem, cn, sans, kind): a self-signed leaf.
    Each returns (cert_path, key_path); kind is "rsa" (2048) or "ec" (P-256)."""

    def __init__(self, folder):
        self.d = folder
        self.made = {}
        self.serial = 1000

    def _path(self, stem, ext):
        return os.path.join(self.d, f"{stem}.{ext}")

    def _key(self, stem, kind):
        key = self._path(stem, "key")
        if kind == "rsa":
            openssl_cli("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", key)
        else:
            openssl_cli("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", key)
        return key

    @staticmethod
    def _subj(cn, org):
        return f"/CN={cn}" + (f"/O={org}" if org else "")

    def ca(self, stem="ca", cn=None, kind="ec"):
        if stem in self.made:
            return self.made[stem]
        key = self._key(stem, kind)
        cert = self._path(stem, "crt")
        openssl_cli("req", "-x509", "-new", "-key", key, "-out", cert, "-days", "30",
                    "-subj", self._subj(cn or f"Strait Test {stem}", None),
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.made[stem] = (cert, key)
        return cert, key

    def _ext(self, stem, sans):
        ext = self._path(stem, "ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n")
            f.write("extendedKeyUsage=serverAuth,clientAuth\n")
            f.write("subjectKeyIdentifier=hash\n")
            if sans:
                f.write("subjectAltName=" + ",".join(sans) + "\n")
        return ext

    def leaf(self, stem, cn, sans=None, kind="ec", ca="ca", org=None):
        if stem in self.made:
            return self.made[stem]
        ca_cert, ca_key = self.ca(ca)
        sans = [f"DNS:{cn}"] if sans is None else sans
        key = self._key(stem, kind)
        csr = self._path(stem, "csr")
        cert = self._path(stem, "crt")
        openssl_cli("req", "-new", "-key", key, "-out", csr, "-subj", self._subj(cn, org))
        self.serial += 1
        openssl_cli("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
                    "-set_serial", str(self.serial), "-days", "30", "-out", cert,
                    "-extfile", self._ext(stem, sans))
        self.made[stem] = (cert, key)
        return cert, key

    def self_signed(self, stem, cn, sans=None, kind="ec", org=None):
        if stem in self.made:
            return self.made[stem]
        sans = [f"DNS:{cn}"] if sans is None else sans
        key = self._key(stem, kind)
        cert = self._path(stem, "crt")
        self.serial += 1
        openssl_cli("req", "-x509", "-new", "-key", key, "-out", cert, "-days", "30",
                    "-subj", self._subj(cn, org), "-set_serial", str(self.serial),
                    "-addext", "basicConstraints=critical,CA:FALSE",
                    "-addext", "subjectAltName=" + ",".join(sans))
        self.made[stem] = (cert, key)
        return cert, key


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return Pki(str(tmp_path_factory.mktemp("pki")))


class TlsEchoServer:
    """A threaded TLS echo upstream on 127.0.0.1 with its own certificate.

    client_ca: when set, a client certificate signed by it is required. `conns` holds one
    record per connection: {"peer", "sni" (None when the client sent none), "version",
    "client_cert" (DER or None), "error" (the failed handshake, or None), "data", "eof"}."""

    def __init__(self, cert, key, client_ca=None, name="tls-echo"):
        self.name = name
        self.conns = []
        self.lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)

        def on_sni(sslsock, server_name, _ctx):
            sslsock.strait_sni = server_name
            return None

        ctx.sni_callback = on_sni
        self.ctx = ctx
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                rec = {"peer": self.client_address, "sni": None, "version": None,
                       "client_cert": None, "error": None, "data": bytearray(), "eof": False}
                with owner.lock:
                    owner.conns.append(rec)
                raw = self.request
                raw.settimeout(scaled(10))
                try:
                    tls = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
                    tls.do_handshake()
                except (ssl.SSLError, OSError) as e:
                    rec["error"] = repr(e)
                    return
                rec["sni"] = getattr(tls, "strait_sni", None)
                rec["version"] = tls.version()
                rec["client_cert"] = tls.getpeercert(binary_form=True)
                tls.settimeout(None)
                while True:
                    try:
                        d = tls.recv(65536)
                    except (ssl.SSLError, OSError):
                        break
                    if not d:
                        rec["eof"] = True
                        break
                    with owner.lock:
                        rec["data"] += d
                    try:
                        tls.sendall(d)
                    except (ssl.SSLError, OSError):
                        break
                try:
                    tls.unwrap()
                except (ssl.SSLError, OSError, ValueError):
                    pass

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True
            request_queue_size = 256

        self.srv = Server(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def handshakes(self):
        """The records of the connections whose handshake completed."""
        with self.lock:
            return [c for c in self.conns if c["version"] is not None]

    def received(self):
        with self.lock:
            return b"".join(bytes(c["data"]) for c in self.conns)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def tls_client_ctx(version=None, ciphers=None, cafile=None, cert=None, key=None):
    """A client SSLContext. version: None (1.2 and 1.3), "1.2" or "1.3" (only that one).
    With cafile the server's certificate is verified against it (and its name checked);
    without, anything is accepted and the test inspects what was served."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if version == "1.2":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif version == "1.3":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def tls_connect(port, sni, ctx=None, session=None, timeout=10):
    """A TCP connection to 127.0.0.1:port with a completed TLS handshake (SNI `sni`, none
    when None). Raises ssl.SSLError / OSError when the handshake fails."""
    ctx = ctx or tls_client_ctx()
    raw = socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout))
    try:
        return ctx.wrap_socket(raw, server_hostname=sni, session=session)
    except BaseException:
        raw.close()
        raise


def tls_recv_exact(sock, n, timeout=10):
    sock.settimeout(scaled(timeout))
    buf = bytearray()
    while len(buf) < n:
        d = sock.recv(min(65536, n - len(buf)))
        if not d:
            raise AssertionError(f"TLS connection closed after {len(buf)} of {n} bytes")
        buf += d
    return bytes(buf)


def tls_echo(port, sni, payload=b"ping\n", ctx=None, session=None, timeout=10):
    """One TLS session through the proxy: handshake, send payload, read it back. Returns
    {"echo", "cert" (DER served), "version", "cipher", "reused", "session", "cport" (the
    client's port, as the DP logs it)}."""
    with tls_connect(port, sni, ctx=ctx, session=session, timeout=timeout) as s:
        s.sendall(payload)
        got = tls_recv_exact(s, len(payload), timeout)
        return {"echo": got, "cert": s.getpeercert(binary_form=True), "version": s.version(),
                "cipher": s.cipher()[0], "reused": s.session_reused, "session": s.session,
                "cport": s.getsockname()[1]}


def served_cert(port, sni, ctx=None, timeout=10):
    """The DER certificate served for `sni` (handshake only)."""
    with tls_connect(port, sni, ctx=ctx, timeout=timeout) as s:
        return s.getpeercert(binary_form=True)


def client_hello(sni="hello.example.test", version=None):
    """The bytes of a real ClientHello (Python's ssl, through memory BIOs)."""
    ctx = tls_client_ctx(version=version)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = out.read()
    assert data[:1] == b"\x16" and len(data) > 100, data[:16]
    return data


class SClient:
    def __init__(self, rc, out, err):
        self.rc = rc
        self.out = out
        self.err = err

    @property
    def established(self):
        return "CONNECTION ESTABLISHED" in self.err

    def __repr__(self):
        return f"<s_client rc={self.rc} out={self.out[:200]!r} err={self.err[-1500:]}>"


def s_client(port, *args, payload=b"hello through strait\n", timeout=10):
    """`openssl s_client -connect 127.0.0.1:port -brief args...`: writes payload once the
    process runs and keeps stdin open until the payload came back (or the process ended,
    or the scaled deadline passed), then closes stdin. Returns SClient(rc, out, err):
    out is what the server sent (the echo), err the -brief summary (`CONNECTION
    ESTABLISHED`, `Protocol version: ...`, `Peer certificate: ...`)."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief",
                          *args],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_child_env({}))
    out, err = bytearray(), bytearray()

    def pump(src, dst):
        while True:
            d = src.read1(65536) if hasattr(src, "read1") else src.read(65536)
            if not d:
                return
            dst += d

    threads = [threading.Thread(target=pump, args=(p.stdout, out), daemon=True),
               threading.Thread(target=pump, args=(p.stderr, err), daemon=True)]
    for t in threads:
        t.start()
    try:
        p.stdin.write(payload)
        p.stdin.flush()
    except OSError:
        pass
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if payload and payload in bytes(out):
            break
        if p.poll() is not None:
            break
        time.sleep(0.02)
    try:
        p.stdin.close()
    except OSError:
        pass
    try:
        p.wait(timeout=scaled(5))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    for t in threads:
        t.join(timeout=scaled(5))
    return SClient(p.returncode, bytes(out), err.decode(errors="replace"))


# ----------------------------------------------------------------------------- postgres
# Issue 6: the throwaway server scripts/test.sh starts (scripts/pg-temp.sh) and exports as
# STRAIT_TEST_PG_{HOST,PORT,USER,DIR,BIN}. Tests needing it fail without it: never skip.

PG_NO_SERVER = "no test Postgres: run through scripts/test.sh"


def _pg_env():
    port = os.environ.get("STRAIT_TEST_PG_PORT")
    if not port:
        pytest.fail(PG_NO_SERVER, pytrace=False)
    return {
        "host": os.environ.get("STRAIT_TEST_PG_HOST") or "127.0.0.1",
        "port": int(port),
        "user": os.environ.get("STRAIT_TEST_PG_USER") or "strait",
        "dir": os.environ.get("STRAIT_TEST_PG_DIR") or "",
        "bin": os.environ.get("STRAIT_TEST_PG_BIN") or "/usr/lib/postgresql/15/bin",
    }


def pg_psql(dbname, sql, check=True, timeout=30):
    """Runs sql with psql on the test server as its superuser `strait`; returns stdout
    (unaligned, tuples only: one row a line, columns separated by |)."""
    e = _pg_env()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "5"
    p = subprocess.run(
        [os.path.join(e["bin"], "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
         "-h", e["host"], "-p", str(e["port"]), "-U", e["user"], "-d", dbname, "-c", sql],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
        timeout=scaled(timeout))
    if check and p.returncode != 0:
        raise AssertionError(f"psql -d {dbname} -c {sql!r} exited {p.returncode}: "
                             f"{p.stderr.strip()}")
    return p.stdout


def pg_ctl(action, timeout=60):
    """Stops ("stop", fast), starts ("start") or restarts ("restart") the test server
    (outage tests), waiting until done; runs as user postgres when we are root."""
    e = _pg_env()
    if not e["dir"]:
        pytest.fail("STRAIT_TEST_PG_DIR is unset: " + PG_NO_SERVER, pytrace=False)
    data = os.path.join(e["dir"], "data")
    cmd = [os.path.join(e["bin"], "pg_ctl"), "-D", data, "-w", "-t", str(int(scaled(timeout)))]
    if action == "stop":
        cmd += ["-m", "fast", "stop"]
    elif action in ("start", "restart"):
        cmd += ["-l", os.path.join(e["dir"], "pg.log")]
        if action == "restart":
            cmd += ["-m", "fast"]
        cmd += [action]
    else:
        raise ValueError(f"pg_ctl: unknown action {action!r}")
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=scaled(timeout) + 10)
    if p.returncode != 0:
        raise AssertionError(f"pg_ctl {action} exited {p.returncode}: "
                             f"{(p.stdout + p.stderr).strip()}")


def pg_is_running():
    """Whether the test server accepts connections (pg_isready)."""
    e = _pg_env()
    p = subprocess.run([os.path.join(e["bin"], "pg_isready"), "-q", "-h", e["host"], "-p",
                        str(e["port"]), "-t", "5"], stdin=subprocess.DEVNULL,
                       capture_output=True)
    return p.returncode == 0


def pg_database_new():
    """Creates a fresh, empty database on the test server; returns the CP conf keys that
    point at it."""
    e = _pg_env()
    name = "strait_t" + os.urandom(6).hex()
    pg_psql("strait", f"CREATE DATABASE {name}")
    return {
        "database": "postgres",
        "pg_host": e["host"],
        "pg_port": e["port"],
        "pg_user": e["user"],
        "pg_database": name,
    }


def pg_bootstrap(keys, tmp):
    """`strait-cp migrations bootstrap` on the database of keys (the pg fixture's)."""
    path = os.path.join(str(tmp), "migrations.conf")
    write_conf(path, dict(keys, cluster_mtls="off"))
    r = subprocess.run([CP_BIN, "migrations", "bootstrap", "-c", path, "-p", str(tmp)],
                       capture_output=True, text=True, env=_child_env({}), timeout=scaled(60))
    assert r.returncode == 0, (r.stdout, r.stderr)


@pytest.fixture
def pg():
    """A fresh, empty database on the test server; yields the CP conf keys that point at
    it. Dropped afterwards (WITH (FORCE): CPs still connected are cut off). A test that
    stopped the server and failed before starting it again gets it started here."""
    keys = pg_database_new()
    name = keys["pg_database"]
    try:
        yield keys
    finally:
        if not pg_is_running():
            pg_ctl("start")
        pg_psql("strait", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
