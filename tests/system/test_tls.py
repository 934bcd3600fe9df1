# Guards issue 3, points 2 to 5 (the TLS data path), with real TLS clients (`openssl
# s_client` subprocesses and Python's ssl module) against the real strait-cp and strait-dp:
# the seed's exact flow (stream_listen ... ssl, a tls route with snis, a certificate, and
# `openssl s_client -servername tlsbin-example` talking to the upstream); the certificate
# chosen by SNI in Kong's order (exact, `*.rest`, `prefix.*`, `*`, the default certificate
# generated into PREFIX/ssl with CN=localhost) and a client without SNI; dual RSA/ECDSA
# certificates; tls_passthrough (the client sees the upstream's certificate); TLS to `tls`
# services (SNI = service host, none for an IP, the client's with preserve_host;
# verification with ca_certificates, the failure closed and logged; a client certificate
# for mutual TLS); a certificate changed through the admin API without a restart while an
# open session carries on; garbage, truncated, stalled and oversized ClientHellos, each
# closed and logged and followed by a good client; resumption (ten in a row across
# workers, across a configuration change, across a ticket key rotation); ssl_protocols and
# ssl_cipher_suite.

import os
import re
import socket
import ssl
import subprocess
import time

import pytest

from conftest import (cert_key_type, cert_subject, client_hello, closed_without_data,
                      echo_once, pem_to_der, read_text, s_client, scaled,
                      served_cert, tls_client_ctx, tls_connect, tls_echo, tls_recv_exact,
                      wait_for)

SEED_SNI = "tlsbin-example"
# a short preread_timeout for the bad-hello tests (scaled: it also bounds the handshake
# of the good client that follows, which is slower under a sanitizer)
PREREAD_MS = int(scaled(0.5) * 1000)


# ----------------------------------------------------------------------------- helpers


def ssl_dp(st, cp, flags=("ssl",), **kw):
    """A DP (not started) with one listener per entry of flags ("ssl" or None)."""
    return st.dp(cp, listeners=len(flags), listen_flags=list(flags), start=False, **kw)


def start_synced(dp):
    dp.start()
    dp.wait_synced()
    return dp


def add_cert(cp, cert, key, snis=(), cert_alt=None, key_alt=None):
    body = {"cert": read_text(cert), "key": read_text(key)}
    if snis:
        body["snis"] = list(snis)
    if cert_alt:
        body["cert_alt"] = read_text(cert_alt)
        body["key_alt"] = read_text(key_alt)
    return cp.ok("POST", "/certificates", json_body=body, expect=201)


def tls_route(cp, svc, snis=None, protocols=("tls",), **fields):
    if snis is not None:
        fields["snis"] = list(snis)
    return cp.route(svc, protocols=list(protocols), **fields)


def tls_status(dp):
    tls = dp.status().get("tls")
    assert isinstance(tls, dict), f"/status has no 'tls' object: {dp.status()}"
    return tls


def session_line(dp, cport, since=0, timeout=10):
    """The session end line of the client whose local port is cport."""
    return dp.wait_log(rf"session: client 127\.0\.0\.1:{cport}, ", timeout=timeout, since=since)


def threads_rchar(dp):
    """{thread id: bytes read (rchar, /proc/PID/task/TID/io)} of the DP's threads."""
    out = {}
    for tid in os.listdir(f"/proc/{dp.p.pid}/task"):
        try:
            with open(f"/proc/{dp.p.pid}/task/{tid}/io") as f:
                fields = dict(ln.split(": ") for ln in f.read().splitlines() if ln)
        except OSError:
            continue
        out[tid] = int(fields["rchar"])
    return out


def busiest_thread(before, after):
    """The thread that read the most between two threads_rchar() snapshots: the worker
    that served a session (its ClientHello alone is hundreds of bytes; the logger thread
    reads 8-byte eventfd counts). Log lines carry the logger's thread id, not the
    worker's, so this is how a test tells workers apart."""
    deltas = {t: after[t] - before.get(t, 0) for t in after}
    tid = max(deltas, key=deltas.get)
    assert deltas[tid] >= 200, deltas
    return tid


def handshake_fails(port, sni, ctx, timeout=10):
    """True when the TLS handshake through the DP fails (alert, EOF or reset)."""
    try:
        with tls_connect(port, sni, ctx=ctx, timeout=timeout) as s:
            # a TLS 1.3 client may only learn of the server's refusal on its first read
            s.sendall(b"x\n")
            s.settimeout(scaled(timeout))
            d = s.recv(10)
            return d == b""
    except TimeoutError:
        raise AssertionError("the DP neither finished nor refused the handshake in time")
    except (ssl.SSLError, OSError):
        return True


def reads_to_close(sock, timeout=10):
    """Reads until EOF/reset; True when the DP closed (whatever it sent before, e.g. an alert)."""
    sock.settimeout(scaled(timeout))
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        raise AssertionError(f"connection still open after {scaled(timeout):.1f}s")


def curl_cert(cp, cert, key, snis_field, names):
    """POST /certificates as multipart (Kong's curl -F form); waits for the CP to publish."""
    h0 = cp.status_hash()
    args = ["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
            "-F", f"cert=@{cert}", "-F", f"key=@{key}"]
    for n in names:
        args += ["-F", f"{snis_field}={n}"]
    r = subprocess.run(args + [f"{cp.base}/certificates"], capture_output=True, text=True,
                       timeout=scaled(20))
    assert r.returncode == 0 and r.stdout == "201", (r.stdout, r.stderr)
    wait_for(lambda: cp.status_hash() != h0, 10, "the CP to publish the certificate")


