# Guards issue 5, point 4 (safe by default): the admin API listens on loopback over plain
# HTTP by default; `admin_listen = ... ssl` listeners speak TLS with admin_ssl_cert and
# admin_ssl_cert_key; admin_token must come with every request on every listener
# (Kong-Admin-Token, or Authorization: Bearer) or the answer is 401 and nothing runs;
# admin_ssl_client_ca makes ssl listeners require a client certificate that CA signed;
# the control plane refuses to start (exit 2, one line) when a non-loopback listener
# lacks ssl plus a token or client CA, unless admin_allow_insecure = on, which starts with
# one warning line. admin_token and admin_ssl_cert_key never appear in GET /.
#
# Clients: Python's http.client and ssl, curl. Certificates: the session's pki fixture.
# The two tests that start a non-loopback listener bind 0.0.0.0 on an ephemeral port for
# their duration and talk to it through 127.0.0.1 only.

import http.client
import json
import socket
import ssl
import subprocess

import pytest

from conftest import CP_BIN, Resp, _child_env, scaled, tls_client_ctx, wait_for, write_conf

TOKEN = "kq3-Xv9_tok.en~+/="
NO_TOKEN = {"message": "Invalid credentials. Token or User credentials required"}
SERVICE = {"name": "svc-a", "protocol": "tcp", "host": "10.0.0.1", "port": 7000}


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def admin_pki(pki):
    """The admin listener's certificate, a client certificate from the same CA, and one
    from another CA. Paths."""
    ca, _ = pki.ca("admin-ca")
    srv = pki.leaf("admin-srv", "localhost", sans=["DNS:localhost", "IP:127.0.0.1"],
                   ca="admin-ca")
    client = pki.leaf("admin-client", "admin-client", ca="admin-ca")
    other_ca, _ = pki.ca("intruder-ca")
    intruder = pki.leaf("intruder-client", "admin-client", ca="intruder-ca")
    return {"ca": ca, "srv": srv, "client": client, "other_ca": other_ca,
            "intruder": intruder}


def request(port, path="/status", method="GET", headers=None, body=None, ctx=None,
            timeout=10):
    """One request on a fresh connection (https when ctx is given). Returns Resp."""
    if ctx is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                           timeout=scaled(timeout))
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(timeout))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Resp(r.status, r.read(), dict(r.getheaders()))
    finally:
        conn.close()


def refused(port, ctx=None, headers=None):
    """True when the request gets no HTTP answer at all: the TLS handshake fails, or the
    server drops the connection. A timeout is a failure, not a refusal."""
    try:
        r = request(port, headers=headers, ctx=ctx)
    except (socket.timeout, TimeoutError) as e:
        raise AssertionError(f"no answer and no refusal within the deadline: {e!r}")
    except (OSError, http.client.HTTPException):
        return True
    raise AssertionError(f"expected the connection to be refused, got {r!r}")


def tok(value=TOKEN):
    return {"Kong-Admin-Token": value}


def https_ctx(pki_, cert=None, version=None):
    """Verifies the server against the admin CA (and its IP SAN); cert: (crt, key)."""
    c, k = cert if cert else (None, None)
    return tls_client_ctx(version=version, cafile=pki_["ca"], cert=c, key=k)


def admin_cp(st, conf, listen):
    """A CP (not started) with admin_listen = listen.format(plain=<the harness's admin
    port>)."""
    cp = st.cp(conf=conf, start=False)
    cp.conf["admin_listen"] = listen.format(plain=cp.admin_port)
    return cp


def start_probing(cp, probe):
    """Starts a CP whose admin API the harness cannot probe by itself (ssl only, or a
    token); waits until probe() answers 200."""
    cp.start(wait=False)

    def up():
        cp.check_alive()
        return probe().status == 200

    wait_for(up, 20, f"{cp.name} admin API")
    return cp


def admin_warnings(cp):
    return [ln for ln in cp.log_text().splitlines() if "[warn]" in ln and "admin_" in ln]


def tls_conf(admin_pki, **extra):
    conf = {"admin_ssl_cert": admin_pki["srv"][0], "admin_ssl_cert_key": admin_pki["srv"][1]}
    conf.update(extra)
    return conf


def curl(*args):
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", str(int(scaled(10))), *args],
                       capture_output=True, text=True, env=_child_env({}),
                       timeout=scaled(20))
    return r


def run_start(tmp_path, conf, ports, cluster_certs, cmd="start"):
    """`strait-cp start` (or `check`) on a conf that must be refused before anything
    listens."""
    c = {"cluster_listen": f"127.0.0.1:{ports.get()}", "cluster_cert": cluster_certs[0],
         "cluster_cert_key": cluster_certs[1]}
    c.update(conf)
    path = tmp_path / "strait.conf"
    write_conf(str(path), c)
    return subprocess.run([CP_BIN, cmd, "-c", str(path), "-p", str(tmp_path / "prefix")],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=_child_env({}), timeout=scaled(20))


