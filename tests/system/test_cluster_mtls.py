# Guards issue 7, point 1: mutual TLS on the cluster link, in both modes.
#
# shared: one certificate (made by `strait-cp cluster gen_cert`) on every plane, which is
#   also the only trust anchor. pki: each plane has its own certificate signed by the CA in
#   cluster_ca_cert; the DP also checks the CP's name (cluster_server_name, else the host
#   of cluster_control_plane).
#
# Each refusal test runs the good case beside the bad one, with the same set-up but the
# one difference, so that a refusal that would refuse everything fails the test. Refusals
# are seen in both logs where the refused side can know it: the CP names the DP's address
# ("refused data plane IP:PORT"), the DP names the CP ("refused control plane URL"), and
# a DP the CP keeps refusing says so ("closed the connection N times in a row").
#
# Start-up: both binaries refuse (exit 2, Kong's line) to start without the cluster
# certificate and key unless cluster_mtls = off, and without cluster_ca_cert in pki mode.

import calendar
import os
import re
import socket
import ssl
import subprocess
import time

import pytest

from conftest import (CP_BIN, DP_BIN, ZERO_HASH, _child_env, echo_once, holds_for,
                      openssl_cli, scaled, write_conf)

CP_NAME = "cp.strait.test"


def not_after(cert):
    """The certificate's notAfter as a Unix timestamp (openssl's reading, not ours)."""
    out = openssl_cli("x509", "-noout", "-enddate", "-in", cert).strip()
    assert out.startswith("notAfter="), out
    return calendar.timegm(time.strptime(out[len("notAfter="):], "%b %d %H:%M:%S %Y %Z"))


def pki_conf(pki, leaf, ca="ca"):
    cert, key = leaf
    return {"cluster_cert": cert, "cluster_cert_key": key,
            "cluster_ca_cert": pki.ca(ca)[0]}


def cp_pki(pki):
    return pki.leaf("cp", CP_NAME)


def dp_pki(pki, n=1):
    return pki.leaf(f"dp{n}", f"dp{n}.strait.test")


def add_route(cp, echo, dp):
    svc = cp.service(f"echo-{dp.name}", echo.port)
    cp.route(svc, destinations=[{"port": dp.port}])


def assert_serves(dp, echo):
    dp.wait_synced()
    assert echo_once(dp.port) == b"ping\n"


def assert_gets_nothing(dp, cp, seconds=2.0):
    holds_for(lambda: not dp.is_ready(), seconds, f"{dp.name} not ready")
    assert dp.status_hash() == ZERO_HASH
    assert dp.dp_id() not in [d["id"] for d in cp.data_planes()]
    assert not os.path.exists(os.path.join(dp.prefix, "config.cache"))


# ----------------------------------------------------------------------------- shared


def test_shared_mode_end_to_end_with_cert_expiry(st, echo, cluster_certs):
    cp = st.cp()
    dp = st.dp(cp, start=False)
    add_route(cp, echo, dp)
    dp.start()
    assert_serves(dp, echo)
    [d] = cp.data_planes()
    assert d["id"] == dp.dp_id()
    assert d["cert_details"]["expiry_timestamp"] == not_after(cluster_certs[0])
    assert not_after(cluster_certs[0]) > time.time() + 1000 * 86400  # gen_cert: 1095 days


def test_shared_dp_with_other_certificate_refused_both_logs(st, echo, foreign_certs):
    # A DP of another cluster (its own self-signed certificate, trusting only it): the CP
    # refuses it and says who; the DP refuses the CP and says which. The good DP beside it
    # differs only by its certificate.
    cp = st.cp()
    good = st.dp(cp, start=False)
    add_route(cp, echo, good)
    good.start()
    since = cp.log_size()
    bad = st.dp(cp, certs=foreign_certs, wait=False)
    line = cp.wait_log(r"refused data plane", timeout=30, since=since)
    assert re.search(r"\[warn\].*refused data plane 127\.0\.0\.1:\d+: its certificate does "
                     r"not match the cluster certificate", line), line
    line = bad.wait_log(r"refused control plane", timeout=30)
    assert f"refused control plane tls+tcp://127.0.0.1:{cp.cluster_port}" in line, line
    assert "does not match the cluster certificate" in line, line
    assert_gets_nothing(bad, cp)
    assert_serves(good, echo)
    assert [d["id"] for d in cp.data_planes()] == [good.dp_id()]
    assert "refused" not in good.log_text()


