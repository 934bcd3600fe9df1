# Guards issue 17, point 1 (Compose): deploy/docker/compose.yaml starts a whole hybrid
# cluster. No container daemon in CI, so the file is read (python3-yaml) and its Strait
# services are run as it says, with this build's binaries on loopback: the one-shot
# cluster-cert service's script makes the shared pair into the `cluster` volume, the
# migrations service bootstraps the database (and finds nothing to do the second time),
# then each CP and DP's command, environment (through the image's entrypoint, so the
# STRAIT_<KEY>_FILE secrets are read as in the image) and mounted files pass `check` and
# start; a route written through cp1 carries traffic through both DPs, and cp2 serves it.
#
# What this machine must change is changed mechanically, and nothing else: paths inside
# the container map to the volume's or secret's folder (or the service's own folder),
# listen addresses become 127.0.0.1 with free ports (flags kept), the Postgres host
# becomes the test run's throwaway server, and a control plane's service name in a DP's
# cluster_control_plane becomes that CP's local cluster address. The file's own
# consistency (published ports, depends_on, secrets, Postgres's user and database) is
# checked too.

import os
import re
import signal
import ssl
import subprocess
import urllib.request

import pytest
import yaml

import launch

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOCKER = os.path.join(TOP, "deploy", "docker")
COMPOSE = os.path.join(DOCKER, "compose.yaml")
ENTRYPOINT = os.path.join(DOCKER, "entrypoint.sh")
LISTEN_KEYS = ("STRAIT_ADMIN_LISTEN", "STRAIT_CLUSTER_LISTEN", "STRAIT_STREAM_LISTEN",
               "STRAIT_STATUS_LISTEN")


@pytest.fixture(scope="module")
def compose():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def strait_services(c):
    return {n: s for n, s in c["services"].items() if s.get("image", "").startswith("strait")}


def image_env():
    """The Dockerfile's ENV lines of the final stage (what every container starts with)."""
    with open(os.path.join(DOCKER, "Dockerfile")) as f:
        final = f.read().rsplit("\nFROM ", 1)[1]
    return dict(m.groups() for m in re.finditer(r"^ENV (\w+)=(\S+)$", final, re.M))


def stop_signal():
    """The image's STOPSIGNAL (what `docker compose stop` sends)."""
    with open(os.path.join(DOCKER, "Dockerfile")) as f:
        return signal.Signals[re.search(r"^STOPSIGNAL (\w+)$", f.read(), re.M).group(1)]


def one_shots(c):
    return [n for n, s in strait_services(c).items() if s.get("restart") == "no"]


def test_compose_is_consistent(compose):
    svcs = compose["services"]
    st = strait_services(compose)
    kinds = {n: s["command"][0] for n, s in st.items()}
    long_running = [n for n in st if n not in one_shots(compose)]
    # a whole hybrid cluster: Postgres, two CPs, two DPs, the two one-shots
    assert sorted(kinds[n] for n in long_running) == ["strait-cp"] * 2 + ["strait-dp"] * 2
    assert "postgres" in svcs and sorted(one_shots(compose)) == ["cluster-cert", "migrations"]
    assert st["migrations"]["command"] == ["strait-cp", "migrations", "bootstrap"]
    assert any("gen_cert" in line for line in st["cluster-cert"]["command"])
    for name, s in svcs.items():
        for dep in s.get("depends_on", {}):
            assert dep in svcs, (name, dep)
        for sec in s.get("secrets", []):
            assert sec in compose["secrets"], (name, sec)
            assert os.path.exists(os.path.join(DOCKER, compose["secrets"][sec]["file"]))
        for v in s.get("volumes", []):
            src = v.split(":")[0]
            assert src in compose["volumes"], (name, v)
        for p in s.get("ports", []):
            assert p.startswith("127.0.0.1:"), (name, p)  # the host's loopback only
            cport = p.rsplit(":", 1)[1]
            listens = " ".join(s["environment"].get(k, "") for k in LISTEN_KEYS)
            assert re.search(rf":{cport}\b", listens), (name, p, listens)
    for n in long_running:
        # every plane waits for the cluster pair; the CPs for the schema too
        assert st[n]["depends_on"]["cluster-cert"]["condition"] == \
            "service_completed_successfully"
        if kinds[n] == "strait-cp":
            assert st[n]["depends_on"]["migrations"]["condition"] == \
                "service_completed_successfully"
    # Postgres's own user, database and password are the ones the CPs use
    pg, mig = svcs["postgres"]["environment"], st["migrations"]["environment"]
    assert mig["STRAIT_PG_HOST"] == "postgres"
    assert pg["POSTGRES_USER"] == mig["STRAIT_PG_USER"]
    assert pg["POSTGRES_DB"] == mig["STRAIT_PG_DATABASE"]
    assert pg["POSTGRES_PASSWORD_FILE"] == mig["STRAIT_PG_PASSWORD_FILE"]


