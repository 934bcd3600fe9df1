# Guards issue 14 (hardening), the admin API's input handling on the control plane:
# - defect 9: nothing a client sends (a %0a in a path, a control byte in the method, a
#   path refused with 401) can forge a line in the CP's log: st_log writes one line per
#   record and control bytes come out as \xHH;
# - defect 1: a form key that is not UTF-8 (`%FF[1]=x`, which used to free a value the
#   decoder then wrote to) is a 400 with Kong's error body, in urlencoded and multipart
#   bodies, and changes nothing;
# - defect 2 (its form part): a form's size after decoding is bounded (indexes, fields,
#   values created including the padding of sparse indexes), with a clear 400;
# - defect 10 (its admin items): `?offset=%ff` gets Kong's invalid offset body; `%00` in a
#   path or query argument cuts nothing short (`GET /services/%00abc` is not `GET
#   /services`); many multipart parts are refused, not grown one by one.
# Every refusal leaves the store as it was (config_version and configuration_hash).

import json
import socket

import pytest

from conftest import Harness, Resp, scaled, wait_for

FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def cp(tmp_path_factory, ports, cluster_certs):
    h = Harness(str(tmp_path_factory.mktemp("hardening-admin")), ports, cluster_certs)
    try:
        c = h.cp()
        c.service("svc-a", 9000)
        yield c
    finally:
        h.teardown()


def send_raw(port, data, timeout=10):
    """Sends bytes as they are (no client library checks them); returns a Resp."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout)) as s:
        s.sendall(data)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                length = [int(ln.split(b":", 1)[1]) for ln in head.split(b"\r\n")
                          if ln.lower().startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.decode("latin-1").partition(":")
        headers[k.strip()] = v.strip()
    return Resp(status, body, headers)


def request(cp, method, target, body=b"", headers=()):
    """One request with the target and body as bytes, Connection: close."""
    if isinstance(body, str):
        body = body.encode()
    if isinstance(target, str):
        target = target.encode()
    head = method.encode() + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    for k, v in headers:
        head += f"{k}: {v}\r\n".encode()
    head += f"Content-Length: {len(body)}\r\n\r\n".encode()
    return send_raw(cp.admin_port, head + body)


def version(cp):
    st = cp.get("/status").json
    return st["config_version"], st["configuration_hash"]


def expect(r, status, body, what=""):
    assert r.status == status, (what, r)
    assert r.json == body, (what, r.raw[:300])


# ----------------------------------------------------------------------------- logs

FORGED = "2030/01/01 00:00:00 [emerg] 1#1: admin_token accepted"


def forged_lines(cp, since):
    text = cp.log_text()[since:]
    return [ln for ln in text.splitlines() if ln.startswith("2030/01/01") or "[emerg]" in
            ln.split(": ", 1)[0]]


def test_log_lines_cannot_be_forged(cp):
    since = len(cp.log_text())
    inject = "%0a" + FORGED.replace(" ", "%20") + "%0d%0a"
    r = request(cp, "GET", f"/services/x{inject}")
    assert r.status in (400, 404), r
    # the method is the client's too, and so is a path refused before any admin code
    r = request(cp, "G\x1bET\x0b", f"/{inject}")
    assert r.status in (400, 404, 405, 501), r
    # the log shows the request, escaped, on its own single line
    line = cp.wait_log(r"admin: GET /services/x\\x0a2030", since=since)
    assert line.endswith(": admin: GET /services/x\\x0a" + FORGED + "\\x0d\\x0a 404"), line
    line = cp.wait_log(r"admin: G\\x1bET\\x0b /\\x0a2030", since=since)
    assert line.endswith(FORGED + "\\x0d\\x0a " + str(r.status)), line
    assert forged_lines(cp, since) == [], cp.log_text()[since:]


def test_log_lines_cannot_be_forged_before_authentication(st):
    # a request without the token is answered 401 and logged before anything reads it
    cp = st.cp(conf={"admin_token": "s3cret-token"}, start=False)
    cp.start(wait=False)
    wait_for(lambda: cp.check_alive() and request(cp, "GET", "/status").status == 401, 20,
             f"{cp.name} admin API")
    since = len(cp.log_text())
    r = request(cp, "GET", "/status%0a" + FORGED.replace(" ", "%20"))
    assert r.status == 401, r
    line = cp.wait_log(r"admin: GET /status\\x0a2030", since=since)
    assert "401 from 127.0.0.1" in line, line
    assert forged_lines(cp, since) == [], cp.log_text()[since:]