def test_shared_dp_trusting_cp_with_foreign_certificate_says_it_is_refused(
        st, echo, cluster_certs, foreign_certs, tmp_path):
    # The cluster certificate is public, its key is not: a DP that trusts the CP (its
    # certificate file holds its own foreign leaf, then the real cluster certificate) but
    # presents the foreign leaf is refused by the CP. The DP completes the handshake, so
    # all it sees is a CP that closes every connection; it says so after a few.
    mixed = tmp_path / "mixed.crt"
    mixed.write_text(open(foreign_certs[0]).read() + open(cluster_certs[0]).read())
    cp = st.cp()
    good = st.dp(cp, start=False)
    add_route(cp, echo, good)
    good.start()
    since = cp.log_size()
    bad = st.dp(cp, certs=(str(mixed), foreign_certs[1]), wait=False)
    line = cp.wait_log(r"refused data plane", timeout=30, since=since)
    assert "does not match the cluster certificate" in line, line
    line = bad.wait_log(r"closed the connection \d+ times in a row", timeout=60)
    assert re.search(r"\[error\].*control plane tls\+tcp://127\.0\.0\.1:%d closed the "
                     r"connection \d+ times in a row before answering: it refuses this data "
                     r"plane's certificate" % cp.cluster_port, line), line
    assert "refused control plane" not in bad.log_text()  # the DP did trust the CP
    assert_gets_nothing(bad, cp)
    assert_serves(good, echo)
    assert "closed the connection" not in good.log_text()


def test_shared_cp_impersonator_refused_by_dp(st, echo, cluster_certs, foreign_certs,
                                             tmp_path):
    # A CP that is not ours (another certificate) listening where the DP dials. It trusts
    # the cluster certificate (its certificate file holds its foreign leaf, then the real
    # cluster certificate, which shared mode also takes as the CA), so it would register
    # the DP if the DP sent it a request: the DP never does, and never takes a
    # configuration from it. The same DP set-up pointed at the real CP works.
    mixed = tmp_path / "impostor.crt"
    mixed.write_text(open(foreign_certs[0]).read() + open(cluster_certs[0]).read())
    real = st.cp()
    fake = st.cp(certs=(str(mixed), foreign_certs[1]))
    good = st.dp(real, start=False)
    victim = st.dp(fake, start=False)
    add_route(real, echo, good)
    add_route(fake, echo, victim)
    good.start()
    victim.start(wait=False)
    line = victim.wait_log(r"refused control plane", timeout=30)
    assert re.search(r"\[error\].*refused control plane tls\+tcp://127\.0\.0\.1:%d: its "
                     r"certificate does not match the cluster certificate"
                     % fake.cluster_port, line), line
    assert_gets_nothing(victim, fake)
    assert fake.data_planes() == []
    assert "refused data plane" not in fake.log_text()  # the impostor did trust the DP
    assert_serves(good, echo)


# ----------------------------------------------------------------------------- pki


def test_pki_mode_end_to_end_with_cert_expiry(st, echo, pki):
    cp = st.cp(mtls="pki", conf=pki_conf(pki, cp_pki(pki)))
    dp_cert = dp_pki(pki)
    dp = st.dp(cp, mtls="pki", start=False,
               conf=dict(pki_conf(pki, dp_cert), cluster_server_name=CP_NAME))
    add_route(cp, echo, dp)
    dp.start()
    assert_serves(dp, echo)
    [d] = cp.data_planes()
    assert d["id"] == dp.dp_id()
    # the DP's own certificate, not the CP's nor the CA's
    assert d["cert_details"]["expiry_timestamp"] == not_after(dp_cert[0])
    cp.wait_log(r"cluster: listening on tls\+tcp://")
    assert "refused" not in cp.log_text() + dp.log_text()


@pytest.mark.parametrize("bad_kind", ["other_ca", "self_signed"])
def test_pki_dp_not_signed_by_the_ca_refused(st, echo, pki, bad_kind):
    # The bad DP trusts the CA (so it accepts the CP) but its own certificate is signed by
    # another CA, or by itself. The good DP differs only by its certificate.
    cp = st.cp(mtls="pki", conf=pki_conf(pki, cp_pki(pki)))
    good = st.dp(cp, mtls="pki", start=False,
                 conf=dict(pki_conf(pki, dp_pki(pki, 1)), cluster_server_name=CP_NAME))
    add_route(cp, echo, good)
    good.start()
    if bad_kind == "other_ca":
        leaf = pki.leaf("dp-other-ca", "dp9.strait.test", ca="ca-other")
    else:
        leaf = pki.self_signed("dp-self", "dp9.strait.test")
    since = cp.log_size()
    bad = st.dp(cp, mtls="pki", wait=False,
                conf=dict(pki_conf(pki, leaf), cluster_server_name=CP_NAME))
    line = cp.wait_log(r"refused data plane", timeout=30, since=since)
    assert re.search(r"\[warn\].*refused data plane 127\.0\.0\.1:\d+: its certificate is "
                     r"missing or not signed by cluster_ca_cert", line), line
    line = bad.wait_log(r"closed the connection \d+ times in a row", timeout=60)
    assert "signed by the control plane's cluster_ca_cert" in line, line
    assert_gets_nothing(bad, cp)
    assert_serves(good, echo)
    assert [d["id"] for d in cp.data_planes()] == [good.dp_id()]


