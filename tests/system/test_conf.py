# Guards issue 2, points 3 and 5 (configuration): strait.conf and STRAIT_* environment
# loading as the real binaries see it. An unknown key or a bad value stops start-up with
# exit code 2 and one line naming it; a `udp` or `proxy_protocol` listener (not built
# yet) is refused with a clear message instead of being ignored; an `ssl` listener starts;
# bad ssl_* values are refused; --help, --version and `cluster gen_cert` work.
# Issue 17 (images): SIGQUIT, the image's STOPSIGNAL, is a clean stop with exit 0 for
# both planes (the DP drains; the CP stops as on SIGTERM).

import os
import re
import signal
import socket
import stat
import subprocess

import pytest

from conftest import CP_BIN, DP_BIN, REPO, _child_env, scaled, write_conf

BINS = {"cp": CP_BIN, "dp": DP_BIN}


def project_version():
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        return re.search(r"project\(strait VERSION ([0-9.]+)", f.read()).group(1)


def run(args, env=None, timeout=20):
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=_child_env(env or {}),
        timeout=scaled(timeout),
    )


def valid_conf(kind, ports, certs):
    if kind == "cp":
        return {
            "admin_listen": f"127.0.0.1:{ports.get()}",
            "cluster_listen": f"127.0.0.1:{ports.get()}",
            "cluster_cert": certs[0],
            "cluster_cert_key": certs[1],
        }
    return {
        "cluster_control_plane": f"127.0.0.1:{ports.get()}",
        "stream_listen": f"127.0.0.1:{ports.get()}",
        "status_listen": f"127.0.0.1:{ports.get()}",
        "cluster_cert": certs[0],
        "cluster_cert_key": certs[1],
    }


def error_lines(r):
    return [ln for ln in r.stderr.splitlines() if ln.strip()]


@pytest.mark.parametrize("kind", ["cp", "dp"])
def test_unknown_key_exits_2_naming_key_and_line(kind, tmp_path, ports, cluster_certs):
    conf = tmp_path / "strait.conf"
    lines = ["# a comment", ""]
    lines += [f"{k} = {v}" for k, v in valid_conf(kind, ports, cluster_certs).items()]
    lines.append("bogus_setting = 1")
    conf.write_text("\n".join(lines) + "\n")
    bad_line = len(lines)
    r = run([BINS[kind], "start", "-c", str(conf), "-p", str(tmp_path / "prefix")])
    assert r.returncode == 2, (r.returncode, r.stderr)
    errs = error_lines(r)
    assert len(errs) == 1, f"expected one line on stderr, got: {r.stderr!r}"
    assert "bogus_setting" in errs[0]
    assert f"strait.conf:{bad_line}" in errs[0], errs[0]


@pytest.mark.parametrize("kind", ["cp", "dp"])
def test_same_conf_without_the_bad_key_is_accepted(kind, tmp_path, ports, cluster_certs):
    # The control case for the test above: `check` accepts the valid lines.
    conf = tmp_path / "strait.conf"
    write_conf(str(conf), valid_conf(kind, ports, cluster_certs))
    r = run([BINS[kind], "check", "-c", str(conf), "-p", str(tmp_path / "prefix")])
    assert r.returncode == 0, (r.returncode, r.stderr)


@pytest.mark.parametrize("kind", ["cp", "dp"])
def test_bad_env_value_exits_2_naming_variable(kind, tmp_path, ports, cluster_certs):
    conf = tmp_path / "strait.conf"
    write_conf(str(conf), valid_conf(kind, ports, cluster_certs))
    r = run(
        [BINS[kind], "start", "-c", str(conf), "-p", str(tmp_path / "prefix")],
        env={"STRAIT_LOG_LEVEL": "loudest"},
    )
    assert r.returncode == 2, (r.returncode, r.stderr)
    errs = error_lines(r)
    assert len(errs) == 1, f"expected one line on stderr, got: {r.stderr!r}"
    assert "STRAIT_LOG_LEVEL" in errs[0], errs[0]


