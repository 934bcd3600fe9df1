# Guards issue 17, point 2: the Helm chart of deploy/helm/strait/. For each values
# profile (deploy/helm/strait/ci/*.yaml: all-in-one with bundled Postgres, CP only with
# external Postgres, DP only, DaemonSet with hostNetwork, pki with cert-manager, SQLite) a
# real helm (from the npm kubectl layer, tests/deploy/setup-helm.sh) lints and renders the
# chart; every rendered object is validated against Kubernetes' schemas (kubernetes-models
# and the cert-manager and prometheus-operator models, tests/deploy/validate-k8s.mjs; a
# kind no validator knows fails); the renders match golden snapshots
# (tests/deploy/golden/; STRAIT_UPDATE_GOLDEN=1 rewrites them); bad values are refused by
# values.schema.json with its message; the migration Jobs carry exactly the CP's
# environment and mounts (Kong's charts#1209); the DP drains on SIGQUIT within
# terminationGracePeriodSeconds; the values table of docs/deploy-helm.md is up to date.
# And the chart's config really runs: the all-in-one, pki and SQLite renders' migration,
# CP and DP containers (command, args, env, mounted Secrets) bootstrap the test's
# throwaway Postgres, pass `check`, start on loopback, the DP is not ready before the
# first configuration and ready after it, and bytes pass through a route.

import base64
import glob
import json
import os
import signal
import subprocess

import pytest
import yaml

import launch

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(TOP, "deploy", "helm", "strait")
GOLDEN = os.path.join(TOP, "tests", "deploy", "golden")
CACHE = os.path.join(os.environ.get("STRAIT_DEPLOY_CACHE") or os.path.join(TOP, ".deploy-cache"),
                     "helm")
PROFILES = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(CHART, "ci", "*.yaml")))
RELEASE = "demo"
NAMESPACE = "strait"


@pytest.fixture(scope="session")
def helm():
    """helm from the cache; setup-helm.sh installs it (idempotent) when it is missing."""
    subprocess.run(["bash", os.path.join(TOP, "tests", "deploy", "setup-helm.sh")], check=True,
                   timeout=600)
    return os.path.join(CACHE, "bin", "helm")


