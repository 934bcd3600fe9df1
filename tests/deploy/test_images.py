# Guards issue 17, point 1 (images): deploy/docker/Dockerfile builds, from a base image
# bootstrapped here from the Debian archive (mmdebstrap --variant=minbase bookworm,
# imported as debian:bookworm-slim), an image whose strait-cp and strait-dp run as a
# non-root user with nothing missing from their libraries and no build tools; a CP and a
# DP from the image pass traffic on loopback through a route; the entrypoint turns
# STRAIT_<KEY>_FILE into STRAIT_<KEY> for every key the binaries know (both set: refused,
# naming the key, as Kong's image does); the HEALTHCHECK command sees a live plane; a CP
# and a DP stopped with the image's STOPSIGNAL exit 0.
#
# No container daemon in CI: podman builds with chroot isolation and buildah runs the
# image (`buildah run --isolation chroot --network host`; no PID namespace, so a
# container's process is found as a child of its `buildah run`, and the stop signal is
# sent to it as a runtime sends it to a container's PID 1). The base tarball is kept in
# $STRAIT_DEPLOY_CACHE/images/, and the image is built once per run (session fixture).
# The entrypoint's key list is also checked against the binaries of this build and
# docs/configuration.md without the image, so a key added without its table entry fails.

import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN_DIR = os.path.abspath(os.environ.get("STRAIT_BIN_DIR", os.path.join(TOP, "build")))
CP_BIN = os.path.join(BIN_DIR, "control-plane", "strait-cp")
DP_BIN = os.path.join(BIN_DIR, "data-plane", "strait-dp")
CACHE = os.path.abspath(os.environ.get("STRAIT_DEPLOY_CACHE", os.path.join(TOP, ".deploy-cache")))
MULT = float(os.environ.get("STRAIT_TEST_TIMEOUT_MULT", "1"))
ENTRYPOINT = os.path.join(TOP, "deploy", "docker", "entrypoint.sh")
IMAGE = "localhost/strait:deploy-test"
BASE = "debian:bookworm-slim"
UID = 10001  # the image's user (Dockerfile); mounted files are made readable for it
BUILD_FLAGS = ["--isolation", "chroot", "--cgroup-manager=cgroupfs", "--network", "host"]
RUN_FLAGS = ["--isolation", "chroot", "--network", "host"]


def scaled(s):
    return s * MULT


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {scaled(timeout):.0f}s waiting for {what}")


def run(argv, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=scaled(timeout),
                          stdin=subprocess.DEVNULL, **kw)


def must(argv, timeout=60, **kw):
    r = run(argv, timeout=timeout, **kw)
    assert r.returncode == 0, f"{' '.join(argv)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method, url, body=None, headers=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return 0, str(e).encode()


# -- the keys, from three sources that must agree

def help_keys(binary):
    out = must([binary, "--help"])
    table = out.split("Configuration keys", 1)[1]
    return set(re.findall(r"^  ([a-z][a-z0-9_]*) = ", table, re.M))


def doc_keys():
    with open(os.path.join(TOP, "docs", "configuration.md")) as f:
        return set(re.findall(r"^\| `([a-z][a-z0-9_]*)` \|", f.read(), re.M))


def test_help_tables_list_every_documented_key():
    # The entrypoint reads the key list from the binaries' --help tables: a key missing
    # there would not be read from STRAIT_<KEY>_FILE.
    keys = help_keys(CP_BIN) | help_keys(DP_BIN)
    assert len(keys) > 40, sorted(keys)
    assert keys == doc_keys(), (f"--help only: {sorted(keys - doc_keys())}; "
                                f"docs/configuration.md only: {sorted(doc_keys() - keys)}")


def entrypoint_env(tmp_path, env, argv=("env", "-0")):
    path = f"{os.path.dirname(CP_BIN)}:{os.path.dirname(DP_BIN)}:/usr/bin:/bin"
    return run(["bash", ENTRYPOINT, *argv], env=dict(env, PATH=path), cwd=tmp_path)


def test_entrypoint_reads_every_key_from_its_file(tmp_path):
    keys = sorted(help_keys(CP_BIN) | help_keys(DP_BIN))
    env = {}
    for k in keys:
        f = tmp_path / f"{k}.secret"
        f.write_text(f"value of {k}\n")  # a trailing newline is not part of the value
        env[f"STRAIT_{k.upper()}_FILE"] = str(f)
    env["STRAIT_NOT_A_KEY_FILE"] = "/nonexistent"  # not a key: left alone
    r = entrypoint_env(tmp_path, env)
    assert r.returncode == 0, r.stderr
    got = dict(kv.split("=", 1) for kv in r.stdout.split("\0") if "=" in kv)
    for k in keys:
        assert got.get(f"STRAIT_{k.upper()}") == f"value of {k}", (k, got)
        assert f"STRAIT_{k.upper()}_FILE" not in got, k
    assert got.get("STRAIT_NOT_A_KEY_FILE") == "/nonexistent"