def test_env_overrides_file(tmp_path, ports, cluster_certs):
    # The file's value is valid, the environment's is not: the environment wins.
    conf = tmp_path / "strait.conf"
    c = valid_conf("dp", ports, cluster_certs)
    c["log_level"] = "info"
    write_conf(str(conf), c)
    r = run(
        [DP_BIN, "check", "-c", str(conf), "-p", str(tmp_path / "prefix")],
        env={"STRAIT_STREAM_LISTEN": "127.0.0.1:99999"},
    )
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "STRAIT_STREAM_LISTEN" in r.stderr


def test_other_strait_env_variables_are_not_keys(tmp_path, ports, cluster_certs):
    # Test knobs such as STRAIT_TEST_CORRUPT_SNAPSHOT are not configuration keys.
    conf = tmp_path / "strait.conf"
    write_conf(str(conf), valid_conf("cp", ports, cluster_certs))
    r = run(
        [CP_BIN, "check", "-c", str(conf), "-p", str(tmp_path / "prefix")],
        env={"STRAIT_TEST_CORRUPT_SNAPSHOT": "1", "STRAIT_SOMETHING_ELSE": "x"},
    )
    assert r.returncode == 0, (r.returncode, r.stderr)


@pytest.mark.parametrize("flag", ["udp", "proxy_protocol"])
def test_unbuilt_listener_kinds_refused(flag, tmp_path, ports, cluster_certs):
    # UDP and PROXY protocol listeners come in later issues: refused with a clear line,
    # not ignored.
    conf = tmp_path / "strait.conf"
    c = valid_conf("dp", ports, cluster_certs)
    c["stream_listen"] = f"127.0.0.1:{ports.get()}, 127.0.0.1:{ports.get()} {flag}"
    write_conf(str(conf), c)
    r = run([DP_BIN, "start", "-c", str(conf), "-p", str(tmp_path / "prefix")])
    assert r.returncode == 2, (r.returncode, r.stderr)
    errs = error_lines(r)
    assert len(errs) == 1, r.stderr
    assert "stream_listen" in errs[0] and flag in errs[0], errs[0]
    assert "not supported" in errs[0], errs[0]


def test_ssl_listener_starts(st):
    # issue 3: an `ssl` listener is accepted; the DP (with no control plane yet) starts,
    # listens, and makes its default certificate pair in PREFIX/ssl.
    cp = st.cp(start=False)
    dp = st.dp(cp, listeners=2, listen_flags=[None, "ssl"], start=False)
    dp.start(wait=False)
    dp.wait_status_up()
    assert dp.alive()
    for port in dp.listen_ports:
        with socket.create_connection(("127.0.0.1", port), timeout=scaled(5)):
            pass
    for name in ("strait-default.crt", "strait-default.key", "strait-default-ecdsa.crt",
                 "strait-default-ecdsa.key"):
        assert os.path.exists(os.path.join(dp.prefix, "ssl", name)), name


@pytest.mark.parametrize("kind", ["cp", "dp"])
def test_sigquit_is_a_clean_stop(kind, st):
    # issue 17: containers stop with SIGQUIT (the image's STOPSIGNAL, the DP's drain); a
    # CP must take it as a clean stop too, not die of the default action (core, 131).
    cp = st.cp()
    p = cp if kind == "cp" else st.dp(cp)
    p.p.send_signal(signal.SIGQUIT)
    try:
        rc = p.p.wait(timeout=scaled(15))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{kind} still running 15 s after SIGQUIT:\n{p.log_tail()}")
    assert rc == 0, f"{kind} exited {rc} after SIGQUIT; log tail:\n{p.log_tail()}"
    log = p.log_text(since_start=True)
    assert "received SIGQUIT" in log, log
    if kind == "cp":
        assert "strait-cp stopped" in log, log