# ----------------------------------------------------------------------------- 1. the seed


def test_seed_flow_openssl_s_client(st, pki, echo):
    """The seed's lines, in Kong's form encoding: a tcp service by url, a tls route with
    snis on it, a certificate uploaded with curl -F; `openssl s_client -servername
    tlsbin-example` completes a verified handshake and the upstream echoes through it."""
    ca = pki.ca()[0]
    cert, key = pki.leaf("tlsbin", SEED_SNI)
    cp = st.cp()
    dp = ssl_dp(st, cp)
    cp.ok("POST", "/services", form=[("name", "tlsbin"), ("url", f"tcp://127.0.0.1:{echo.port}")])
    cp.ok("POST", "/services/tlsbin/routes", form=[("protocols", "tls"), ("snis", SEED_SNI)])
    curl_cert(cp, cert, key, "snis[]", [SEED_SNI])
    start_synced(dp)
    h0 = dp.status().get("tls", {}).get("handshakes", 0)
    since = dp.log_size()

    payload = b"hello tlsbin through strait\n"
    r = s_client(dp.port, "-servername", SEED_SNI, "-CAfile", ca, "-verify_hostname", SEED_SNI,
                 "-verify_return_error", payload=payload)
    assert r.established, r
    assert payload in r.out, r
    assert "Verification: OK" in r.err, r
    assert re.search(r"Peer certificate: CN ?= ?tlsbin-example", r.err), r
    # the upstream got the plaintext: the DP terminated TLS and spoke tcp to the service
    wait_for(lambda: echo.received() == payload, 10, "the upstream to receive the plaintext")

    line = dp.wait_log(r"session: .*, sni tlsbin-example, tls TLSv1\.[23]", since=since)
    assert "status 200" in line and f"listener 127.0.0.1:{dp.port}" in line, line
    wait_for(lambda: tls_status(dp)["handshakes"] >= h0 + 1, 10,
             "/status tls.handshakes to count the handshake")

    # TLS 1.2 too, same flow
    r = s_client(dp.port, "-servername", SEED_SNI, "-tls1_2", "-CAfile", ca,
                 "-verify_return_error", payload=b"again over 1.2\n")
    assert r.established and b"again over 1.2\n" in r.out, r
    assert "Protocol version: TLSv1.2" in r.err, r


# ----------------------------------------------------------------------------- 2. SNI


