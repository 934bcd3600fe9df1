"""Runs Strait the way a deploy artefact says (issue 17): a unit's ExecStart, a chart's or
a compose service's command, environment and files, with the binaries of this build
($STRAIT_BIN_DIR) in place of the installed ones. `check()` runs the plane's `check`
command on exactly that; `Plane` starts it (stdout and stderr to a log file) and stops it
with a signal; `route_traffic()` makes a service and a route through the CP's admin API
and passes bytes through the DP to an echo server on loopback.

What a test must change to run on one machine beside others (the ports, an address that
names another host, a path that only exists in the image) it passes as `overrides`:
STRAIT_<KEY> variables, which win over the file, as in production. Everything else runs
as written."""

import json
import os
import signal
import socket
import socketserver
import subprocess
import threading
import time
import urllib.error
import urllib.request

BIN_DIR = os.environ.get("STRAIT_BIN_DIR", "build")
MULT = float(os.environ.get("STRAIT_TEST_TIMEOUT_MULT", "1"))


def scaled(seconds):
    return seconds * MULT


def binary(argv0):
    """This build's strait-cp or strait-dp for an installed path such as
    /usr/local/bin/strait-dp."""
    name = os.path.basename(argv0)
    sub = {"strait-cp": "control-plane", "strait-dp": "data-plane"}.get(name)
    if sub is None:
        raise ValueError(f"not a Strait binary: {argv0!r}")
    return os.path.join(os.path.abspath(BIN_DIR), sub, name)


def local_argv(argv):
    return [binary(argv[0])] + list(argv[1:])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _env(env, overrides):
    out = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"):
        if k in os.environ:
            out[k] = os.environ[k]
    out.update(env or {})
    out.update(overrides or {})
    return out


def check(argv, env=None, overrides=None, cwd=None):
    """The plane's `check` on argv (`<binary> start|check ...`: start becomes check):
    returns the CompletedProcess (returncode 0: valid)."""
    a = local_argv(argv)
    if len(a) < 2 or a[1] not in ("start", "check"):
        raise ValueError(f"expected '<binary> start|check ...', got {argv!r}")
    a[1] = "check"
    return subprocess.run(a, env=_env(env, overrides), cwd=cwd, capture_output=True,
                          text=True, timeout=scaled(30))


def http(method, url, body=None, headers=None, timeout=5):
    """(status, parsed JSON or text) of one request; (0, error) when nothing answered."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    except OSError as e:
        return 0, str(e)
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Plane:
    """One strait-cp or strait-dp process started from argv/env (+ overrides)."""

    def __init__(self, argv, env=None, overrides=None, cwd=None, log=None):
        self.argv = local_argv(argv)
        self.log_path = log or os.path.join(cwd or ".", os.path.basename(argv[0]) + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, env=_env(env, overrides), cwd=cwd,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_http(self, url, status=200, timeout=20):
        def up():
            if not self.alive():
                raise AssertionError(f"{self.argv[0]} exited {self.proc.returncode}:\n"
                                     f"{self.output()}")
            return http("GET", url)[0] == status

        wait_for(up, timeout, f"{url} answering {status}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends sig and returns the exit code (killed after timeout s: AssertionError)."""
        if self.alive():
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.argv[0]} did not stop on {sig!r}:\n{self.output()}")
        finally:
            self.log.close()


class Echo:
    """A TCP echo server on 127.0.0.1."""

    def __init__(self):
        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                while True:
                    d = self.request.recv(65536)
                    if not d:
                        return
                    self.request.sendall(d)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.srv = Server(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def echoed(port, payload=b"through strait\n"):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=scaled(5)) as s:
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                d = s.recv(65536)
                if not d:
                    break
                got += d
            return got == payload
    except OSError:
        return False


def route_traffic(admin, stream_port, headers=None, name="deploy-check"):
    """Creates a service to a fresh echo server and a tcp route on stream_port through the
    admin API at `admin` (http://127.0.0.1:PORT), then waits until bytes sent to the DP's
    stream_port come back. Returns the echo server (close it)."""
    e = Echo()
    st, svc = http("POST", f"{admin}/services", {"name": name, "host": "127.0.0.1",
                                                 "port": e.port}, headers)
    assert st == 201, (st, svc)
    st, r = http("POST", f"{admin}/routes", {"name": name, "protocols": ["tcp"],
                                             "service": {"id": svc["id"]},
                                             "destinations": [{"port": stream_port}]}, headers)
    assert st == 201, (st, r)
    wait_for(lambda: echoed(stream_port), 20, f"bytes through the DP on {stream_port}")
    return e


def pg_database():
    """A fresh, empty database on the test run's Postgres (scripts/pg-temp.sh's
    STRAIT_TEST_PG_* variables): the STRAIT_PG_* / STRAIT_DATABASE variables that point a
    CP at it."""
    port = os.environ.get("STRAIT_TEST_PG_PORT")
    if not port:
        raise AssertionError("no test Postgres: run through scripts/test.sh, or start one "
                             "with scripts/pg-temp.sh and source its output")
    host = os.environ.get("STRAIT_TEST_PG_HOST") or "127.0.0.1"
    user = os.environ.get("STRAIT_TEST_PG_USER") or "strait"
    psql = os.path.join(os.environ.get("STRAIT_TEST_PG_BIN") or "/usr/lib/postgresql/15/bin",
                        "psql")
    name = "strait_d" + os.urandom(6).hex()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port,
                    "-U", user, "-d", "strait", "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True, env=env, timeout=scaled(30))
    return {"STRAIT_DATABASE": "postgres", "STRAIT_PG_HOST": host, "STRAIT_PG_PORT": port,
            "STRAIT_PG_USER": user, "STRAIT_PG_DATABASE": name}


def gen_cert(folder):
    """A shared cluster pair from this build's `strait-cp cluster gen_cert`: (crt, key)."""
    crt, key = os.path.join(folder, "cluster.crt"), os.path.join(folder, "cluster.key")
    subprocess.run([binary("strait-cp"), "cluster", "gen_cert", crt, key], check=True,
                   capture_output=True, timeout=scaled(30))
    return crt, key