# ----------------------------------------------------------------------------- defaults


def test_default_is_loopback_plain_and_open(st):
    r = subprocess.run([CP_BIN, "--help"], capture_output=True, text=True, env=_child_env({}),
                       timeout=scaled(10))
    assert r.returncode == 0, r.stderr
    assert "admin_listen = 127.0.0.1:8001 " in r.stdout, r.stdout
    assert "admin_allow_insecure = off " in r.stdout, r.stdout
    cp = st.cp()  # the harness's plain loopback listener, nothing else set
    assert cp.get("/status").status == 200
    conf = cp.get("/").json["configuration"]
    assert conf["admin_allow_insecure"] == "off", conf
    assert conf["admin_ssl_cert"] is None and conf["admin_ssl_client_ca"] is None, conf
    assert cp.get("/services").status == 200
    assert not admin_warnings(cp)


# ----------------------------------------------------------------------------- TLS


def test_https_listener_next_to_plain(st, ports, admin_pki):
    tls_port = ports.get()
    cp = admin_cp(st, tls_conf(admin_pki), f"127.0.0.1:{{plain}}, 127.0.0.1:{tls_port} ssl")
    cp.start()  # the plain listener answers the harness
    cp.wait_log(rf"admin API listening on 127\.0\.0\.1:{tls_port} \(ssl\)")
    for version in ("1.2", "1.3"):
        r = request(tls_port, ctx=https_ctx(admin_pki, version=version))
        assert r.status == 200 and "configuration_hash" in r.json, r
    # the same admin API: a write over https reads back over plain HTTP
    r = request(tls_port, "/services", "POST", {"Content-Type": "application/json"},
                json.dumps(SERVICE), ctx=https_ctx(admin_pki))
    assert r.status == 201, r
    assert cp.get("/services/svc-a").json["id"] == r.json["id"]
    # it serves admin_ssl_cert: a client trusting another CA refuses it
    ctx = tls_client_ctx(cafile=admin_pki["other_ca"])
    with pytest.raises(ssl.SSLCertVerificationError):
        request(tls_port, ctx=ctx)
    # curl, as a Kong user would
    r = curl("--cacert", admin_pki["ca"], f"https://localhost:{tls_port}/services/svc-a")
    assert r.returncode == 0 and json.loads(r.stdout)["name"] == "svc-a", (r.stdout, r.stderr)


def test_plain_http_to_ssl_port_fails(st, ports, admin_pki):
    tls_port = ports.get()
    cp = admin_cp(st, tls_conf(admin_pki), f"127.0.0.1:{{plain}}, 127.0.0.1:{tls_port} ssl")
    cp.start()
    assert refused(tls_port)
    r = curl(f"http://127.0.0.1:{tls_port}/status")
    assert r.returncode != 0 and r.stdout == "", (r.returncode, r.stdout)
    # https on the plain port fails too, and both listeners still work afterwards
    assert refused(cp.admin_port, ctx=https_ctx(admin_pki))
    assert request(tls_port, ctx=https_ctx(admin_pki)).status == 200
    assert cp.get("/status").status == 200


# ----------------------------------------------------------------------------- token