def test_sni_selects_certificate_in_kong_order(st, pki, echo):
    """Exact beats `*.example.test`; `*.x` is the first label replaced only; `prefix.*`
    the last; the `*` SNI catches what nothing else does; without it (and always for a
    client that sends no SNI) the default certificate, CN=localhost, generated into
    PREFIX/ssl and reused on restart."""
    exact = pki.leaf("sni-exact", "exact.example.test")
    wild = pki.leaf("sni-wild", "wild.example.test", ["DNS:*.example.test"])
    prefix = pki.leaf("sni-prefix", "prefix.any", ["DNS:prefix.any"])
    prefix3 = pki.leaf("sni-prefix3", "prefix3.any", ["DNS:prefix3.any"])
    star = pki.leaf("sni-star", "star.any", ["DNS:star.any"])
    cp = st.cp()
    dp = ssl_dp(st, cp)
    svc = cp.service("echo", echo.port)
    # by destination port: matches every SNI, and clients without one
    tls_route(cp, svc, name="by-port", destinations=[{"port": dp.port}])
    ex = add_cert(cp, *exact, snis=["exact.example.test"])
    add_cert(cp, *wild, snis=["*.example.test"])
    add_cert(cp, *prefix, snis=["prefix.*"])
    add_cert(cp, *prefix3, snis=["both.example.*"])
    start_synced(dp)

    def cert_for(sni):
        r = tls_echo(dp.port, sni, payload=b"sni?\n")
        assert r["echo"] == b"sni?\n"
        return r["cert"]

    der = {k: pem_to_der(v[0]) for k, v in
           (("exact", exact), ("wild", wild), ("prefix", prefix), ("prefix3", prefix3),
            ("star", star))}
    ssl_dir = os.path.join(dp.prefix, "ssl")
    default_rsa = os.path.join(ssl_dir, "strait-default.crt")
    default_ec = os.path.join(ssl_dir, "strait-default-ecdsa.crt")
    assert os.path.exists(default_rsa) and os.path.exists(default_ec), os.listdir(dp.prefix)
    defaults = {pem_to_der(default_rsa), pem_to_der(default_ec)}

    assert cert_for("exact.example.test") == der["exact"]
    assert cert_for("other.example.test") == der["wild"]
    assert cert_for("prefix.other") == der["prefix"]
    # a name both `*.example.test` and `both.example.*` match: the leading wildcard wins
    assert cert_for("both.example.test") == der["wild"]
    assert cert_for("both.example.org") == der["prefix3"]
    # `*.example.test` replaces one label only (Kong's certificate lookup), and nothing
    # else matches: the default certificate
    for sni in ("a.b.example.test", "nomatch.org", None):
        got = cert_for(sni)
        assert got in defaults, (sni, cert_subject(got))
        assert cert_subject(got) == "CN=localhost", cert_subject(got)
    # the default pair, one of each kind
    rsa12 = tls_client_ctx(version="1.2", ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    ec12 = tls_client_ctx(version="1.2", ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    assert served_cert(dp.port, None, ctx=rsa12) == pem_to_der(default_rsa)
    assert served_cert(dp.port, None, ctx=ec12) == pem_to_der(default_ec)
    assert cert_key_type(pem_to_der(default_rsa)) == "rsa"
    assert cert_key_type(pem_to_der(default_ec)) == "ec"

    # the `*` SNI, added through the admin API: catches what nothing else matched
    add_cert(cp, *star, snis=["*"])
    dp.wait_synced()
    assert cert_for("a.b.example.test") == der["star"]
    assert cert_for("nomatch.org") == der["star"]
    assert cert_for("exact.example.test") == der["exact"]
    assert cert_for("other.example.test") == der["wild"]
    # a client without SNI gets the default certificate (DESIGN.md, "Data plane")
    assert cert_for(None) in defaults

    # the certificate by SNI name through the admin API still resolves
    assert cp.get("/certificates/exact.example.test").json["id"] == ex["id"]

    # the default certificate is made once and reused on restart
    before = (read_text(default_rsa), read_text(default_ec))
    dp.restart()
    dp.wait_synced()
    assert (read_text(default_rsa), read_text(default_ec)) == before
    assert served_cert(dp.port, None, ctx=rsa12) == pem_to_der(default_rsa)


def test_client_without_sni_matches_only_routes_without_snis(st, pki, echo):
    """An SNI-only route never matches a client without SNI (closed, logged `sni -`); a
    route by destination port on another ssl listener serves it with the default
    certificate. Route SNI matching: case-insensitive, trailing dot, `*.x` over several
    labels, `x.*`."""
    cert = pki.leaf("nosni", "only.example.test")
    cp = st.cp()
    dp = ssl_dp(st, cp, flags=("ssl", "ssl"))
    sni_port, dst_port = dp.listen_ports
    svc = cp.service("echo", echo.port)
    tls_route(cp, svc, name="sni-only", snis=["only.example.test", "*.deep.test", "pre.*"])
    tls_route(cp, svc, name="by-port", destinations=[{"port": dst_port}])
    add_cert(cp, *cert, snis=["only.example.test"])
    start_synced(dp)

    # the SNI route (s_client sends the name as given: Python's ssl lowercases it)
    assert tls_echo(sni_port, "only.example.test")["echo"] == b"ping\n"
    for name in ("ONLY.Example.TEST", "only.example.test."):
        r = s_client(sni_port, "-servername", name, payload=b"case and dot\n")
        assert r.established and b"case and dot\n" in r.out, (name, r)
    assert tls_echo(sni_port, "a.b.c.deep.test")["echo"] == b"ping\n"
    assert tls_echo(sni_port, "pre.x.y")["echo"] == b"ping\n"

    # no SNI on the SNI-only listener: no route, closed, logged
    since = dp.log_size()
    raw = socket.create_connection(("127.0.0.1", sni_port), timeout=scaled(10))
    cport = raw.getsockname()[1]
    with raw:
        raw.sendall(client_hello(sni=None))
        assert reads_to_close(raw)
    line = dp.wait_log(rf"no route matched: listener 127\.0\.0\.1:{sni_port}[^,]*, "
                       rf"client 127\.0\.0\.1:{cport}, destination 127\.0\.0\.1:{sni_port}, "
                       rf"sni -", since=since)
    assert "[info]" in line, line
    # an SNI no route has: logged with the name
    since = dp.log_size()
    assert handshake_fails(sni_port, "stranger.example.org", tls_client_ctx())
    dp.wait_log(r"no route matched: .*, sni stranger\.example\.org", since=since)

    # no SNI on the port route: the default certificate, and the echo
    r = tls_echo(dp.listen_ports[1], None)
    assert r["echo"] == b"ping\n"
    assert cert_subject(r["cert"]) == "CN=localhost"
    line = session_line(dp, r["cport"])
    assert "status 200" in line and "sni -" in line, line


# ----------------------------------------------------------------------------- 3. dual


def test_dual_certificate_rsa_and_ecdsa_clients(st, pki, echo):
    """A certificate with an RSA cert and an ECDSA cert_alt: an RSA-only client gets the
    RSA one, an ECDSA-only client the ECDSA one, over TLS 1.2 (by cipher) and TLS 1.3 (by
    signature algorithm)."""
    rsa = pki.leaf("dual-rsa", "dual.example.test", kind="rsa", org="rsa")
    ec = pki.leaf("dual-ec", "dual.example.test", kind="ec", org="ecdsa")
    cp = st.cp()
    dp = ssl_dp(st, cp)
    svc = cp.service("echo", echo.port)
    tls_route(cp, svc, snis=["dual.example.test"])
    add_cert(cp, rsa[0], rsa[1], snis=["dual.example.test"], cert_alt=ec[0], key_alt=ec[1])
    start_synced(dp)

    # TLS 1.2, Python: the cipher's authentication picks the certificate
    r = tls_echo(dp.port, "dual.example.test",
                 ctx=tls_client_ctx(version="1.2", ciphers="ECDHE-RSA-AES128-GCM-SHA256"))
    assert r["cert"] == pem_to_der(rsa[0]), cert_subject(r["cert"])
    r = tls_echo(dp.port, "dual.example.test",
                 ctx=tls_client_ctx(version="1.2", ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"))
    assert r["cert"] == pem_to_der(ec[0]), cert_subject(r["cert"])

    # TLS 1.3, openssl s_client: the signature algorithms pick it
    r = s_client(dp.port, "-servername", "dual.example.test", "-tls1_3",
                 "-sigalgs", "RSA-PSS+SHA256:rsa_pss_pss_sha256", payload=b"rsa13\n")
    assert r.established and b"rsa13\n" in r.out, r
    assert re.search(r"Peer certificate: .*O ?= ?rsa\b", r.err), r
    r = s_client(dp.port, "-servername", "dual.example.test", "-tls1_3",
                 "-sigalgs", "ECDSA+SHA256", payload=b"ec13\n")
    assert r.established and b"ec13\n" in r.out, r
    assert re.search(r"Peer certificate: .*O ?= ?ecdsa\b", r.err), r
    # TLS 1.2, openssl s_client with RSA-only signature algorithms and cipher
    r = s_client(dp.port, "-servername", "dual.example.test", "-tls1_2",
                 "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256", "-cipher",
                 "ECDHE-RSA-AES128-GCM-SHA256", payload=b"rsa12\n")
    assert r.established and b"rsa12\n" in r.out, r
    assert re.search(r"Peer certificate: .*O ?= ?rsa\b", r.err), r


# ----------------------------------------------------------------------------- 4. passthrough


def test_passthrough_client_sees_upstream_certificate(st, pki):
    """A tls_passthrough route: the DP does not terminate (even with a certificate of its
    own for the name); the client verifies the upstream's certificate and name, the
    upstream sees the client's SNI, and the data echoes."""
    ca = pki.ca()[0]
    up_cert, up_key = pki.leaf("pass-up", "pass.example.test")
    decoy = pki.self_signed("pass-decoy", "pass.example.test")
    up = st.tls_echo(up_cert, up_key, name="pass-upstream")
    cp = st.cp()
    dp = ssl_dp(st, cp)
    svc = cp.service("tls-upstream", up.port)
    tls_route(cp, svc, snis=["pass.example.test"], protocols=("tls_passthrough",))
    add_cert(cp, *decoy, snis=["pass.example.test"])
    start_synced(dp)
    t0 = tls_status(dp)
    since = dp.log_size()

    for version in ("1.3", "1.2"):
        payload = f"through untouched {version}\n".encode()
        r = tls_echo(dp.port, "pass.example.test", payload=payload,
                     ctx=tls_client_ctx(version=version, cafile=ca))
        assert r["echo"] == payload
        assert r["cert"] == pem_to_der(up_cert), cert_subject(r["cert"])
        rec = [c for c in up.handshakes() if bytes(c["data"]) == payload]
        assert rec and rec[0]["sni"] == "pass.example.test", up.conns
        line = session_line(dp, r["cport"], since=since)
        assert "status 200" in line and line.rstrip().endswith(
            "sni pass.example.test, tls passthrough"), line
    # openssl s_client, verifying the upstream's name against the test CA
    r = s_client(dp.port, "-servername", "pass.example.test", "-CAfile", ca,
                 "-verify_hostname", "pass.example.test", "-verify_return_error")
    assert r.established and b"hello through strait\n" in r.out, r
    assert re.search(r"Peer certificate: CN ?= ?pass\.example\.test", r.err), r
    # the DP terminated nothing
    assert tls_status(dp)["handshakes"] == t0["handshakes"]


# ----------------------------------------------------------------------------- 5. TLS upstream


def test_plain_client_to_tls_service_sni(st, pki):
    """A plain client on a plain listener to a `tls` service: the upstream sees TLS, with
    SNI = the service host (none for an IP host); on a tls route with preserve_host the
    client's SNI, without it the service host."""
    up_cert, up_key = pki.leaf("up-sni", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    up = st.tls_echo(up_cert, up_key, name="tls-upstream")
    cp = st.cp()
    dp = ssl_dp(st, cp, flags=(None, None, "ssl"))
    by_name, by_ip, ssl_port = dp.listen_ports
    s_name = cp.ok("POST", "/services", json_body={
        "name": "tls-by-name", "url": f"tls://localhost:{up.port}"}, expect=201)
    assert s_name["protocol"] == "tls" and s_name["host"] == "localhost", s_name
    s_ip = cp.service("tls-by-ip", up.port, host="127.0.0.1", protocol="tls")
    cp.route(s_name, destinations=[{"port": by_name}])
    cp.route(s_ip, destinations=[{"port": by_ip}])
    tls_route(cp, s_name, snis=["keep.example.test"], preserve_host=True)
    tls_route(cp, s_name, snis=["nokeep.example.test"], preserve_host=False)
    start_synced(dp)

    def upstream_record(payload):
        recs = [c for c in up.handshakes() if bytes(c["data"]) == payload]
        assert len(recs) == 1, up.conns
        return recs[0]

    assert echo_once(by_name, b"plain to tls by name\n") == b"plain to tls by name\n"
    rec = upstream_record(b"plain to tls by name\n")
    assert rec["sni"] == "localhost" and rec["version"] in ("TLSv1.2", "TLSv1.3"), rec

    assert echo_once(by_ip, b"plain to tls by ip\n") == b"plain to tls by ip\n"
    assert upstream_record(b"plain to tls by ip\n")["sni"] is None

    r = tls_echo(ssl_port, "keep.example.test", payload=b"preserve host\n")
    assert r["echo"] == b"preserve host\n"
    assert upstream_record(b"preserve host\n")["sni"] == "keep.example.test"

    r = tls_echo(ssl_port, "nokeep.example.test", payload=b"service host\n")
    assert r["echo"] == b"service host\n"
    assert upstream_record(b"service host\n")["sni"] == "localhost"


def test_upstream_verification(st, pki):
    """tls_verify with ca_certificates: a CA that did not sign the upstream's certificate
    closes the session, logged at error level with OpenSSL's reason (status 502); the
    right CA works; a certificate for another name fails with a name mismatch."""
    ca_cert = pki.ca()[0]
    other_ca = pki.ca("ca-other")[0]
    up_cert, up_key = pki.leaf("up-verify", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    wrong_cert, wrong_key = pki.leaf("up-wrongname", "elsewhere.test")
    up = st.tls_echo(up_cert, up_key, name="verified-upstream")
    wrong = st.tls_echo(wrong_cert, wrong_key, name="wrong-name-upstream")
    cp = st.cp()
    dp = ssl_dp(st, cp, flags=(None, None))
    p_ca, p_name = dp.listen_ports
    good_ca = cp.ok("POST", "/ca_certificates", json_body={"cert": read_text(ca_cert)},
                    expect=201)
    bad_ca = cp.ok("POST", "/ca_certificates", json_body={"cert": read_text(other_ca)},
                   expect=201)
    svc = cp.service("verified", up.port, host="localhost", protocol="tls", tls_verify=True,
                     ca_certificates=[bad_ca["id"]])
    svc2 = cp.service("wrong-name", wrong.port, host="localhost", protocol="tls",
                      tls_verify=True, ca_certificates=[good_ca["id"]])
    cp.route(svc, destinations=[{"port": p_ca}])
    cp.route(svc2, destinations=[{"port": p_name}])
    start_synced(dp)

    since = dp.log_size()
    s = socket.create_connection(("127.0.0.1", p_ca), timeout=scaled(10))
    cport = s.getsockname()[1]
    with s:
        try:
            s.sendall(b"should not pass\n")
        except OSError:
            pass
        assert closed_without_data(s)
    line = dp.wait_log(rf"TLS handshake with upstream failed: .*certificate verify failed.*"
                       rf"while TLS handshaking with upstream, client: 127\.0\.0\.1:{cport}\b",
                       since=since)
    assert "[error]" in line, line
    assert re.search(r"unable to get local issuer certificate|self.signed", line), line
    end = session_line(dp, cport, since=since)
    assert "status 502" in end, end
    assert b"should not pass" not in up.received()

    # the name check: right CA, wrong name
    since = dp.log_size()
    s = socket.create_connection(("127.0.0.1", p_name), timeout=scaled(10))
    with s:
        assert closed_without_data(s)
    line = dp.wait_log(r"TLS handshake with upstream failed: .*certificate verify failed",
                       since=since)
    assert re.search(r"hostname mismatch", line), line

    # the right CA: verified, and the echo
    cp.ok("PATCH", f"/services/{svc['id']}", json_body={"ca_certificates": [good_ca["id"]]})
    dp.wait_synced()
    assert echo_once(p_ca, b"verified\n") == b"verified\n"
    assert any(c["sni"] == "localhost" for c in up.handshakes())


def test_client_certificate_to_upstream(st, pki):
    """A TLS upstream that requires a client certificate: refused without one, and given
    the service's client_certificate once it is set."""
    ca = pki.ca()[0]
    up_cert, up_key = pki.leaf("up-mtls", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    cl_cert, cl_key = pki.leaf("dp-client", "strait-dp-client", kind="ec")
    up = st.tls_echo(up_cert, up_key, client_ca=ca, name="mtls-upstream")
    cp = st.cp()
    dp = ssl_dp(st, cp, flags=(None,))
    cc = add_cert(cp, cl_cert, cl_key)
    svc = cp.service("mtls", up.port, host="localhost", protocol="tls")
    cp.route(svc, destinations=[{"port": dp.port}])
    start_synced(dp)

    since = dp.log_size()
    s = socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10))
    cport = s.getsockname()[1]
    with s:
        try:
            s.sendall(b"no client cert\n")
        except OSError:
            pass
        assert reads_to_close(s)
    wait_for(lambda: any(c["error"] for c in up.conns), 10,
             "the upstream to refuse a handshake without client certificate")
    assert b"no client cert" not in up.received()
    assert not up.handshakes(), up.conns
    session_line(dp, cport, since=since)

    cp.ok("PATCH", f"/services/{svc['id']}", json_body={"client_certificate": {"id": cc["id"]}})
    dp.wait_synced()
    assert echo_once(dp.port, b"mutual tls\n") == b"mutual tls\n"
    rec = [c for c in up.handshakes() if bytes(c["data"]) == b"mutual tls\n"]
    assert rec and rec[0]["client_cert"] == pem_to_der(cl_cert), up.conns


# ----------------------------------------------------------------------------- 7. rotation


def test_certificate_change_without_restart(st, pki, echo):
    """PATCH a certificate's cert and key: new handshakes get the new certificate without
    a restart, while a session opened before keeps working."""
    v1 = pki.leaf("rot-v1", "rot.example.test", org="v1")
    v2 = pki.leaf("rot-v2", "rot.example.test", org="v2", kind="rsa")
    cp = st.cp()
    dp = ssl_dp(st, cp)
    svc = cp.service("echo", echo.port)
    tls_route(cp, svc, snis=["rot.example.test"])
    c = add_cert(cp, *v1, snis=["rot.example.test"])
    start_synced(dp)
    pid = dp.p.pid

    held = tls_connect(dp.port, "rot.example.test")
    try:
        assert held.getpeercert(binary_form=True) == pem_to_der(v1[0])
        held.sendall(b"before\n")
        assert tls_recv_exact(held, 7) == b"before\n"

        cp.ok("PATCH", f"/certificates/{c['id']}",
              json_body={"cert": read_text(v2[0]), "key": read_text(v2[1])})
        dp.wait_synced()
        wait_for(lambda: served_cert(dp.port, "rot.example.test") == pem_to_der(v2[0]), 10,
                 "new handshakes to get the new certificate")
        r = tls_echo(dp.port, "rot.example.test", payload=b"new cert\n")
        assert r["echo"] == b"new cert\n" and r["cert"] == pem_to_der(v2[0])

        # the session opened before carries on
        for i in range(3):
            msg = f"still here {i}\n".encode()
            held.sendall(msg)
            assert tls_recv_exact(held, len(msg)) == msg
    finally:
        held.close()
    assert dp.p.pid == pid and dp.alive()


# ----------------------------------------------------------------------------- 8. bad hellos


def _oversized_record():
    # a handshake record header claiming 0x4801 bytes: above 2^14 + 2048, never valid
    return b"\x16\x03\x01\x48\x01" + b"\x01" + b"\x00" * 2000


def _oversized_handshake():
    # a well-formed 16 KiB record whose ClientHello claims 16 MiB
    body = b"\x01\xff\xff\xff" + b"\x03\x03" + os.urandom(32) + b"\x00" * (16384 - 4 - 34)
    return b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body


def _bad_length_hello():
    # a real ClientHello whose extensions length claims more than the message holds
    h = bytearray(client_hello("lengths.example.test"))
    # record(5) + handshake header(4) + version(2) + random(32)
    i = 5 + 4 + 2 + 32
    i += 1 + h[i]                                   # session id
    i += 2 + int.from_bytes(h[i:i + 2], "big")      # cipher suites
    i += 1 + h[i]                                   # compression methods
    h[i:i + 2] = (int.from_bytes(h[i:i + 2], "big") + 200).to_bytes(2, "big")
    return bytes(h)


BAD_HELLOS = {
    # name: (bytes to send, then "eof" (shut our write side) or "hold"; the log pattern)
    "garbage": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hold",
                r"client did not send a TLS ClientHello \(.*\) while prereading"),
    "truncated": (None, "eof", r"while prereading"),
    "stalled": (None, "hold", rf"preread timed out \({PREREAD_MS} ms\) while prereading"),
    "oversized-record": (_oversized_record(), "hold", r"bad ClientHello: .* while prereading"),
    "oversized-hello": (_oversized_handshake(), "hold", r"bad ClientHello: .* while prereading"),
    "bad-lengths": (None, "hold", r"bad ClientHello: .* while prereading"),
}


@pytest.fixture
def bad_hello_dp(st, pki, echo):
    cert = pki.leaf("hello", "hello.example.test")
    cp = st.cp()
    dp = ssl_dp(st, cp, conf={"preread_timeout": PREREAD_MS})
    svc = cp.service("echo", echo.port)
    tls_route(cp, svc, destinations=[{"port": dp.port}])
    add_cert(cp, *cert, snis=["hello.example.test"])
    start_synced(dp)
    return dp


@pytest.mark.parametrize("case", sorted(BAD_HELLOS))
def test_bad_client_hello_closed_logged_and_next_client_works(bad_hello_dp, case):
    dp = bad_hello_dp
    data, then, pattern = BAD_HELLOS[case]
    hello = client_hello("hello.example.test")
    if case == "truncated":
        data = hello[:60]
    elif case == "stalled":
        data = hello[:5 + 20]
    elif case == "bad-lengths":
        data = _bad_length_hello()
    since = dp.log_size()
    s = socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10))
    cport = s.getsockname()[1]
    t0 = time.monotonic()
    with s:
        try:
            s.sendall(data)
            if then == "eof":
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        assert closed_without_data(s, timeout=10)
    elapsed = time.monotonic() - t0
    line = dp.wait_log(pattern + rf".*client: 127\.0\.0\.1:{cport}\b", since=since)
    if case == "stalled":
        assert elapsed >= 0.8 * PREREAD_MS / 1000, f"closed after {elapsed:.2f}s, before " \
            f"preread_timeout ({PREREAD_MS} ms)"
    else:
        # refused at once, not left to the preread timeout
        assert "preread timed out" not in line, line
    end = session_line(dp, cport, since=since)
    assert "status 400" in end, end
    # the next client is served
    r = tls_echo(dp.port, "hello.example.test", payload=f"after {case}\n".encode())
    assert r["echo"] == f"after {case}\n".encode()
    assert dp.alive()


def test_client_handshake_failure_logged(bad_hello_dp):
    """A good ClientHello followed by junk: the TLS handshake with the client fails, is
    logged, counted in handshake_errors, and the next client works."""
    dp = bad_hello_dp
    e0 = tls_status(dp)["handshake_errors"]
    since = dp.log_size()
    s = socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10))
    cport = s.getsockname()[1]
    with s:
        s.sendall(client_hello("hello.example.test", version="1.2"))
        s.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # application data, too early
        assert reads_to_close(s)
    dp.wait_log(rf"TLS handshake with client failed: .* while TLS handshaking with client, "
                rf"client: 127\.0\.0\.1:{cport}\b", since=since)
    assert "status 400" in session_line(dp, cport, since=since)
    wait_for(lambda: tls_status(dp)["handshake_errors"] > e0, 10, "handshake_errors to count")
    assert tls_echo(dp.port, "hello.example.test")["echo"] == b"ping\n"


