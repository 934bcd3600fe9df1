# Guards issue 17, point 3: the systemd units of deploy/systemd/. Every unit passes
# `systemd-analyze verify` (in a root folder holding this build's binaries, so the
# ExecStart paths are checked as installed) with nothing to say; the units stop the DP with
# SIGQUIT (its drain) within a TimeoutStopSec above drain_timeout, restart on failure, run
# as a dedicated user, hardened, with a high LimitNOFILE; and the units' own ExecStartPre,
# ExecStart and config files really run: `check` passes, a DP started first is not ready,
# becomes ready with the CP's first (empty) configuration, carries traffic through a
# route, and both stop with their unit's KillSignal, exit 0. The migrations oneshot
# bootstraps an empty Postgres database, then finds nothing to do. Loopback only.

import configparser
import os
import shlex
import shutil
import signal
import subprocess

import pytest

import launch

UNITS = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "systemd")
NAMES = ["strait-cp.service", "strait-dp.service", "strait-cp-migrations.service"]


def unit(name):
    """The [Service] and [Unit] keys of a unit, last value of each key wins (systemd
    appends ExecStart* lines; ours have one each)."""
    p = configparser.ConfigParser(interpolation=None, strict=False)
    p.optionxform = str
    with open(os.path.join(UNITS, name)) as f:
        p.read_file(f)
    return p


def argv_of(line):
    return shlex.split(line.replace("$$", "$"))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A root folder for systemd-analyze: the units in /etc/systemd/system, this build's
    binaries in /usr/local/bin, /bin/sh, and the system's own units (targets)."""
    r = tmp_path_factory.mktemp("root")
    for d in ("usr/local/bin", "bin", "etc/systemd/system", "usr/lib/systemd"):
        (r / d).mkdir(parents=True, exist_ok=True)
    for b in ("strait-cp", "strait-dp"):
        shutil.copy(launch.binary(b), r / "usr/local/bin" / b)
    shutil.copy(shutil.which("sh"), r / "bin" / "sh")
    shutil.copytree("/usr/lib/systemd/system", r / "usr/lib/systemd" / "system", symlinks=True)
    for n in NAMES:
        shutil.copy(os.path.join(UNITS, n), r / "etc/systemd/system" / n)
    return r


@pytest.mark.parametrize("name", NAMES)
def test_unit_verifies(root, name):
    p = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                        str(root / "etc/systemd/system" / name)],
                       capture_output=True, text=True, timeout=60)
    # it exits 0 on an unknown key or a bad value ("ignoring"): its output must be empty
    assert p.returncode == 0 and p.stdout + p.stderr == "", p.stdout + p.stderr