@pytest.mark.parametrize("key", ["admin_token", "cluster_control_plane", "pg_password"])
def test_entrypoint_refuses_both_naming_the_key(tmp_path, key):
    f = tmp_path / "secret"
    f.write_text("s3cret")
    var = f"STRAIT_{key.upper()}"
    r = entrypoint_env(tmp_path, {var: "x", f"{var}_FILE": str(f)}, argv=("true",))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.strip() == f"error: both {var} and {var}_FILE are set (but are exclusive)"


def test_entrypoint_refuses_an_unreadable_file(tmp_path):
    r = entrypoint_env(tmp_path, {"STRAIT_ADMIN_TOKEN_FILE": str(tmp_path / "missing")},
                       argv=("true",))
    assert r.returncode == 1 and "STRAIT_ADMIN_TOKEN_FILE" in r.stderr, r.stderr


# -- the image

def base_tarball():
    d = os.path.join(CACHE, "images")
    os.makedirs(d, exist_ok=True)
    tar = os.path.join(d, "debian-bookworm-minbase.tar")
    if not os.path.exists(tar):
        # like debian:bookworm-slim: minbase, merged /usr without the usrmerge package,
        # no docs, man pages or locales
        tmp = tar[:-len(".tar")] + ".part.tar"
        must(["mmdebstrap", "--variant=minbase", "--format=tar", "--quiet",
              "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
              "--dpkgopt=path-exclude=/usr/share/doc/*",
              "--dpkgopt=path-include=/usr/share/doc/*/copyright",
              "--dpkgopt=path-exclude=/usr/share/man/*",
              "--dpkgopt=path-exclude=/usr/share/locale/*",
              "--dpkgopt=path-exclude=/usr/share/info/*",
              "bookworm", tmp], timeout=900)
        os.rename(tmp, tar)
    return tar


@pytest.fixture(scope="session")
def image():
    """The image built from deploy/docker/Dockerfile (once per run); its config."""
    for tool in ("mmdebstrap", "podman", "buildah"):
        assert shutil.which(tool), f"{tool} missing: run tests/deploy/setup-images.sh"
    if run(["podman", "image", "exists", BASE]).returncode != 0:
        must(["podman", "import", base_tarball(), BASE], timeout=300)
    # docker format: the OCI format has no HEALTHCHECK
    must(["podman", "build", *BUILD_FLAGS, "--format", "docker", "-f",
          os.path.join(TOP, "deploy", "docker", "Dockerfile"), "-t", IMAGE, TOP], timeout=1800)
    out = json.loads(must(["podman", "image", "inspect", IMAGE]))[0]
    return dict(out["Config"], Healthcheck=out.get("Healthcheck"))


class Container:
    """A working container of the image (buildah from); run() starts a command in it."""

    def __init__(self, tmp):
        self.name = f"strait-test-{uuid.uuid4().hex[:12]}"
        self.tmp = tmp
        must(["buildah", "from", "--name", self.name, IMAGE])
        self.procs = []

    def argv(self, cmd, env=None, volumes=None):
        a = ["buildah", "run", *RUN_FLAGS]
        for k, v in (env or {}).items():
            a += ["-e", f"{k}={v}"]
        for host, ctr in (volumes or {}).items():
            a += ["-v", f"{host}:{ctr}:ro"]
        return a + [self.name, "--", *cmd]

    def exec(self, cmd, env=None, volumes=None, timeout=60):
        return run(self.argv(cmd, env, volumes), timeout=timeout)

    def start(self, cmd, env=None, volumes=None, comm=None):
        """Starts cmd in the background; returns (Popen of buildah run, log path, pid of
        the process named comm inside, once it runs)."""
        log = os.path.join(self.tmp, f"{self.name}-{len(self.procs)}.log")
        with open(log, "wb") as f:
            p = subprocess.Popen(self.argv(cmd, env, volumes), stdout=f, stderr=f,
                                 stdin=subprocess.DEVNULL)
        self.procs.append(p)
        pid = None
        if comm:
            def found():
                if p.poll() is not None:
                    raise AssertionError(f"{cmd} exited {p.returncode}:\n{read(log)}")
                return descendant(p.pid, comm)
            pid = wait_for(found, 60, f"{comm} running in {self.name}")
        return p, log, pid

    def remove(self):
        for p in self.procs:
            if p.poll() is None:
                for d in descendants(p.pid):
                    kill(d, signal.SIGKILL)
                p.kill()
                p.wait(timeout=30)
        run(["buildah", "rm", self.name])