# ----------------------------------------------------------------------------- 9. resumption


@pytest.fixture
def resumption(st, pki, echo):
    cert = pki.leaf("resume", "resume.example.test")
    cp = st.cp()
    dp = ssl_dp(st, cp, conf={"worker_processes": 4})
    svc = cp.service("echo", echo.port)
    tls_route(cp, svc, snis=["resume.example.test"])
    add_cert(cp, *cert, snis=["resume.example.test"])
    start_synced(dp)
    return cp, dp, svc


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_ten_resumptions_in_a_row_across_workers(resumption, version):
    cp, dp, svc = resumption
    t0 = tls_status(dp)
    since = dp.log_size()
    ctx = tls_client_ctx(version=version)
    first = tls_echo(dp.port, "resume.example.test", ctx=ctx)
    assert not first["reused"] and first["version"] == f"TLSv{version}"
    sess = first["session"]
    assert sess is not None and sess.has_ticket, "no session ticket from the DP"
    threads = set()
    for i in range(10):
        io0 = threads_rchar(dp)
        r = tls_echo(dp.port, "resume.example.test", payload=f"resumed {i}\n".encode(),
                     ctx=ctx, session=sess)
        assert r["reused"], f"resumption {i} was a full handshake"
        assert r["echo"] == f"resumed {i}\n".encode()
        line = session_line(dp, r["cport"], since=since)
        assert line.rstrip().endswith(f"tls TLSv{version} resumed"), line
        threads.add(busiest_thread(io0, threads_rchar(dp)))
        sess = r["session"] or sess
    # SO_REUSEPORT spreads new connections over the 4 workers: all ten on one has a
    # chance of 4^-9
    assert len(threads) >= 2, f"all ten resumptions were served by one worker {threads}"
    wait_for(lambda: tls_status(dp)["resumed"] >= t0["resumed"] + 10, 10,
             "/status tls.resumed to count ten resumptions")
    assert tls_status(dp)["handshakes"] >= t0["handshakes"] + 11