def sp_client(port, ca, cert=None, key=None):
    """A raw TLS client speaking nng's SP header as a req0 peer: what a DP sends first."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(cert, key)
    raw = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
    tls = ctx.wrap_socket(raw)
    tls.sendall(b"\x00SP\x00\x00\x30\x00\x00")  # SP v0, protocol req0 (0x30)
    return tls


def read_until_closed(tls):
    data = b""
    try:
        while True:
            chunk = tls.recv(4096)
            if not chunk:
                return data
            data += chunk
    except (ssl.SSLError, ConnectionResetError):
        return data


def test_pki_client_without_certificate_refused(st, pki):
    # A TLS client that presents no certificate at all gets past the handshake (the CP
    # verifies optionally, to log), then is refused: only the CP's SP header reaches it.
    # The control: the same client with a DP certificate is kept (the CP waits for its
    # request).
    cp = st.cp(mtls="pki", conf=pki_conf(pki, cp_pki(pki)))
    ca = pki.ca()[0]
    since = cp.log_size()
    bare = sp_client(cp.cluster_port, ca)
    line = cp.wait_log(r"refused data plane", timeout=30, since=since)
    assert re.search(r"refused data plane 127\.0\.0\.1:%d: its certificate is missing or not "
                     r"signed by cluster_ca_cert" % bare.getsockname()[1], line), line
    assert read_until_closed(bare) == b"\x00SP\x00\x00\x31\x00\x00"  # rep0's header only
    bare.close()
    since = cp.log_size()
    cert, key = dp_pki(pki)
    good = sp_client(cp.cluster_port, ca, cert, key)
    assert good.recv(8) == b"\x00SP\x00\x00\x31\x00\x00"
    good.settimeout(1.0)
    with pytest.raises(socket.timeout):
        good.recv(1)  # kept open: nothing to read until it asks
    good.close()
    assert "refused data plane" not in cp.log_text()[since:]


def test_pki_cp_impersonator_refused_by_dp(st, echo, pki):
    # A CP whose certificate carries the right name but is signed by another CA. It trusts
    # our CA, so it would register the DP if the DP sent it a request: it never does.
    real = st.cp(mtls="pki", conf=pki_conf(pki, cp_pki(pki)))
    fake = st.cp(mtls="pki", conf=pki_conf(pki, pki.leaf("cp-fake", CP_NAME, ca="ca-fake")))
    conf = dict(pki_conf(pki, dp_pki(pki)), cluster_server_name=CP_NAME)
    good = st.dp(real, mtls="pki", start=False, conf=conf)
    victim = st.dp(fake, mtls="pki", start=False, conf=conf)
    add_route(real, echo, good)
    add_route(fake, echo, victim)
    good.start()
    victim.start(wait=False)
    line = victim.wait_log(r"refused control plane", timeout=30)
    assert re.search(r"\[error\].*refused control plane tls\+tcp://127\.0\.0\.1:%d: its "
                     r"certificate is not signed by cluster_ca_cert or not issued to "
                     r"'%s'" % (fake.cluster_port, re.escape(CP_NAME)), line), line
    assert_gets_nothing(victim, fake)
    assert fake.data_planes() == []
    assert "refused data plane" not in fake.log_text()  # the impostor did trust the DP
    assert_serves(good, echo)


def test_pki_cp_name_must_match_cluster_server_name(st, echo, pki):
    # Same CA, same CP; only the name the DP expects differs.
    cp = st.cp(mtls="pki", conf=pki_conf(pki, cp_pki(pki)))
    good = st.dp(cp, mtls="pki", start=False,
                 conf=dict(pki_conf(pki, dp_pki(pki, 1)), cluster_server_name=CP_NAME))
    add_route(cp, echo, good)
    good.start()
    bad = st.dp(cp, mtls="pki", wait=False,
                conf=dict(pki_conf(pki, dp_pki(pki, 2)),
                          cluster_server_name="other.strait.test"))
    line = bad.wait_log(r"refused control plane", timeout=30)
    assert "not issued to 'other.strait.test'" in line, line
    assert_gets_nothing(bad, cp)
    assert_serves(good, echo)


def test_pki_default_server_name_is_the_control_plane_host(st, echo, pki):
    # Without cluster_server_name the DP expects the host it dials (Kong's rule): here
    # 127.0.0.1, which one CP certificate carries (as its CN, no SAN) and the other not.
    by_ip = st.cp(mtls="pki", conf=pki_conf(pki, pki.leaf("cp-ip", "127.0.0.1", sans=[])))
    by_name = st.cp(mtls="pki", conf=pki_conf(pki, cp_pki(pki)))
    good = st.dp(by_ip, mtls="pki", start=False, conf=pki_conf(pki, dp_pki(pki, 1)))
    bad = st.dp(by_name, mtls="pki", start=False, conf=pki_conf(pki, dp_pki(pki, 2)))
    add_route(by_ip, echo, good)
    add_route(by_name, echo, bad)
    good.start()
    bad.start(wait=False)
    line = bad.wait_log(r"refused control plane", timeout=30)
    assert "not issued to '127.0.0.1'" in line, line
    assert_gets_nothing(bad, by_name)
    assert_serves(good, echo)


def test_shared_mode_ignores_pki_only_keys(st, echo, pki, cluster_certs):
    # cluster_server_name and cluster_ca_cert are pki keys: in shared mode the certificate
    # is pinned, so a name it does not carry changes nothing.
    cp = st.cp(conf={"cluster_ca_cert": pki.ca()[0]})
    dp = st.dp(cp, start=False, conf={"cluster_server_name": "not-this.strait.test",
                                      "cluster_ca_cert": pki.ca()[0]})
    add_route(cp, echo, dp)
    dp.start()
    assert_serves(dp, echo)


# ----------------------------------------------------------------------------- start-up

BINS = {"cp": CP_BIN, "dp": DP_BIN}
KONG_CERT_LINE = "cluster certificate and key must be provided to use Hybrid mode"
KONG_CA_LINE = 'cluster_ca_cert must be specified when cluster_mtls = "pki"'


def base_conf(kind, ports):
    if kind == "cp":
        return {"admin_listen": f"127.0.0.1:{ports.get()}",
                "cluster_listen": f"127.0.0.1:{ports.get()}"}
    return {"cluster_control_plane": f"127.0.0.1:{ports.get()}",
            "stream_listen": f"127.0.0.1:{ports.get()}",
            "status_listen": f"127.0.0.1:{ports.get()}"}


def run(kind, command, conf, tmp_path):
    path = tmp_path / f"{kind}.conf"
    write_conf(str(path), conf)
    return subprocess.run([BINS[kind], command, "-c", str(path), "-p", str(tmp_path / kind)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=_child_env({}), timeout=scaled(30))


@pytest.mark.parametrize("kind", ["cp", "dp"])
@pytest.mark.parametrize("mode", ["shared", "pki"])
@pytest.mark.parametrize("missing", ["cluster_cert", "cluster_cert_key"])
def test_missing_cluster_cert_or_key_refused_at_start(kind, mode, missing, tmp_path, ports,
                                                      pki, cluster_certs):
    certs = cluster_certs if mode == "shared" else (pki.leaf("cp", CP_NAME))
    conf = dict(base_conf(kind, ports), cluster_cert=certs[0], cluster_cert_key=certs[1])
    if mode == "pki":
        conf.update(cluster_mtls="pki", cluster_ca_cert=pki.ca()[0])
    # the control: the full set passes `check`
    r = run(kind, "check", conf, tmp_path)
    assert r.returncode == 0, (r.returncode, r.stderr)
    del conf[missing]
    r = run(kind, "start", conf, tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert missing in lines[0] and KONG_CERT_LINE in lines[0], lines[0]
    # and cluster_mtls = off needs neither (warned at start, not refused)
    conf.pop("cluster_cert", None)
    conf.pop("cluster_cert_key", None)
    conf.pop("cluster_ca_cert", None)
    conf["cluster_mtls"] = "off"
    r = run(kind, "check", conf, tmp_path)
    assert r.returncode == 0, (r.returncode, r.stderr)


@pytest.mark.parametrize("kind", ["cp", "dp"])
def test_pki_without_cluster_ca_cert_refused_at_start(kind, tmp_path, ports, pki):
    cert, key = pki.leaf("cp", CP_NAME)
    conf = dict(base_conf(kind, ports), cluster_mtls="pki", cluster_cert=cert,
                cluster_cert_key=key, cluster_ca_cert=pki.ca()[0])
    r = run(kind, "check", conf, tmp_path)
    assert r.returncode == 0, (r.returncode, r.stderr)
    del conf["cluster_ca_cert"]
    r = run(kind, "start", conf, tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert KONG_CA_LINE in lines[0], lines[0]
    assert re.search(r"%s\.conf:\d+: cluster_mtls:" % kind, lines[0]), lines[0]
    # an unreadable CA is refused too, naming the file
    conf["cluster_ca_cert"] = str(tmp_path / "no-such-ca.crt")
    r = run(kind, "start", conf, tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "cluster_ca_cert" in r.stderr and "no-such-ca.crt" in r.stderr, r.stderr