def read(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def children_map():
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        out.setdefault(ppid, []).append((int(d), comm))
    return out


def descendants(pid):
    kids, todo, out = children_map(), [pid], []
    while todo:
        for c, _ in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def descendant(pid, comm):
    """The process named comm running `start` under pid (not the entrypoint's --help)."""
    kids, todo = children_map(), [pid]
    while todo:
        for c, name in kids.get(todo.pop(), []):
            if name == comm and b"start" in cmdline(c)[1:2]:
                return c
            todo.append(c)
    return None


@pytest.fixture
def containers(image, tmp_path):
    made = []

    def make():
        c = Container(str(tmp_path))
        made.append(c)
        return c

    yield make
    for c in made:
        c.remove()


@pytest.fixture
def etc(tmp_path):
    """A folder mounted as /etc/strait: the cluster pair and the secrets, owned by the
    image's user (as a Kubernetes secret with fsGroup, or a compose secret, would be)."""
    d = tmp_path / "etc"
    d.mkdir()
    must([CP_BIN, "cluster", "gen_cert", str(d / "cluster.crt"), str(d / "cluster.key")])
    (d / "admin-token").write_text("t0ken-from-a-file\n")
    os.chmod(d, 0o755)
    for f in d.iterdir():
        os.chown(f, UID, UID)
    return d


def test_image_config(image):
    assert image["User"] == f"{UID}:{UID}", image["User"]
    assert image["StopSignal"] == "SIGQUIT", image["StopSignal"]
    hc = image["Healthcheck"] or {}
    assert hc.get("Test") == ["CMD", "strait-healthcheck"], hc
    assert image["Entrypoint"] == ["/usr/local/bin/docker-entrypoint.sh"], image["Entrypoint"]
    assert "STRAIT_PREFIX=/var/lib/strait" in image["Env"], image["Env"]


def test_image_holds_the_binaries_with_their_libraries_only(containers):
    c = containers()
    r = c.exec(["sh", "-c", "ldd /usr/local/bin/strait-cp /usr/local/bin/strait-dp"])
    assert r.returncode == 0 and "not found" not in r.stdout, r.stdout + r.stderr
    r = c.exec(["sh", "-c", "id -u; test -w /var/lib/strait && echo writable; "
                            "dpkg-query -W -f '${Package}\\n'"])
    lines = r.stdout.split()
    assert lines[0] == str(UID) and lines[1] == "writable", r.stdout + r.stderr
    build_only = [p for p in lines[2:] if p.endswith("-dev") or p in
                  ("gcc", "cmake", "make", "pkg-config", "protobuf-c-compiler", "curl")]
    assert not build_only, build_only
    # the entrypoint in the image is this tree's
    r = c.exec(["cat", "/usr/local/bin/docker-entrypoint.sh"])
    assert r.stdout == read(ENTRYPOINT)


class Echo:
    def __init__(self):
        class H(socketserver.BaseRequestHandler):
            def handle(self):
                while True:
                    b = self.request.recv(65536)
                    if not b:
                        return
                    self.request.sendall(b)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def echoes(port, payload=b"through the image\n"):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                b = s.recv(65536)
                if not b:
                    break
                got += b
            return got == payload
    except OSError:
        return False


def stop(p, pid, sig, log):
    os.kill(pid, sig)
    try:
        return p.wait(timeout=scaled(30))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"not stopped by {sig!r}:\n{read(log)}")


def start_cp(containers, etc, admin_port, cluster_port):
    c = containers()
    env = {"STRAIT_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
           "STRAIT_CLUSTER_LISTEN": f"127.0.0.1:{cluster_port}",
           "STRAIT_CLUSTER_CERT": "/etc/strait/cluster.crt",
           "STRAIT_CLUSTER_CERT_KEY": "/etc/strait/cluster.key",
           "STRAIT_ADMIN_TOKEN_FILE": "/etc/strait/admin-token"}
    p, log, pid = c.start(["/usr/local/bin/docker-entrypoint.sh", "strait-cp", "start"],
                          env, {str(etc): "/etc/strait"}, comm="strait-cp")
    base = f"http://127.0.0.1:{admin_port}"

    def up():
        assert p.poll() is None, f"strait-cp exited {p.returncode}:\n{read(log)}"
        return http("GET", base + "/status")[0] == 401

    wait_for(up, 30, "the CP's admin API")
    return c, p, log, pid, base