def test_resumption_across_configuration_change(resumption, pki):
    cp, dp, svc = resumption
    for version in ("1.2", "1.3"):
        ctx = tls_client_ctx(version=version)
        first = tls_echo(dp.port, "resume.example.test", ctx=ctx)
        assert not first["reused"]
        h0 = dp.status_hash()
        # an unrelated certificate and route
        other = pki.leaf(f"unrelated-{version}", f"unrelated{version}.example.test")
        add_cert(cp, *other, snis=[f"unrelated{version}.example.test"])
        tls_route(cp, svc, snis=[f"unrelated{version}.example.test"])
        dp.wait_synced()
        assert dp.status_hash() != h0
        r = tls_echo(dp.port, "resume.example.test", ctx=ctx, session=first["session"])
        assert r["reused"], f"TLS {version}: no resumption across a configuration change"
        assert r["echo"] == b"ping\n"


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_resumption_across_ticket_key_rotation(st, pki, echo, version):
    """STRAIT_TEST_TICKET_ROTATE_MS=T: a ticket issued early in a key's period resumes
    1.2 T later (its key is now the previous one) and is a full handshake 2.3 T later
    (its key is gone). The period boundaries are found with /status
    tls.ticket_key_rotations (which may only move when a ticket is made or opened, so
    the probes are handshakes); the waits in between are the point of the test."""
    period = scaled(1.0)
    cert = pki.leaf("resume", "resume.example.test")
    cp = st.cp()
    dp = ssl_dp(st, cp, env={"STRAIT_TEST_TICKET_ROTATE_MS": str(int(period * 1000))})
    svc = cp.service("echo", echo.port)
    tls_route(cp, svc, snis=["resume.example.test"])
    add_cert(cp, *cert, snis=["resume.example.test"])
    start_synced(dp)
    ctx = tls_client_ctx(version=version)

    def rotations():
        return tls_status(dp)["ticket_key_rotations"]

    def fresh_ticket():
        """(rotations n, monotonic time, session) of the first handshake that ran wholly
        inside a new key period."""
        start = rotations()
        deadline = time.monotonic() + 3 * period + scaled(5)
        while time.monotonic() < deadline:
            n0 = rotations()
            t = time.monotonic()
            r = tls_echo(dp.port, "resume.example.test", ctx=ctx)
            n1 = rotations()
            if n0 == n1 and n0 > start:
                assert not r["reused"]
                return n0, t, r["session"]
            time.sleep(period / 20)
        raise AssertionError("ticket_key_rotations did not move: no key rotation seen")

    for attempt in range(3):
        n, t, sess = fresh_ticket()
        time.sleep(max(0.0, t + 1.2 * period - time.monotonic()))
        r = tls_echo(dp.port, "resume.example.test", ctx=ctx, session=sess)
        if rotations() != n + 1:
            continue  # out of step with the period (a slow machine): again
        assert r["reused"], "a ticket of the previous key did not resume"
        time.sleep(max(0.0, t + 2.3 * period - time.monotonic()))
        r = tls_echo(dp.port, "resume.example.test", payload=b"full again\n", ctx=ctx,
                     session=sess)
        if rotations() < n + 2:
            continue
        assert not r["reused"], "a ticket two keys old still resumed"
        assert r["echo"] == b"full again\n"
        break
    else:
        pytest.fail("could not line up with the rotation period in three attempts")