class Cluster:
    """The compose file's Strait services mapped onto this machine (see the top)."""

    def __init__(self, compose, tmp):
        self.c = compose
        self.tmp = tmp
        self.svcs = strait_services(compose)
        self.ports = {}  # (service, container port) -> local port
        self.db = launch.pg_database()

    def mounts(self, name):
        """container path -> host folder or file, for the service's volumes and secrets"""
        s = self.svcs[name]
        out = {}
        for v in s.get("volumes", []):
            src, dst = v.split(":")[:2]
            d = os.path.join(self.tmp, "volumes", src)
            os.makedirs(d, exist_ok=True)
            out[dst] = d
        for sec in s.get("secrets", []):
            out[f"/run/secrets/{sec}"] = os.path.join(DOCKER, self.c["secrets"][sec]["file"])
        return out

    def path(self, name, p):
        for dst, src in sorted(self.mounts(name).items(), key=lambda kv: -len(kv[0])):
            if p == dst or p.startswith(dst + "/"):
                return src + p[len(dst):]
        # the container's own filesystem (the image's prefix, for a CP on Postgres)
        local = os.path.join(self.tmp, "rootfs", name) + p
        os.makedirs(os.path.dirname(local), exist_ok=True)
        return local

    def local_port(self, name, port):
        return self.ports.setdefault((name, port), launch.free_port())

    def listen(self, name, value):
        out = []
        for entry in value.split(","):
            words = entry.split()
            port = words[0].rsplit(":", 1)[1]
            out.append(" ".join([f"127.0.0.1:{self.local_port(name, port)}"] + words[1:]))
        return ", ".join(out)

    def control_planes(self, value):
        out = []
        for entry in value.split(","):
            host, port = entry.strip().rsplit(":", 1)
            assert self.svcs.get(host, {}).get("command", [None])[0] == "strait-cp", \
                f"cluster_control_plane names {host!r}, not a CP service"
            listen = self.svcs[host]["environment"]["STRAIT_CLUSTER_LISTEN"]
            assert listen.split()[0].rsplit(":", 1)[1] == port, \
                f"cluster_control_plane: {host}:{port}, but {host} listens on {listen}"
            out.append(f"127.0.0.1:{self.local_port(host, port)}")
        return ", ".join(out)

    def env(self, name):
        """The service's environment as its process sees it: the image's ENV, the
        service's, paths and addresses mapped, then the image's entrypoint (the _FILE
        secrets)."""
        env = dict(image_env(), **self.svcs[name].get("environment", {}))
        for k, v in env.items():
            v = str(v)
            if v.startswith("/"):
                v = self.path(name, v)
            elif k in LISTEN_KEYS:
                v = self.listen(name, v)
            elif k == "STRAIT_CLUSTER_CONTROL_PLANE":
                v = self.control_planes(v)
            env[k] = v
        if env.get("STRAIT_DATABASE") == "postgres":
            assert env["STRAIT_PG_HOST"] in self.c["services"], env["STRAIT_PG_HOST"]
            env.update(self.db)  # the test run's Postgres, a fresh database
        bins = os.path.dirname(launch.binary("strait-cp")) + ":" + \
            os.path.dirname(launch.binary("strait-dp"))
        r = subprocess.run(["bash", ENTRYPOINT, "env", "-0"], capture_output=True, text=True,
                           env=dict(env, PATH=f"{bins}:/usr/bin:/bin"), timeout=60)
        assert r.returncode == 0, f"{name}: entrypoint: {r.stderr}"
        got = dict(kv.split("=", 1) for kv in r.stdout.split("\0") if "=" in kv)
        return {k: v for k, v in got.items() if k.startswith("STRAIT_")}

    def command(self, name):
        """The service's command with container paths mapped (a one-shot's script too)."""
        out = []
        for a in self.svcs[name]["command"]:
            for dst, src in self.mounts(name).items():
                a = a.replace(dst, src)
            out.append(a)
        return out

    def one_shot(self, name):
        argv = self.command(name)
        if argv[0] in ("strait-cp", "strait-dp"):
            argv = launch.local_argv(argv)
        bins = os.path.dirname(launch.binary("strait-cp"))
        r = subprocess.run(argv, env=dict(self.env(name), PATH=f"{bins}:/usr/bin:/bin"),
                           capture_output=True, text=True, timeout=launch.scaled(120),
                           cwd=self.tmp)
        assert r.returncode == 0, f"{name}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout


@pytest.fixture
def https_to_admin():
    """urllib (launch.http) trusting the CPs' admin certificate (pinned: their own
    self-signed pair from the cluster volume), restored after the test."""
    def use(cafile):
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = False
        urllib.request.install_opener(
            urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx)))
    yield use
    urllib.request.install_opener(None)


def test_compose_cluster_really_runs(compose, tmp_path, https_to_admin):
    cl = Cluster(compose, str(tmp_path))
    # the one-shots, in their depends_on order: the pair, then the schema
    cl.one_shot("cluster-cert")
    vol = os.path.join(str(tmp_path), "volumes", "cluster")
    for f in ("cluster.crt", "cluster.key", "admin.crt", "admin.key"):
        assert os.stat(os.path.join(vol, f)).st_uid == 10001, f  # the image's user
    before = {f: open(os.path.join(vol, f), "rb").read() for f in os.listdir(vol)}
    cl.one_shot("cluster-cert")  # once: a second run keeps the pair
    assert before == {f: open(os.path.join(vol, f), "rb").read() for f in os.listdir(vol)}
    assert "bootstrapping database" in cl.one_shot("migrations")
    assert "already bootstrapped" in cl.one_shot("migrations")

    planes = [n for n in cl.svcs if n not in one_shots(compose)]
    cps = sorted(n for n in planes if cl.svcs[n]["command"][0] == "strait-cp")
    dps = sorted(n for n in planes if cl.svcs[n]["command"][0] == "strait-dp")
    envs = {n: cl.env(n) for n in cps + dps}
    for n in cps + dps:
        p = launch.check(cl.command(n), env=envs[n], cwd=str(tmp_path))
        assert p.returncode == 0, f"{n}: {p.stdout}{p.stderr}"

    running = {}
    try:
        for n in cps + dps:
            running[n] = launch.Plane(cl.command(n), env=envs[n], cwd=str(tmp_path),
                                      log=str(tmp_path / f"{n}.log"))
        https_to_admin(os.path.join(vol, "admin.crt"))
        token = {"Kong-Admin-Token": open(os.path.join(DOCKER, "secrets", "admin_token"))
                 .read().strip()}
        admin = {n: "https://" + envs[n]["STRAIT_ADMIN_LISTEN"].split()[0] for n in cps}
        for n in cps:
            running[n].wait_http(f"{admin[n]}/status", 401)  # the token is required
        for n in dps:
            running[n].wait_http(f"http://{envs[n]['STRAIT_STATUS_LISTEN']}/status/ready")
        stream = {n: int(envs[n]["STRAIT_STREAM_LISTEN"].split(":")[1]) for n in dps}
        # one route through cp1 (dp1's port); both DPs listen on the same container port,
        # so the route's destination port is the local port of dp1 only: route dp2's too
        e = launch.route_traffic(admin[cps[0]], stream[dps[0]], headers=token)
        e2 = launch.route_traffic(admin[cps[1]], stream[dps[1]], headers=token,
                                  name="deploy-check-2")
        try:
            for n in dps:
                launch.wait_for(lambda n=n: launch.echoed(stream[n]), 20, f"{n} traffic")
            # both CPs serve both routes (one database)
            for n in cps:
                st, body = launch.http("GET", f"{admin[n]}/routes", headers=token)
                assert st == 200 and len(body["data"]) == 2, (n, st, body)
            # failover: with cp1 stopped (the image's stop signal: exit 0), every DP moves
            # to cp2, the next entry of its list, and keeps carrying traffic
            assert running[cps[0]].stop(stop_signal()) == 0, running[cps[0]].output()
            cp2_addr = envs[cps[1]]["STRAIT_CLUSTER_LISTEN"]
            for n in dps:
                status = f"http://{envs[n]['STRAIT_STATUS_LISTEN']}/status"
                launch.wait_for(lambda: launch.http("GET", status)[1].get("control_plane")
                                == cp2_addr, 30, f"{n} on {cps[1]}")
                assert launch.echoed(stream[n]), n
        finally:
            e.close()
            e2.close()
    finally:
        rcs = {}
        for n in dps + cps:
            if n in running:
                rcs[n] = running[n].stop(stop_signal())
        for n, rc in rcs.items():
            assert rc == 0, f"{n}: exit {rc}\n{running[n].output()}"