def test_cp_and_dp_from_the_image_pass_traffic(image, containers, etc):
    admin, cluster, stream, status = free_port(), free_port(), free_port(), free_port()
    cp, cp_p, cp_log, cp_pid, base = start_cp(containers, etc, admin, cluster)
    token = {"Kong-Admin-Token": "t0ken-from-a-file"}  # read from STRAIT_ADMIN_TOKEN_FILE
    assert http("GET", base + "/status")[0] == 401
    assert http("GET", base + "/status", headers=token)[0] == 200

    # the DP: its listeners in a mounted strait.conf, its control plane from a _FILE
    (etc / "dp.conf").write_text(f"stream_listen = 127.0.0.1:{stream}\n"
                                 f"status_listen = 0.0.0.0:{status}\n"
                                 "cluster_cert = /etc/strait/cluster.crt\n"
                                 "cluster_cert_key = /etc/strait/cluster.key\n")
    (etc / "cp-address").write_text(f"127.0.0.1:{cluster}")
    dp = containers()
    dp_p, dp_log, dp_pid = dp.start(
        ["/usr/local/bin/docker-entrypoint.sh", "strait-dp", "start", "-c",
         "/etc/strait/dp.conf"],
        {"STRAIT_CLUSTER_CONTROL_PLANE_FILE": "/etc/strait/cp-address"},
        {str(etc): "/etc/strait"}, comm="strait-dp")
    wait_for(lambda: http("GET", f"http://127.0.0.1:{status}/status/ready")[0] == 200,
             30, f"the DP ready:\n{read(dp_log)}")

    echo = Echo()
    try:
        st, body = http("POST", base + "/services", {"name": "echo", "protocol": "tcp",
                                                      "host": "127.0.0.1", "port": echo.port},
                        headers=token)
        assert st == 201, body
        st, body = http("POST", base + "/services/echo/routes",
                        {"name": "r", "protocols": ["tcp"],
                         "destinations": [{"port": stream}]}, headers=token)
        assert st == 201, body
        wait_for(lambda: echoes(stream), 30, f"traffic through the DP:\n{read(dp_log)}")
    finally:
        echo.close()

    # the HEALTHCHECK command, in each container, on the running plane
    for c, pid, log in ((dp, dp_pid, dp_log), (cp, cp_pid, cp_log)):
        r = c.exec(["strait-healthcheck", str(pid)])
        assert r.returncode == 0, (r.stdout, r.stderr, read(log))

    sig = signal.Signals[image["StopSignal"]]
    assert stop(dp_p, dp_pid, sig, dp_log) == 0, read(dp_log)
    assert "received SIGQUIT" in read(dp_log)
    assert stop(cp_p, cp_pid, sig, cp_log) == 0, read(cp_log)


def test_cp_from_the_image_stops_with_its_stop_signal(image, containers, etc):
    cp, p, log, pid, _ = start_cp(containers, etc, free_port(), free_port())
    rc = stop(p, pid, signal.Signals[image["StopSignal"]], log)
    assert rc == 0, f"exit {rc}:\n{read(log)}"
    assert "strait-cp stopped" in read(log)


def test_healthcheck_fails_without_an_answer(image, containers, etc):
    # a DP whose status listener is not answering: unhealthy
    c = containers()
    dead = free_port()
    p, log, pid = c.start(["strait-dp", "start"],
                          {"STRAIT_STATUS_LISTEN": f"127.0.0.1:{free_port()}",
                           "STRAIT_CLUSTER_CONTROL_PLANE": f"127.0.0.1:{dead}",
                           "STRAIT_CLUSTER_MTLS": "off"}, comm="strait-dp")
    r = c.exec(["strait-healthcheck", str(pid)], env={})
    assert r.returncode == 0, (r.stderr, read(log))  # up (not ready: still alive)
    os.kill(pid, signal.SIGSTOP)  # a hung DP: nothing answers within the timeout
    try:
        r = c.exec(["strait-healthcheck", str(pid)], timeout=30)
        assert r.returncode == 1 and "unhealthy" in r.stderr, (r.returncode, r.stderr)
    finally:
        os.kill(pid, signal.SIGCONT)
    r = c.exec(["strait-healthcheck", "999999999"])
    assert r.returncode == 1, r.stderr


def test_both_set_refused_in_the_image(containers, etc):
    c = containers()
    r = c.exec(["/usr/local/bin/docker-entrypoint.sh", "strait-cp", "start"],
               env={"STRAIT_ADMIN_TOKEN": "x",
                    "STRAIT_ADMIN_TOKEN_FILE": "/etc/strait/admin-token"},
               volumes={str(etc): "/etc/strait"})
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "error: both STRAIT_ADMIN_TOKEN and STRAIT_ADMIN_TOKEN_FILE are set" in r.stderr