def test_token_required_on_every_listener(st, ports, admin_pki):
    tls_port = ports.get()
    cp = admin_cp(st, tls_conf(admin_pki, admin_token=TOKEN),
                  f"127.0.0.1:{{plain}}, 127.0.0.1:{tls_port} ssl")
    start_probing(cp, lambda: request(cp.admin_port, headers=tok()))
    ctx = https_ctx(admin_pki)
    for port, c in ((cp.admin_port, None), (tls_port, ctx)):
        for headers in ({}, tok("wrong"), tok(TOKEN + "x"), tok(TOKEN[:-1]), tok(""),
                        {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                        {"Authorization": f"Basic {TOKEN}"}, {"X-Admin-Token": TOKEN}):
            for path in ("/", "/status", "/services", "/endpoints", "/nope"):
                r = request(port, path, headers=headers, ctx=c)
                assert r.status == 401 and r.json == NO_TOKEN, (port, headers, path, r)
        for headers in (tok(), {"kong-admin-token": TOKEN}, {"Authorization": f"Bearer {TOKEN}"},
                        {"Authorization": f"bearer {TOKEN}"}):
            r = request(port, "/services", headers=headers, ctx=c)
            assert r.status == 200 and r.json["data"] == [], (port, headers, r)
    # a refused write runs nothing: the body is not even read
    before = request(cp.admin_port, "/status", headers=tok()).json
    for headers in ({}, tok("wrong")):
        r = request(cp.admin_port, "/services", "POST",
                    dict(headers, **{"Content-Type": "application/json"}), json.dumps(SERVICE))
        assert r.status == 401 and r.json == NO_TOKEN, r
    r = request(cp.admin_port, "/services", headers=tok())
    assert r.json["data"] == [], r
    assert request(cp.admin_port, "/status", headers=tok()).json["configuration_hash"] == \
        before["configuration_hash"]
    # Kong users' curl lines
    base = f"http://127.0.0.1:{cp.admin_port}"
    r = curl("-X", "POST", f"{base}/services", "-H", f"Kong-Admin-Token: {TOKEN}",
             "--data", "name=svc-b", "--data", "url=tcp://10.0.0.2:7001")
    assert r.returncode == 0 and json.loads(r.stdout)["name"] == "svc-b", (r.stdout, r.stderr)
    r = curl("-w", "\n%{http_code}", f"{base}/services/svc-b")
    assert r.stdout.splitlines() == [json.dumps(NO_TOKEN, separators=(",", ":")), "401"], r
    r = curl("--cacert", admin_pki["ca"], "-H", f"Authorization: Bearer {TOKEN}",
             f"https://localhost:{tls_port}/services/svc-b")
    assert r.returncode == 0 and json.loads(r.stdout)["port"] == 7001, (r.stdout, r.stderr)
    # the secrets stay out of GET /
    r = request(cp.admin_port, "/", headers=tok())
    assert r.status == 200, r
    conf = r.json["configuration"]
    assert "admin_token" not in conf and "admin_ssl_cert_key" not in conf, conf
    assert conf["admin_ssl_cert"] == admin_pki["srv"][0], conf
    assert TOKEN.encode() not in r.raw
    assert "401 from 127.0.0.1" in cp.log_text()
    assert TOKEN not in cp.log_text()


# ----------------------------------------------------------------------------- client certs


def test_client_certificate_required_on_ssl_listeners(st, ports, admin_pki):
    tls_port = ports.get()
    cp = admin_cp(st, tls_conf(admin_pki, admin_ssl_client_ca=admin_pki["ca"]),
                  f"127.0.0.1:{{plain}}, 127.0.0.1:{tls_port} ssl")
    cp.start()  # the plain loopback listener is not covered by a client CA
    cp.wait_log(rf"listening on 127\.0\.0\.1:{tls_port} \(ssl\) \(client certificate required\)")
    right = https_ctx(admin_pki, cert=admin_pki["client"])
    r = request(tls_port, "/services", ctx=right)
    assert r.status == 200 and r.json["data"] == [], r
    for version in ("1.2", "1.3"):
        # no certificate, or one from another CA (same subject): no HTTP answer at all
        assert refused(tls_port, ctx=https_ctx(admin_pki, version=version))
        assert refused(tls_port, ctx=https_ctx(admin_pki, cert=admin_pki["intruder"],
                                               version=version))
        r = request(tls_port, ctx=https_ctx(admin_pki, cert=admin_pki["client"],
                                            version=version))
        assert r.status == 200, (version, r)
    # TLS 1.2: the handshake itself fails
    with pytest.raises(ssl.SSLError):
        request(tls_port, ctx=https_ctx(admin_pki, version="1.2"))
    # curl and openssl s_client
    args = ["--cacert", admin_pki["ca"], f"https://localhost:{tls_port}/status"]
    r = curl(*args)
    assert r.returncode != 0 and r.stdout == "", (r.returncode, r.stdout)
    r = curl("--cert", admin_pki["intruder"][0], "--key", admin_pki["intruder"][1], *args)
    assert r.returncode != 0 and r.stdout == "", (r.returncode, r.stdout)
    r = curl("--cert", admin_pki["client"][0], "--key", admin_pki["client"][1], *args)
    assert r.returncode == 0 and "configuration_hash" in r.stdout, (r.returncode, r.stderr)
    assert cp.get("/status").status == 200


def test_client_certificate_and_token_together(st, admin_pki):
    # the ssl listener alone: a client needs both the certificate and the token
    cp = admin_cp(st, tls_conf(admin_pki, admin_ssl_client_ca=admin_pki["ca"],
                               admin_token=TOKEN), "127.0.0.1:{plain} ssl")
    tls_port = cp.admin_port
    right = https_ctx(admin_pki, cert=admin_pki["client"])
    start_probing(cp, lambda: request(tls_port, headers=tok(), ctx=right))
    r = request(tls_port, ctx=right)
    assert r.status == 401 and r.json == NO_TOKEN, r
    assert refused(tls_port, ctx=https_ctx(admin_pki), headers=tok())


# ----------------------------------------------------------------------------- start-up


# (admin keys, what the one line must hold). Keys with "files" are refused when the
# admin API starts (the PEM contents are parsed then), after other start-up log lines;
# the others by the configuration check, before anything else runs.
REFUSALS = [
    ({"admin_listen": "0.0.0.0:{p}"},
     ["admin_listen: 0.0.0.0:{p} is not a loopback address and lacks the ssl flag and "
      "admin_token or admin_ssl_client_ca (set admin_allow_insecure = on to allow it anyway)"]),
    ({"admin_listen": "127.0.0.1:{q}, [::]:{p}", "admin_token": TOKEN},
     ["admin_listen: [::]:{p} is not a loopback address and lacks the ssl flag (set "
      "admin_allow_insecure = on"]),
    ({"admin_listen": "0.0.0.0:{p} ssl", "tls": True},
     ["admin_listen: 0.0.0.0:{p} is not a loopback address and lacks admin_token or "
      "admin_ssl_client_ca (set admin_allow_insecure = on"]),
    ({"admin_listen": "127.0.0.1:{p} ssl"},
     ["admin_ssl_cert: admin_ssl_cert and admin_ssl_cert_key must be set when an admin_listen "
      "entry has the ssl flag"]),
    ({"admin_listen": "127.0.0.1:{p} ssl", "tls": True, "files": True,
      "admin_ssl_cert_key": "{client_key}"},
     ["admin_ssl_cert: cannot use ", "do not match"]),
    ({"admin_listen": "127.0.0.1:{p} ssl", "tls": True, "admin_ssl_cert": "{tmp}/none.crt"},
     ["admin_ssl_cert: no file at: "]),
    ({"admin_listen": "127.0.0.1:{p} ssl", "tls": True, "files": True,
      "admin_ssl_client_ca": "{srv_key}"},
     ["admin_ssl_client_ca: no CA certificate in "]),
    ({"admin_listen": "127.0.0.1:{p}", "admin_ssl_client_ca": "{ca}"},
     ["admin_ssl_client_ca: needs an admin_listen entry with the ssl flag"]),
    ({"admin_listen": "127.0.0.1:{p}", "admin_token": "two words"},
     ["admin_token: only visible ASCII characters are allowed"]),
]


@pytest.mark.parametrize("keys,want", REFUSALS, ids=[
    "plain-nothing", "plain-token", "ssl-no-auth", "ssl-no-cert", "key-mismatch",
    "cert-missing", "ca-not-pem", "ca-without-ssl", "token-with-space"])
def test_refused_at_start_with_one_line(keys, want, tmp_path, ports, cluster_certs, admin_pki):
    p, q = ports.get(), ports.get()
    fill = {"p": p, "q": q, "tmp": str(tmp_path), "ca": admin_pki["ca"],
            "srv_key": admin_pki["srv"][1], "client_key": admin_pki["client"][1]}
    conf = tls_conf(admin_pki) if keys.get("tls") else {}
    conf.update({k: v.format(**fill) for k, v in keys.items() if k not in ("tls", "files")})
    r = run_start(tmp_path, conf, ports, cluster_certs)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    if keys.get("files"):
        lines = [ln for ln in lines if not ln.split("] ", 1)[0].endswith("[notice")]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("strait: "), lines
    for w in want:
        assert w.format(**fill) in lines[0], (w, lines[0])
    # nothing listens: the refusal came before any bind
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p), timeout=scaled(2)).close()
    # and `strait-cp check` refuses the same configuration with the same line
    r = run_start(tmp_path, conf, ports, cluster_certs, cmd="check")
    assert r.returncode == 2, (r.returncode, r.stderr)
    said = [ln for ln in r.stderr.splitlines() if ln.startswith("strait: ")]
    assert len(said) == 1 and all(w.format(**fill) in said[0] for w in want), r.stderr


def test_opt_out_starts_with_one_warning(st):
    cp = admin_cp(st, {"admin_allow_insecure": True}, "0.0.0.0:{plain}")
    cp.start()
    warns = admin_warnings(cp)
    assert len(warns) == 1, warns
    assert (f"admin_listen: 0.0.0.0:{cp.admin_port} is not a loopback address and lacks the "
            "ssl flag and admin_token or admin_ssl_client_ca; starting anyway because "
            "admin_allow_insecure = on") in warns[0], warns
    assert cp.get("/status").status == 200
    assert cp.get("/").json["configuration"]["admin_allow_insecure"] == "on"


def test_non_loopback_ssl_with_token_starts_without_warning(st, admin_pki):
    cp = admin_cp(st, tls_conf(admin_pki, admin_token=TOKEN), "0.0.0.0:{plain} ssl")
    ctx = https_ctx(admin_pki)
    start_probing(cp, lambda: request(cp.admin_port, headers=tok(), ctx=ctx))
    assert not admin_warnings(cp)
    r = request(cp.admin_port, ctx=ctx)
    assert r.status == 401 and r.json == NO_TOKEN, r
    assert refused(cp.admin_port, headers=tok())  # plain HTTP on the ssl port