# ----------------------------------------------------------------------------- 10. protocols


def test_ssl_protocols_and_cipher_suite(st, echo):
    """ssl_cipher_suite = modern: TLS 1.3 only; ssl_protocols = TLSv1.2: no TLS 1.3."""
    cp = st.cp()
    modern = ssl_dp(st, cp, conf={"ssl_cipher_suite": "modern"})
    only12 = ssl_dp(st, cp, conf={"ssl_protocols": "TLSv1.2"})
    svc = cp.service("echo", echo.port)
    tls_route(cp, svc, snis=["proto.example.test"])
    start_synced(modern)
    start_synced(only12)

    # modern
    since = modern.log_size()
    assert handshake_fails(modern.port, "proto.example.test", tls_client_ctx(version="1.2"))
    modern.wait_log(r"TLS handshake with client failed: .* while TLS handshaking with client",
                    since=since)
    r = s_client(modern.port, "-servername", "proto.example.test", "-tls1_2")
    assert not r.established and b"hello through strait" not in r.out, r
    r = tls_echo(modern.port, "proto.example.test", ctx=tls_client_ctx(version="1.3"))
    assert r["echo"] == b"ping\n" and r["version"] == "TLSv1.3"
    r = tls_echo(modern.port, "proto.example.test")
    assert r["version"] == "TLSv1.3"

    # TLSv1.2 only
    assert handshake_fails(only12.port, "proto.example.test", tls_client_ctx(version="1.3"))
    r = s_client(only12.port, "-servername", "proto.example.test", "-tls1_3")
    assert not r.established and b"hello through strait" not in r.out, r
    r = tls_echo(only12.port, "proto.example.test")
    assert r["echo"] == b"ping\n" and r["version"] == "TLSv1.2"
    r = s_client(only12.port, "-servername", "proto.example.test")
    assert r.established and "Protocol version: TLSv1.2" in r.err, r
    wait_for(lambda: tls_status(only12)["handshake_errors"] >= 2, 10,
             "handshake_errors to count the refused TLS 1.3 clients")