@pytest.mark.parametrize("key,value", [("ssl_protocols", "TLSv1.9"),
                                       ("ssl_cipher_suite", "bogus"),
                                       ("ssl_session_tickets", "maybe")])
def test_bad_ssl_settings_refused(key, value, tmp_path, ports, cluster_certs):
    conf = tmp_path / "strait.conf"
    c = valid_conf("dp", ports, cluster_certs)
    c["stream_listen"] = f"127.0.0.1:{ports.get()} ssl"
    c[key] = value
    write_conf(str(conf), c)
    r = run([DP_BIN, "start", "-c", str(conf), "-p", str(tmp_path / "prefix")])
    assert r.returncode == 2, (r.returncode, r.stderr)
    errs = error_lines(r)
    assert len(errs) == 1 and key in errs[0], r.stderr


def test_bad_listen_flag_uses_kong_text(tmp_path, ports, cluster_certs):
    conf = tmp_path / "strait.conf"
    c = valid_conf("dp", ports, cluster_certs)
    c["stream_listen"] = f"127.0.0.1:{ports.get()} sssl"
    write_conf(str(conf), c)
    r = run([DP_BIN, "start", "-c", str(conf), "-p", str(tmp_path / "prefix")])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "stream_listen" in r.stderr and "sssl" in r.stderr, r.stderr


def test_dp_without_cluster_cert_refused(tmp_path, ports, cluster_certs):
    # shared mTLS is the default: a DP with no cluster certificate must not start.
    conf = tmp_path / "strait.conf"
    c = valid_conf("dp", ports, cluster_certs)
    del c["cluster_cert"], c["cluster_cert_key"]
    write_conf(str(conf), c)
    r = run([DP_BIN, "start", "-c", str(conf), "-p", str(tmp_path / "prefix")])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "cluster_cert" in r.stderr, r.stderr


def test_missing_conf_file(tmp_path):
    r = run([CP_BIN, "start", "-c", str(tmp_path / "nope.conf"), "-p", str(tmp_path)])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "nope.conf" in r.stderr


@pytest.mark.parametrize("kind", ["cp", "dp"])
def test_help_and_version(kind):
    r = run([BINS[kind], "--help"])
    assert r.returncode == 0, (r.returncode, r.stderr)
    out = r.stdout + r.stderr
    assert "start" in out
    if kind == "cp":
        assert "gen_cert" in out
    r = run([BINS[kind], "--version"])
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert project_version() in r.stdout, r.stdout


@pytest.mark.parametrize("kind", ["cp", "dp"])
def test_unknown_command_is_usage_error(kind):
    r = run([BINS[kind], "frobnicate"])
    assert r.returncode == 2, (r.returncode, r.stderr)


def test_gen_cert_writes_pair_and_refuses_overwrite(tmp_path):
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    r = run([CP_BIN, "cluster", "gen_cert", str(cert), str(key)])
    assert r.returncode == 0, r.stderr
    assert cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in key.read_text()
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    before = cert.read_bytes()
    r = run([CP_BIN, "cluster", "gen_cert", str(cert), str(key)])
    assert r.returncode != 0
    assert cert.read_bytes() == before


@pytest.mark.parametrize("kind,key", [("cp", "admin_listen"), ("dp", "stream_listen"),
                                      ("dp", "status_listen")])
def test_address_in_use_is_runtime_failure(kind, key, tmp_path, ports, cluster_certs):
    # A listen address another process holds: exit 1 (runtime), not 2, and say which.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        conf = tmp_path / "strait.conf"
        c = valid_conf(kind, ports, cluster_certs)
        c[key] = f"127.0.0.1:{port}"
        write_conf(str(conf), c)
        r = run([BINS[kind], "start", "-c", str(conf), "-p", str(tmp_path / "prefix")])
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert f"127.0.0.1:{port}" in r.stderr, r.stderr
    finally:
        busy.close()