def template(helm, *args, check=True):
    p = subprocess.run([helm, "template", RELEASE, CHART, "--namespace", NAMESPACE,
                        "--api-versions", "cert-manager.io/v1",
                        "--api-versions", "monitoring.coreos.com/v1", *args],
                       capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def profile_args(name):
    return ["-f", os.path.join(CHART, "ci", name + ".yaml")]


def objects(text):
    return [d for d in yaml.safe_load_all(text) if d]


_renders = {}


def render(helm, name):
    if name not in _renders:
        _renders[name] = template(helm, *profile_args(name)).stdout
    return _renders[name]


def find(objs, kind, suffix):
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"].endswith(suffix):
            return o
    raise AssertionError(f"no {kind} *{suffix} in {[o['metadata']['name'] for o in objs]}")


def test_profiles_exist():
    assert set(PROFILES) >= {"all-in-one", "cp-only-external-postgres", "dp-only",
                             "daemonset-hostnetwork", "pki-cert-manager"}, PROFILES


@pytest.mark.parametrize("name", PROFILES)
def test_lint(helm, name):
    p = subprocess.run([helm, "lint", "--strict", CHART, *profile_args(name)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def validate(objs):
    return subprocess.run(["node", os.path.join(TOP, "tests", "deploy", "validate-k8s.mjs"),
                           os.path.join(CACHE, "node_modules")], input=json.dumps(objs),
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", PROFILES)
def test_objects_valid(helm, name):
    objs = objects(render(helm, name))
    assert objs
    p = validate(objs)
    assert p.returncode == 0 and f"{len(objs)} valid, 0 invalid" in p.stdout, p.stdout + p.stderr


def test_validator_can_fail():
    """The validator refuses a bad field and a kind it does not know."""
    bad = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
            "spec": {"ports": [{"port": "eighty"}]}},
           {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "b"}}]
    p = validate(bad)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "port must be integer" in p.stdout and "no validator knows this kind" in p.stdout


def redact(text):
    """The render with the data of generated Secrets (random each time) replaced."""
    out = []
    for o in objects(text):
        if o["kind"] == "Secret":
            o["data"] = {k: "REDACTED" for k in o.get("data", {})}
        out.append(o)
    return yaml.safe_dump_all(out, sort_keys=True, width=100)


@pytest.mark.parametrize("name", PROFILES)
def test_golden(helm, name):
    got = redact(render(helm, name))
    path = os.path.join(GOLDEN, name + ".yaml")
    if os.environ.get("STRAIT_UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            f.write(got)
    assert os.path.exists(path), f"no snapshot {path}: run with STRAIT_UPDATE_GOLDEN=1"
    want = open(path).read()
    assert got == want, (f"the render of {name} differs from {path}; if the change is "
                         "meant, rerun with STRAIT_UPDATE_GOLDEN=1 and commit the snapshot")


BAD = [
    (["--set", "controlPlane.database=sqlite", "--set", "controlPlane.replicas=2"],
     "at '/controlPlane/replicas': maximum: got 2, want 1"),
    (["--set", "dataPlane.kind=DaemonSet", "--set", "dataPlane.autoscaling.enabled=true"],
     "at '/dataPlane/autoscaling/enabled': value must be false"),
    (["--set", "dataPlane.config.no_such_key=1"], "invalid propertyName 'no_such_key'"),
    (["--set", "cluster.mtls=off"], "at '/cluster/mtls': value must be one of 'shared', 'pki'"),
    (["--set", "cluster.secretName="], "at '/cluster/secretName': minLength: got 0, want 1"),
    (["--set", "controlPlane.enabled=false"],
     "at '/dataPlane/controlPlaneAddress': minLength: got 0, want 1"),
    (["--set", "postgres.bundled.enabled=false"], "at '/postgres/host': minLength: got 0, want 1"),
    (["--set", "dataPlane.streams[0].name=tcp", "--set", "dataPlane.streams[0].port=70000"],
     "at '/dataPlane/streams/0/port': maximum: got 70,000, want 65,535"),
    (["--set", "dataPlane.service.externalTrafficPolicy=Nearest"],
     "at '/dataPlane/service/externalTrafficPolicy': value must be one of 'Local', 'Cluster'"),
    (["--set", "controlPlane.replicas=0"], "at '/controlPlane/replicas': minimum: got 0, want 1"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_values_refused(helm, args, message):
    p = template(helm, *profile_args("all-in-one"), *args, check=False)
    assert p.returncode != 0, f"accepted {args}"
    assert "values don't meet the specifications of the schema" in p.stderr, p.stderr
    assert message in p.stderr, p.stderr


def containers(o):
    return o["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize("name", ["all-in-one", "cp-only-external-postgres", "pki-cert-manager"])
def test_migration_jobs_have_the_cp_environment(helm, name):
    """Kong's charts#1209: every migration Job has exactly the CP's env, mounts, volumes."""
    objs = objects(render(helm, name))
    cp = find(objs, "Deployment", "-cp")
    c = containers(cp)[0]
    jobs = {o["metadata"]["name"].rsplit("-", 1)[1]: o for o in objs if o["kind"] == "Job"}
    assert set(jobs) == {"bootstrap", "up", "finish"}
    ann = {k: o["metadata"].get("annotations", {}).get("helm.sh/hook") for k, o in jobs.items()}
    assert ann == {"bootstrap": None, "up": "pre-upgrade", "finish": "post-upgrade"}
    for step, job in jobs.items():
        jc = containers(job)[0]
        assert jc["command"] == c["command"] and jc["args"] == ["migrations", step]
        assert jc["env"] == c["env"], step
        assert jc["volumeMounts"] == c["volumeMounts"], step
        assert job["spec"]["template"]["spec"]["volumes"] == \
            cp["spec"]["template"]["spec"]["volumes"], step
    if name == "pki-cert-manager":
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["STRAIT_CLUSTER_MTLS"] == "pki"
        assert env["STRAIT_CLUSTER_CA_CERT"] == "/etc/strait/cluster/ca.crt"
        cert = find(objs, "Certificate", "-cluster")
        vol = [v for v in cp["spec"]["template"]["spec"]["volumes"] if v["name"] == "cluster-cert"]
        assert vol[0]["secret"]["secretName"] == cert["spec"]["secretName"]


def merged(base, over):
    """Helm's merge of a values file over values.yaml (maps merge, the rest replaces)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.mark.parametrize("name", ["all-in-one", "dp-only", "daemonset-hostnetwork",
                                  "pki-cert-manager"])
def test_dp_pod(helm, name):
    objs = objects(render(helm, name))
    values = merged(yaml.safe_load(open(os.path.join(CHART, "values.yaml")))["dataPlane"],
                    yaml.safe_load(open(os.path.join(CHART, "ci", name + ".yaml")))["dataPlane"])
    dp = [o for o in objs if o["kind"] in ("Deployment", "DaemonSet")
          and o["metadata"]["name"].endswith("-dp")][0]
    assert dp["kind"] == values["kind"]
    spec = dp["spec"]["template"]["spec"]
    c = spec["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    drain = int(env["STRAIT_DRAIN_TIMEOUT"])
    assert drain == values["drainTimeout"]
    assert spec["terminationGracePeriodSeconds"] == drain + values["terminationGraceMargin"]
    pre = " ".join(c["lifecycle"]["preStop"]["exec"]["command"])
    assert "kill -QUIT 1" in pre and "kill -0 1" in pre  # drain, and wait for it
    assert c["readinessProbe"]["httpGet"]["path"] == "/status/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/status"
    assert env["STRAIT_STATUS_LISTEN"] == f"0.0.0.0:{values['statusPort']}"
    ports = {p["containerPort"] for p in c["ports"]}
    assert ports == {values["statusPort"]} | {s["port"] for s in values["streams"]}
    assert spec.get("hostNetwork", False) == values["hostNetwork"]
    if values["hostNetwork"]:
        assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
        assert spec["nodeSelector"] == values["nodeSelector"]
        assert spec["tolerations"] == values["tolerations"]
    kinds = {o["kind"] for o in objs}
    assert ("HorizontalPodAutoscaler" in kinds) == (values["kind"] == "Deployment"
                                                    and values["autoscaling"]["enabled"])
    if values["service"]["enabled"]:
        svc = find(objs, "Service", "-proxy")
        assert svc["spec"]["type"] in ("LoadBalancer", "NodePort")
        assert svc["spec"]["externalTrafficPolicy"] == "Local"
        assert {p["port"] for p in svc["spec"]["ports"]} == {s["port"] for s in values["streams"]}


def test_network_policy_lets_only_dps_reach_the_cluster_port(helm):
    objs = objects(render(helm, "all-in-one"))
    np = find(objs, "NetworkPolicy", "-cp")
    dp = find(objs, "Deployment", "-dp")
    cluster_rules = [r for r in np["spec"]["ingress"] if {"port": 8005, "protocol": "TCP"}
                     in r.get("ports", [])]
    assert len(cluster_rules) == 1
    peers = cluster_rules[0]["from"]
    assert len(peers) == 1
    sel = peers[0]["podSelector"]["matchLabels"]
    labels = dp["spec"]["template"]["metadata"]["labels"]
    assert sel.items() <= labels.items() and sel["app.kubernetes.io/component"] == "data-plane"
    cp_labels = find(objs, "Deployment", "-cp")["spec"]["template"]["metadata"]["labels"]
    assert not sel.items() <= cp_labels.items()


def test_every_config_key_settable():
    """values.schema.json's config keys are exactly the keys of docs/configuration.md."""
    import re
    keys = []
    for line in open(os.path.join(TOP, "docs", "configuration.md")):
        m = re.match(r"^\| `([a-z_0-9]+)` \| .*? \| (CP|DP|both) \|", line)
        if m:
            keys.append(m.group(1))
    schema = json.load(open(os.path.join(CHART, "values.schema.json")))
    for plane in ("controlPlane", "dataPlane"):
        enum = schema["properties"][plane]["properties"]["config"]["propertyNames"]["enum"]
        assert sorted(enum) == sorted(keys), plane


def test_config_map_becomes_env(helm):
    p = template(helm, *profile_args("dp-only"), "--set", "dataPlane.config.log_level=debug",
                 "--set", "dataPlane.config.ssl_session_tickets=false",
                 "--set", "dataPlane.config.stream_listen=0.0.0.0:9999")
    dp = find(objects(p.stdout), "Deployment", "-dp")
    env = {e["name"]: e.get("value") for e in containers(dp)[0]["env"]}
    assert env["STRAIT_LOG_LEVEL"] == "debug"
    assert env["STRAIT_SSL_SESSION_TICKETS"] == "off"
    assert env["STRAIT_STREAM_LISTEN"] == "0.0.0.0:9999"  # the user's value wins
    names = [e["name"] for e in containers(dp)[0]["env"]]
    assert len(names) == len(set(names))


def test_values_table_up_to_date():
    p = subprocess.run(["/usr/bin/python3", os.path.join(TOP, "deploy", "helm",
                                                         "gen-values-table.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


# --- the chart's config really runs -------------------------------------------------------

class Pod:
    """One container of the render, laid out on this machine under root: its Secret
    volumes written as files at root + mountPath, its emptyDirs made, its env resolved
    (secretKeyRef from the render's Secrets or from `external`), and every env value or
    argument naming a path under a mount moved under root."""

    def __init__(self, root, pod_spec, container, rendered, external):
        self.root = str(root)
        secrets = {o["metadata"]["name"]: {k: base64.b64decode(v) for k, v in
                                            o.get("data", {}).items()}
                   for o in rendered if o["kind"] == "Secret"}
        secrets.update(external)
        vols = {v["name"]: v for v in pod_spec.get("volumes", [])}
        self.mounts = []
        for m in container.get("volumeMounts", []):
            v = vols[m["name"]]
            path = self.root + m["mountPath"]
            os.makedirs(path, exist_ok=True)
            if "secret" in v:
                for k, data in secrets[v["secret"]["secretName"]].items():
                    with open(os.path.join(path, k), "wb") as f:
                        f.write(data)
                    os.chmod(os.path.join(path, k), 0o600)
            else:
                assert "emptyDir" in v, v
                os.chmod(path, 0o700)
            self.mounts.append(m["mountPath"])
        self.env = {}
        for e in container.get("env", []):
            if "value" in e:
                self.env[e["name"]] = self.local(e["value"])
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                self.env[e["name"]] = secrets[ref["name"]][ref["key"]].decode()
        self.argv = [self.local(a) for a in container["command"] + container.get("args", [])]

    def local(self, s):
        for m in self.mounts:
            if s == m or s.startswith(m + "/"):
                return self.root + s
        return s


def run_job(pod, overrides):
    return subprocess.run(launch.local_argv(pod.argv), env=launch._env(pod.env, overrides),
                          capture_output=True, text=True, timeout=launch.scaled(120))


def pki_secret(folder, name):
    """What cert-manager's Certificate of the pki profile puts in its Secret: tls.crt and
    tls.key (CN and DNS name `name`, server and client auth) and ca.crt, its CA."""
    def sh(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True,
                       timeout=60)
    sh("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes",
       "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-cluster-ca",
       "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    sh("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes",
       "-keyout", "tls.key", "-out", "tls.csr", "-subj", f"/CN={name}")
    with open(os.path.join(folder, "ext.cnf"), "w") as f:
        f.write(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth,clientAuth\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n")
    sh("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
       "-CAcreateserial", "-out", "tls.crt", "-days", "2", "-extfile", "ext.cnf")
    return {k: open(os.path.join(folder, k), "rb").read() for k in ("tls.crt", "tls.key",
                                                                    "ca.crt")}


@pytest.mark.parametrize("name", ["all-in-one", "pki-cert-manager", "sqlite-trial"])
def test_config_really_runs(helm, tmp_path, name):
    objs = objects(render(helm, name))
    if name != "pki-cert-manager":
        # the cluster pair the profile names (cluster.secretName): made as the docs
        # say, with gen_cert
        crt, key = launch.gen_cert(str(tmp_path))
        external = {"strait-cluster-cert": {"tls.crt": open(crt, "rb").read(),
                                            "tls.key": open(key, "rb").read()}}
    else:
        # the Secret that cert-manager makes from the rendered Certificate
        cert = find(objs, "Certificate", "-cluster")
        assert cert["spec"]["dnsNames"] == [cert["spec"]["commonName"]]
        external = {cert["spec"]["secretName"]: pki_secret(str(tmp_path),
                                                           cert["spec"]["commonName"])}
    cpd = find(objs, "Deployment", "-cp")
    dpd = find(objs, "Deployment", "-dp")
    sqlite = name == "sqlite-trial"
    assert sqlite == (not [o for o in objs if o["kind"] == "Job"])  # no migrations on SQLite
    boot = cpd if sqlite else find(objs, "Job", "-migrations-bootstrap")
    cp = Pod(tmp_path / "cp", cpd["spec"]["template"]["spec"], containers(cpd)[0], objs, external)
    dp = Pod(tmp_path / "dp", dpd["spec"]["template"]["spec"], containers(dpd)[0], objs, external)
    job = Pod(tmp_path / "job", boot["spec"]["template"]["spec"], containers(boot)[0], objs,
              external)
    token = cp.env["STRAIT_ADMIN_TOKEN"]
    assert len(token) >= 32 and job.env["STRAIT_ADMIN_TOKEN"] == token

    # what one machine must change: each listener's pod address to a free loopback port
    # (its flags kept as rendered), the DPs' CP address, the bundled Postgres's Service
    # name -> the test's throwaway Postgres
    moved = {}

    def loopback(value):
        out = []
        for entry in value.split(","):
            addr, _, flags = entry.strip().partition(" ")
            assert addr.startswith("0.0.0.0:"), value
            moved[addr] = launch.free_port()
            out.append(f"127.0.0.1:{moved[addr]}" + (" " + flags if flags else ""))
        return ", ".join(out)

    if name == "all-in-one":
        assert dp.env["STRAIT_STREAM_LISTEN"] == "0.0.0.0:5555, 0.0.0.0:5556 ssl"
    if sqlite:
        db = {}
        assert cp.env["STRAIT_DATABASE"] == "sqlite"
    else:
        db = launch.pg_database()
        db.pop("STRAIT_DATABASE")
        assert cp.env["STRAIT_DATABASE"] == "postgres" and cp.env["STRAIT_PG_HOST"] == \
            f"{RELEASE}-strait-postgres"
    cp_over = dict(db, **{k: loopback(cp.env[k]) for k in ("STRAIT_ADMIN_LISTEN",
                                                            "STRAIT_CLUSTER_LISTEN")})
    dp_over = {k: loopback(dp.env[k]) for k in ("STRAIT_STATUS_LISTEN", "STRAIT_STREAM_LISTEN")}
    assert dp.env["STRAIT_CLUSTER_CONTROL_PLANE"] == \
        f"{RELEASE}-strait-cluster.{NAMESPACE}.svc:8005"
    dp_over["STRAIT_CLUSTER_CONTROL_PLANE"] = f"127.0.0.1:{moved['0.0.0.0:8005']}"
    admin, status, stream = moved["0.0.0.0:8001"], moved["0.0.0.0:8007"], moved["0.0.0.0:5555"]

    # the install's bootstrap Job, as rendered, on an empty database
    if not sqlite:
        p = run_job(job, cp_over)
        assert p.returncode == 0, p.stdout + p.stderr
    for pod, over in ((cp, cp_over), (dp, dp_over)):
        p = launch.check(pod.argv, pod.env, over)
        assert p.returncode == 0, p.stdout + p.stderr
    # the upgrade hooks, as rendered, find nothing to do
    for step in () if sqlite else ("up", "finish"):
        j = find(objs, "Job", "-migrations-" + step)
        p = run_job(Pod(tmp_path / step, j["spec"]["template"]["spec"], containers(j)[0], objs,
                        external), cp_over)
        assert p.returncode == 0, p.stdout + p.stderr

    dpp = launch.Plane(dp.argv, dp.env, dp_over, cwd=str(tmp_path), log=str(tmp_path / "dp.log"))
    cpp = None
    try:
        ready = f"http://127.0.0.1:{status}/status/ready"
        dpp.wait_http(ready, 503)  # no configuration yet: not ready
        dpp.wait_http(f"http://127.0.0.1:{status}/status", 200)  # but alive
        cpp = launch.Plane(cp.argv, cp.env, cp_over, cwd=str(tmp_path),
                           log=str(tmp_path / "cp.log"))
        hdr = {"Kong-Admin-Token": token}
        launch.wait_for(lambda: launch.http("GET", f"http://127.0.0.1:{admin}/status",
                                            headers=hdr)[0] == 200, 30, "the CP's admin API")
        assert launch.http("GET", f"http://127.0.0.1:{admin}/status")[0] == 401
        dpp.wait_http(ready, 200)  # the first configuration, empty, makes it ready
        e = launch.route_traffic(f"http://127.0.0.1:{admin}", stream, headers=hdr)
        e.close()
    finally:
        # the preStop hook's signal: the DP drains and exits 0
        dp_rc = dpp.stop(signal.SIGQUIT, timeout=40)
        cp_rc = cpp.stop(signal.SIGTERM) if cpp else 0
    assert dp_rc == 0, dpp.output()
    assert cp_rc == 0, cpp.output()