def test_verify_catches_a_broken_unit(root):
    """The check above can fail: a unit with an unknown key and a missing binary."""
    bad = root / "etc/systemd/system" / "strait-bad.service"
    text = open(os.path.join(UNITS, "strait-dp.service")).read()
    bad.write_text(text.replace("KillSignal=SIGQUIT", "KillSignal=SIGQUIT\nBogusKey=1")
                   .replace("/usr/local/bin/strait-dp start", "/usr/local/bin/strait-dpx start"))
    p = subprocess.run(["systemd-analyze", "verify", f"--root={root}", str(bad)],
                       capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    assert "BogusKey" in out and "strait-dpx" in out and p.returncode != 0, out


def test_units_stop_restart_and_hardening():
    for name in ("strait-cp.service", "strait-dp.service"):
        s = unit(name)["Service"]
        assert s["Type"] == "exec" and s["Restart"] == "on-failure", name
        assert s["User"] == "strait" and s["Group"] == "strait", name
        assert s["ProtectSystem"] == "strict" and s["NoNewPrivileges"] == "yes", name
        assert s["ProtectHome"] == "yes" and s["PrivateTmp"] == "yes", name
        assert int(s["LimitNOFILE"]) >= 65536, name
        # the prefix (-p) is the unit's StateDirectory: the only writable place
        prefix = argv_of(s["ExecStart"])[argv_of(s["ExecStart"]).index("-p") + 1]
        assert prefix == "/var/lib/" + s["StateDirectory"], name
    dp = unit("strait-dp.service")["Service"]
    assert dp["KillSignal"] == "SIGQUIT"
    assert int(dp["TimeoutStopSec"]) > 30  # drain_timeout's default
    assert unit("strait-cp-migrations.service")["Service"]["Type"] == "oneshot"


def materialise(tmp):
    """The units' /etc/strait (their example confs, a cluster pair) and /var/lib prefixes,
    under tmp; returns a function mapping a unit's argv to this machine."""
    etc = tmp / "etc" / "strait"
    etc.mkdir(parents=True)
    for c in ("strait-cp.conf", "strait-dp.conf"):
        shutil.copy(os.path.join(UNITS, c), etc / c)
    launch.gen_cert(str(etc))
    for d in ("strait-cp", "strait-dp"):
        (tmp / "var" / "lib" / d).mkdir(parents=True)

    def local(argv):
        out = []
        for a in argv:
            if a.startswith("/etc/strait/") or a.startswith("/var/lib/"):
                a = str(tmp) + a
            out.append(a)
        return out

    return local


def test_units_really_run(tmp_path):
    admin, cluster, status, stream = (launch.free_port() for _ in range(4))
    # what the example confs name that this machine must change: the ports (others may
    # hold them), the control planes' names, and the cert paths under the fake /etc
    etc = str(tmp_path / "etc" / "strait")
    cp_over = {"STRAIT_ADMIN_LISTEN": f"127.0.0.1:{admin}",
               "STRAIT_CLUSTER_LISTEN": f"127.0.0.1:{cluster}",
               "STRAIT_CLUSTER_CERT": f"{etc}/cluster.crt",
               "STRAIT_CLUSTER_CERT_KEY": f"{etc}/cluster.key"}
    dp_over = {"STRAIT_CLUSTER_CONTROL_PLANE": f"127.0.0.1:{cluster}",
               "STRAIT_STREAM_LISTEN": f"127.0.0.1:{stream}",
               "STRAIT_STATUS_LISTEN": f"127.0.0.1:{status}",
               "STRAIT_CLUSTER_CERT": f"{etc}/cluster.crt",
               "STRAIT_CLUSTER_CERT_KEY": f"{etc}/cluster.key"}
    local = materialise(tmp_path)
    cp_u, dp_u = unit("strait-cp.service")["Service"], unit("strait-dp.service")["Service"]
    for u, over in ((cp_u, cp_over), (dp_u, dp_over)):
        p = launch.check(local(argv_of(u["ExecStartPre"])), overrides=over)
        assert p.returncode == 0, p.stdout + p.stderr
    dp = launch.Plane(local(argv_of(dp_u["ExecStart"])), overrides=dp_over, cwd=str(tmp_path),
                      log=str(tmp_path / "dp.log"))
    cp = None
    try:
        dp.wait_http(f"http://127.0.0.1:{status}/status/ready", 503)  # no configuration yet
        cp = launch.Plane(local(argv_of(cp_u["ExecStart"])), overrides=cp_over,
                          cwd=str(tmp_path), log=str(tmp_path / "cp.log"))
        cp.wait_http(f"http://127.0.0.1:{admin}/status")
        # the CP's first configuration is empty: that is one too
        dp.wait_http(f"http://127.0.0.1:{status}/status/ready", 200)
        e = launch.route_traffic(f"http://127.0.0.1:{admin}", stream)
        e.close()
    finally:
        dp_rc = dp.stop(signal.Signals[dp_u["KillSignal"]])
        cp_rc = cp.stop(signal.Signals[cp_u["KillSignal"]]) if cp else 0
    assert dp_rc == 0, dp.output()
    assert cp_rc == 0, cp.output()


def test_migrations_oneshot(tmp_path):
    """The oneshot's own shell line, with its paths mapped here: an empty database is
    bootstrapped; run again, nothing is pending."""
    db = launch.pg_database()
    conf = tmp_path / "strait-cp.conf"
    conf.write_text("cluster_mtls = off\n")
    line = unit("strait-cp-migrations.service")["Service"]["ExecStart"].replace("$$", "$")
    line = line.replace("/etc/strait/strait-cp.conf", str(conf)).replace(
        "/usr/local/bin/strait-cp", launch.binary("strait-cp"))
    argv = shlex.split(line)
    assert argv[:2] == ["/bin/sh", "-c"]
    env = dict(os.environ, **db)
    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    listed = subprocess.run([launch.binary("strait-cp"), "migrations", "list", "-c", str(conf)],
                            env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stdout + listed.stderr  # bootstrapped, current
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