# ----------------------------------------------------------------------------- long names


def test_long_sni_routes_selects_and_logs(st, pki, echo):
    """An SNI longer than the session keeps inline (48 bytes) is kept whole: it routes,
    picks its certificate, is logged, and is the upstream SNI with preserve_host."""
    name = ("a" * 60) + ".long.example.test"  # (a CN holds 64 bytes: a wildcard cert)
    cert, key = pki.leaf("longsni", "*.long.example.test")
    up_cert, up_key = pki.leaf("longup", "localhost")
    up = st.tls_echo(up_cert, up_key)
    cp = st.cp()
    dp = ssl_dp(st, cp)
    cp.ok("POST", "/services", json_body={"name": "long", "url": f"tcp://127.0.0.1:{echo.port}"})
    cp.ok("POST", "/services/long/routes", json_body={"protocols": ["tls"], "snis": [name]})
    cp.ok("POST", "/services", json_body={"name": "longup", "url": f"tls://localhost:{up.port}"})
    cp.ok("POST", "/services/longup/routes",
          json_body={"protocols": ["tls"], "snis": ["*.up.example.test"], "preserve_host": True})
    add_cert(cp, cert, key, snis=["*.long.example.test"])
    start_synced(dp)
    since = dp.log_size()
    r = tls_echo(dp.port, name, payload=b"long name\n")
    assert r["echo"] == b"long name\n"
    assert cert_subject(r["cert"]).endswith("long.example.test"), cert_subject(r["cert"])
    line = session_line(dp, r["cport"], since=since)
    assert f"sni {name}, tls TLSv1." in line, line
    # preserve_host hands the (long) client SNI on to the upstream
    long_up = ("c" * 60) + ".up.example.test"
    r = tls_echo(dp.port, long_up, payload=b"long upstream sni\n")
    assert r["echo"] == b"long upstream sni\n"
    wait_for(lambda: any(c["sni"] == long_up for c in up.conns), 10,
             "the upstream to see the long SNI")


def test_tls13_resumption_hands_out_a_fresh_ticket(st, pki, echo, tmp_path):
    """TLS 1.3 clients (OpenSSL's own, browsers) use each ticket once: a resumed
    handshake must send a new ticket, so that the next connection can resume too."""
    cert, key = pki.leaf("fresh", "fresh.example.test")
    cp = st.cp()
    dp = ssl_dp(st, cp)
    cp.ok("POST", "/services", json_body={"name": "fresh", "url": f"tcp://127.0.0.1:{echo.port}"})
    cp.ok("POST", "/services/fresh/routes",
          json_body={"protocols": ["tls"], "snis": ["fresh.example.test"]})
    add_cert(cp, cert, key, snis=["fresh.example.test"])
    start_synced(dp)

    def connect(*extra):
        r = s_client(dp.port, "-servername", "fresh.example.test", "-tls1_3", "-msg", *extra,
                     payload=b"fresh\n")
        assert b"fresh\n" in r.out, r
        return r.out.decode(errors="replace")

    sess = [str(tmp_path / f"sess{i}.pem") for i in range(4)]
    out = connect("-sess_out", sess[0])
    assert "NewSessionTicket" in out, out[-2000:]
    for i in range(1, 4):
        before = tls_status(dp)["resumed"]
        out = connect("-sess_in", sess[i - 1], "-sess_out", sess[i])
        wait_for(lambda: tls_status(dp)["resumed"] == before + 1, 10,
                 f"connection {i} to resume with the ticket of connection {i - 1}")
        # the resumed handshake brought a ticket of its own, for the next connection
        assert "NewSessionTicket" in out, out[-2000:]
