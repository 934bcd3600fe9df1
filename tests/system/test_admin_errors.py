# Guards issue 5, points 1 and 6: every error path of the entity endpoints answers Kong's
# body (kong/db/errors.lua, kong/api/endpoints.lua, kong/api/api_helpers.lua,
# kong/api/routes/certificates.lua, the spec/02-integration/04-admin_api/*_spec.lua
# files) and leaves the store unchanged. `store_state(cp)` reads back everything (every
# collection fully paged, every nested collection, every entity by id, each route's
# service, GET /status configuration_hash and config_version); `unchanged(cp)` asserts
# it is identical after the block. One CP per module holds a fixed world (services
# with and without routes, a tls service using a client certificate and a CA
# certificate, certificates with snis); no test here changes it.
#
# A duplicate primary key is 400, code 3 ("primary key violation"), as on Kong's
# generated endpoints (docs/admin-api.md says so).

import contextlib
import http.client
import json
import os
import subprocess
import urllib.parse

import pytest

from conftest import Harness, Resp, read_text, scaled

NEW = "6f1b6a7e-7d4b-4a44-9f57-0a1b2c3d4e5f"  # a UUID nothing has
COLLECTIONS = ("services", "routes", "certificates", "snis", "ca_certificates")
STREAM_RULE = ("must set one of 'sources', 'destinations', 'snis' when 'protocols' is "
               "'tcp', 'tls' or 'udp'")
NAME_ASCII = "it must only contain alphanumeric and '., -, _, ~' characters"
NAME_UTF8 = "the only accepted ascii characters are alphanumerics or ., -, _, and ~"
NOT_FOUND = {"message": "Not found"}
SNI_NOT_FOUND = {"message": "SNI not found"}
NOT_ALLOWED = {"message": "Method not allowed"}


# ----------------------------------------------------------------------------- world


class World:
    pass


def make_expired_ca(folder):
    """A CA certificate (CA:TRUE) whose validity ended in 2020, made with `openssl ca`."""
    d = os.path.join(folder, "expired")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "index.txt"), "w"):
        pass
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    cnf = os.path.join(d, "ca.cnf")
    with open(cnf, "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nserial = serial\n"
                "new_certs_dir = .\ndefault_md = sha256\npolicy = p\nx509_extensions = ext\n"
                "[p]\ncommonName = supplied\n[ext]\nbasicConstraints = critical,CA:TRUE\n")

    def run(*args):
        r = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True,
                           timeout=scaled(60))
        assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"

    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "e.key", "-out", "e.csr", "-subj", "/CN=Strait Expired CA")
    run("ca", "-batch", "-notext", "-selfsign", "-config", "ca.cnf", "-keyfile", "e.key",
        "-in", "e.csr", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
        "-out", "e.crt")
    return read_text(os.path.join(d, "e.crt"))


@pytest.fixture(scope="module")
def w(tmp_path_factory, ports, cluster_certs, pki):
    tmp = str(tmp_path_factory.mktemp("admin-errors"))
    h = Harness(tmp, ports, cluster_certs)
    try:
        cp = h.cp()
        x = World()
        x.cp = cp
        pem = {}
        for stem, (cert, key) in {
            "c1": pki.self_signed("err-c1", "a.example.test"),
            "c2": pki.leaf("err-c2", "client.example.test", ca="err-ca1"),
            "c3": pki.self_signed("err-c3", "other.example.test", kind="rsa"),
            "ca1": pki.ca("err-ca1"),
            "ca2": pki.ca("err-ca2"),
            "ca3": pki.ca("err-ca3"),
        }.items():
            pem[stem] = (read_text(cert), read_text(key))
        x.pem = pem
        x.expired_ca = make_expired_ca(tmp)

        x.S1 = cp.service("svc-a", 9000, tags=["t1"])
        x.S2 = cp.service("svc-b", 9001)
        x.S3 = cp.service("svc-empty", 9002)
        x.R1 = cp.route(x.S1, name="rt-a1", destinations=[{"port": 5000}])
        x.R2 = cp.route(x.S1, name="rt-a2", destinations=[{"port": 5001}])
        x.R3 = cp.route(x.S2, name="rt-b1", destinations=[{"port": 5002}])
        x.C1 = cp.ok("POST", "/certificates", json_body={
            "cert": pem["c1"][0], "key": pem["c1"][1],
            "snis": ["a.example.test", "b.example.test"]}, expect=201)
        x.C2 = cp.ok("POST", "/certificates", json_body={
            "cert": pem["c2"][0], "key": pem["c2"][1], "snis": ["c.example.test"]},
            expect=201)
        x.CA1 = cp.ok("POST", "/ca_certificates", json_body={"cert": pem["ca1"][0]},
                      expect=201)
        x.CA2 = cp.ok("POST", "/ca_certificates", json_body={"cert": pem["ca2"][0]},
                      expect=201)
        x.S4 = cp.ok("POST", "/services", json_body={
            "name": "svc-tls", "protocol": "tls", "host": "upstream.example.test",
            "port": 443, "tls_verify": True, "ca_certificates": [x.CA1["id"]],
            "client_certificate": {"id": x.C2["id"]}}, expect=201)
        snis = {s["name"]: s for s in cp.get("/snis?size=1000").json["data"]}
        x.SNI_A = snis["a.example.test"]
        x.SNI_B = snis["b.example.test"]
        x.SNI_C = snis["c.example.test"]
        yield x
    finally:
        h.teardown()


# ----------------------------------------------------------------------------- reading back


def page_all(cp, path, size=3):
    """Every item of a collection, following `next` (small pages: paging is read too)."""
    sep = "&" if "?" in path else "?"
    nxt = f"{path}{sep}size={size}"
    items = []
    for _ in range(1000):
        r = cp.get(nxt)
        assert r.status == 200, (nxt, r)
        items += r.json["data"]
        nxt = r.json["next"]
        if nxt is None:
            return items
    raise AssertionError(f"{path}: paging did not end")


def store_state(cp):
    """Everything the admin API can read back, as one comparable dict."""
    state = {}
    for c in COLLECTIONS:
        items = page_all(cp, f"/{c}")
        state[c] = sorted(items, key=lambda e: e["id"])
        for e in items:
            r = cp.get(f"/{c}/{e['id']}")
            assert r.status == 200, (c, e["id"], r)
            state[f"/{c}/{e['id']}"] = r.json
    for s in state["services"]:
        path = f"/services/{s['id']}/routes"
        state[path] = sorted(page_all(cp, path), key=lambda e: e["id"])
    for c in state["certificates"]:
        path = f"/certificates/{c['id']}/snis"
        state[path] = sorted(page_all(cp, path), key=lambda e: e["id"])
    for rt in state["routes"]:
        r = cp.get(f"/routes/{rt['id']}/service")
        state[f"/routes/{rt['id']}/service"] = (r.status, r.json)
    st = cp.get("/status").json
    state["configuration_hash"] = st["configuration_hash"]
    state["config_version"] = st["config_version"]
    return state


def diff(a, b):
    keys = sorted(set(a) | set(b))
    return [f"{k}:\n  before {a.get(k)!r:.600}\n  after  {b.get(k)!r:.600}"
            for k in keys if a.get(k) != b.get(k)]


@contextlib.contextmanager
def unchanged(cp):
    before = store_state(cp)
    yield
    after = store_state(cp)
    assert after == before, "the store changed:\n" + "\n".join(diff(before, after))


# ----------------------------------------------------------------------------- requests


def raw(cp, method, path, body=b"", headers=()):
    """A request with exactly these headers (two Content-Type headers, or none)."""
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection("127.0.0.1", cp.admin_port, timeout=scaled(10))
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return Resp(r.status, r.read(), dict(r.getheaders()))
    finally:
        conn.close()


def call(cp, method, path, body=None):
    """body: None (no body), a dict (JSON), a list of pairs (form), or (ctype, text)."""
    if body is None:
        return cp.api(method, path)
    if isinstance(body, dict):
        return cp.api(method, path, json_body=body)
    if isinstance(body, list):
        return cp.api(method, path, form=body)
    ctype, text = body
    return raw(cp, method, path, text, [("Content-Type", ctype)])


def expect(r, status, body, what=""):
    assert r.status == status, (what, r)
    assert r.json == body, (what, r.json)


def schema(message, fields):
    return {"code": 2, "name": "schema violation", "message": message, "fields": fields}


def fk(field, kind, id_):
    return {"code": 4, "name": "foreign key violation",
            "message": f"the foreign key '{{id=\"{id_}\"}}' does not reference an existing "
                       f"'{kind}' entity.",
            "fields": {field: {"id": id_}}}


def unique(field, value):
    return {"code": 5, "name": "unique constraint violation",
            "message": f"UNIQUE violation detected on '{{{field}=\"{value}\"}}'",
            "fields": {field: value}}


def pk_violation(id_):
    return {"code": 3, "name": "primary key violation",
            "message": f"primary key violation on key '{{id=\"{id_}\"}}'",
            "fields": {"id": id_}}


def unresolved(name):
    detail = (f"the foreign key cannot be resolved with '{{name=\"{name}\"}}' for an "
              f"existing 'services' entity")
    return {"code": 13, "name": "foreign keys unresolved",
            "message": f"foreign key unresolved (service.name: {detail})",
            "fields": {"service": {"name": detail}}}


def invalid_unique(message):
    return {"code": 10, "name": "invalid unique name", "message": message}


INVALID_PK = {"code": 1, "name": "invalid primary key",
              "message": "invalid primary key: '{id=\"expected a valid UUID\"}'",
              "fields": {"id": "expected a valid UUID"}}


def run_cases(w, cases):
    """Each case (method, path, body, status, expected body) inside one unchanged block."""
    with unchanged(w.cp):
        for method, path, body, status, want in cases:
            r = call(w.cp, method, path, body)
            expect(r, status, want, f"{method} {path} {body!r:.200}")


# ----------------------------------------------------------------------------- bodies


# Every write endpoint form: POST collection, POST nested, PUT/PATCH by id and by
# endpoint key, nested PUT/PATCH, /routes/{r}/service.
WRITES = [
    ("POST", lambda w: "/services"),
    ("POST", lambda w: "/routes"),
    ("POST", lambda w: "/certificates"),
    ("POST", lambda w: "/snis"),
    ("POST", lambda w: "/ca_certificates"),
    ("POST", lambda w: f"/services/{w.S1['id']}/routes"),
    ("POST", lambda w: "/services/svc-a/routes"),
    ("POST", lambda w: f"/certificates/{w.C1['id']}/snis"),
    ("POST", lambda w: "/certificates/a.example.test/snis"),
]
for _m in ("PUT", "PATCH"):
    WRITES += [
        (_m, lambda w: f"/services/{w.S1['id']}"),
        (_m, lambda w: "/services/svc-a"),
        (_m, lambda w: f"/routes/{w.R1['id']}"),
        (_m, lambda w: "/routes/rt-a1"),
        (_m, lambda w: f"/certificates/{w.C1['id']}"),
        (_m, lambda w: "/certificates/a.example.test"),
        (_m, lambda w: f"/snis/{w.SNI_A['id']}"),
        (_m, lambda w: "/snis/a.example.test"),
        (_m, lambda w: f"/ca_certificates/{w.CA2['id']}"),
        (_m, lambda w: f"/services/{w.S1['id']}/routes/{w.R1['id']}"),
        (_m, lambda w: "/services/svc-a/routes/rt-a1"),
        (_m, lambda w: f"/certificates/{w.C1['id']}/snis/a.example.test"),
        (_m, lambda w: "/routes/rt-a1/service"),
    ]
WRITES += [("PUT", lambda w: f"/services/{NEW}"), ("PUT", lambda w: "/routes/rt-new"),
           ("PUT", lambda w: "/certificates/new.example.test")]


def write_id(case):
    method, path = case
    fake = World()
    fake.S1 = fake.R1 = fake.C1 = fake.SNI_A = fake.CA2 = {"id": "ID"}
    return f"{method} {path(fake)}"


@pytest.mark.parametrize("case", WRITES, ids=[write_id(c) for c in WRITES])
def test_bad_bodies(w, case):
    # kong/api/api_helpers.lua before_filter and parse_params: 415 for a type it does not
    # read (and for a body without a Content-Type), 400 "Cannot parse JSON body".
    # Strait adds a message to Kong's empty 415, refuses two Content-Type headers and
    # a form key it cannot read (docs/admin-api.md, Errors).
    method, path = case
    p = path(w)
    cp = w.cp
    unsupported = {"message": "Unsupported Content-Type"}
    bad_json = {"message": "Cannot parse JSON body"}
    with unchanged(cp):
        for ctype in ("text/plain", "application/xml", "application/jsonx"):
            expect(raw(cp, method, p, "host=h", [("Content-Type", ctype)]), 415, unsupported,
                   ctype)
        expect(raw(cp, method, p, '{"host": "h"}'), 415, unsupported, "no Content-Type")
        for text in ('{"host": ', "", '"str"', "1", "null", '{"a":1}{'):
            expect(raw(cp, method, p, text, [("Content-Type", "application/json")]), 400,
                   bad_json, text)
        expect(raw(cp, method, p, '{"host": "h"}', [("Content-Type", "application/json"),
                                                    ("Content-Type", "application/json")]),
               400, {"message": "Multiple Content-Type headers not allowed"})
        for text, key in (("a[x]=1", "a[x]"), ("a..b=1", "a..b"),
                          ("host=h&host[1]=i", "host[1]")):
            expect(raw(cp, method, p, text,
                       [("Content-Type", "application/x-www-form-urlencoded")]),
                   400, {"message": f"invalid form key '{key}'"}, text)
        for ctype, text in (("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: "
                             "form-data; name=\"host\"\r\n\r\nh\r\n"),
                            ("multipart/form-data", "host=h")):
            expect(raw(cp, method, p, text, [("Content-Type", ctype)]), 400,
                   {"message": "Cannot parse multipart/form-data body"}, text)


# ----------------------------------------------------------------------------- schema


def test_service_schema_violations(w):
    s1 = w.S1["id"]
    run_cases(w, [
        ("POST", "/services", {}, 400,
         schema("schema violation (host: required field missing)",
                {"host": "required field missing"})),
        ("POST", "/services", {"host": "h", "port": 70000, "retries": -1,
                               "connect_timeout": 0}, 400,
         schema("3 schema violations (connect_timeout: value should be between 1 and "
                "2147483646; port: value should be between 0 and 65535; retries: value "
                "should be between 0 and 32767)",
                {"port": "value should be between 0 and 65535",
                 "retries": "value should be between 0 and 32767",
                 "connect_timeout": "value should be between 1 and 2147483646"})),
        ("POST", "/services", {"host": "h", "colour": "red"}, 400,
         schema("schema violation (colour: unknown field)", {"colour": "unknown field"})),
        ("POST", "/services", [("host", "h"), ("connect_timeout", "foobar")], 400,
         schema("schema violation (connect_timeout: expected an integer)",
                {"connect_timeout": "expected an integer"})),
        ("POST", "/services", {"host": "h", "tags": "t"}, 400,
         schema("schema violation (tags: expected a set)", {"tags": "expected a set"})),
        ("POST", "/services", {"host": "h", "enabled": "yes"}, 400,
         schema("schema violation (enabled: expected a boolean)",
                {"enabled": "expected a boolean"})),
        ("POST", "/services", {"host": "h", "id": "nope"}, 400,
         schema("schema violation (id: expected a valid UUID)",
                {"id": "expected a valid UUID"})),
        ("POST", "/services", {"name": "bad name", "host": "h"}, 400,
         schema(f"schema violation (name: invalid value 'bad name': {NAME_ASCII})",
                {"name": f"invalid value 'bad name': {NAME_ASCII}"})),
        # PUT is a full replacement: what the body lacks is missing (Kong's spec for
        # PUT /routes/{r}/service, the same message)
        ("PUT", f"/services/{s1}", {"connect_timeout": "foobar"}, 400,
         schema("2 schema violations (connect_timeout: expected an integer; host: required "
                "field missing)", {"connect_timeout": "expected an integer",
                                   "host": "required field missing"})),
        ("PUT", "/services/svc-a", {"host": "h", "port": "x"}, 400,
         schema("schema violation (port: expected an integer)",
                {"port": "expected an integer"})),
        ("PUT", f"/services/{NEW}", {}, 400,
         schema("schema violation (host: required field missing)",
                {"host": "required field missing"})),
        ("PATCH", "/services/svc-a", {"port": -1}, 400,
         schema("schema violation (port: value should be between 0 and 65535)",
                {"port": "value should be between 0 and 65535"})),
        ("PATCH", f"/services/{s1}", [("read_timeout", "x"), ("write_timeout", "0")], 400,
         schema("2 schema violations (read_timeout: expected an integer; write_timeout: value "
                "should be between 1 and 2147483646)",
                {"read_timeout": "expected an integer",
                 "write_timeout": "value should be between 1 and 2147483646"})),
        ("PATCH", "/services/svc-a", {"colour": "red"}, 400,
         schema("schema violation (colour: unknown field)", {"colour": "unknown field"})),
        ("PATCH", "/routes/rt-a1/service", {"connect_timeout": "foobar"}, 400,
         schema("schema violation (connect_timeout: expected an integer)",
                {"connect_timeout": "expected an integer"})),
        ("PUT", "/routes/rt-a1/service", {"connect_timeout": "foobar"}, 400,
         schema("2 schema violations (connect_timeout: expected an integer; host: required "
                "field missing)", {"connect_timeout": "expected an integer",
                                   "host": "required field missing"})),
    ])


def test_route_schema_violations(w):
    s1, r1 = w.S1["id"], w.R1["id"]
    protocols = "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"
    run_cases(w, [
        ("POST", "/routes", {"protocols": ["tcp"], "service": {"id": s1}}, 400,
         schema(f"schema violation ({STREAM_RULE})", {"@entity": [STREAM_RULE]})),
        ("POST", "/routes", {"protocols": ["foo", "tcp"], "service": {"id": s1},
                             "destinations": [{"port": 1}]}, 400,
         schema(f"schema violation (protocols.1: {protocols})", {"protocols": [protocols]})),
        # Kong's spec: an invalid service name is the name's error, with the others
        ("POST", "/routes", {"protocols": ["foo", "tcp"], "service": {"name": "\\o/"},
                             "destinations": [{"port": 1}]}, 400,
         schema(f"2 schema violations (protocols.1: {protocols}; service.name: invalid value "
                f"'\\o/': {NAME_ASCII})",
                {"protocols": [protocols],
                 "service": {"name": f"invalid value '\\o/': {NAME_ASCII}"}})),
        ("POST", "/routes", {"protocols": ["tcp"], "service": {},
                             "destinations": [{"port": 1}]}, 400,
         schema("schema violation (service.id: missing primary key)",
                {"service": {"id": "missing primary key"}})),
        ("POST", "/routes", {"protocols": ["tcp"], "service": {"protocol": "http"},
                             "destinations": [{"port": 1}]}, 400,
         schema("schema violation (service.id: missing primary key)",
                {"service": {"id": "missing primary key"}})),
        ("POST", "/routes", {"protocols": ["tcp"], "service": {"name": None},
                             "destinations": [{"port": 1}]}, 400,
         schema("schema violation (service.id: missing primary key)",
                {"service": {"id": "missing primary key"}})),
        ("POST", "/services/svc-a/routes", {
            "protocols": ["tcp"], "destinations": [{"port": 70000}],
            "sources": [{"ip": "10.0.0.300"}]}, 400,
         schema("2 schema violations (destinations.1.port: value should be between 0 and "
                "65535; sources.1.ip: invalid ip or cidr range: '10.0.0.300')",
                {"sources": [{"ip": "invalid ip or cidr range: '10.0.0.300'"}],
                 "destinations": [{"port": "value should be between 0 and 65535"}]})),
        ("POST", f"/services/{s1}/routes", [("protocols", "tcp")], 400,
         schema(f"schema violation ({STREAM_RULE})", {"@entity": [STREAM_RULE]})),
        ("POST", "/routes", {"protocols": ["tcp"], "destinations": "x",
                             "service": {"id": s1}}, 400,
         schema("schema violation (destinations: expected a set)",
                {"destinations": "expected a set"})),
        ("PUT", f"/routes/{NEW}", {}, 400,
         schema(f"schema violation ({STREAM_RULE})", {"@entity": [STREAM_RULE]})),
        ("PUT", f"/routes/{r1}", {"protocols": ["tcp"], "service": {"id": s1}}, 400,
         schema(f"schema violation ({STREAM_RULE})", {"@entity": [STREAM_RULE]})),
        ("PUT", "/routes/rt-a1", {"protocols": ["tcp"], "destinations": [{"port": 1}],
                                  "preserve_host": "x"}, 400,
         schema("schema violation (preserve_host: expected a boolean)",
                {"preserve_host": "expected a boolean"})),
        ("PATCH", "/routes/rt-a1", {"preserve_host": "x"}, 400,
         schema("schema violation (preserve_host: expected a boolean)",
                {"preserve_host": "expected a boolean"})),
        ("PATCH", f"/routes/{r1}", {"destinations": None}, 400,
         schema(f"schema violation ({STREAM_RULE})", {"@entity": [STREAM_RULE]})),
        ("PATCH", "/routes/rt-a1", {"name": "bad name"}, 400,
         schema(f"schema violation (name: invalid value 'bad name': {NAME_UTF8})",
                {"name": f"invalid value 'bad name': {NAME_UTF8}"})),
        ("PUT", "/services/svc-a/routes/rt-a1", {"protocols": ["tcp"]}, 400,
         schema(f"schema violation ({STREAM_RULE})", {"@entity": [STREAM_RULE]})),
        ("PATCH", f"/services/{s1}/routes/{r1}", {"sources": [{"ip": "10.0.0.300"}]}, 400,
         schema("schema violation (sources.1.ip: invalid ip or cidr range: '10.0.0.300')",
                {"sources": [{"ip": "invalid ip or cidr range: '10.0.0.300'"}]})),
    ])


def test_certificate_schema_violations(w):
    c1, c2 = w.C1["id"], w.C2["id"]
    cert, key = w.pem["c3"]
    owned = (f"c.example.test already associated with existing certificate '{c2}'")
    match = "certificate does not match key"
    run_cases(w, [
        ("PUT", f"/certificates/{NEW}", {}, 400,
         schema("2 schema violations (cert: required field missing; key: required field "
                "missing)", {"cert": "required field missing", "key": "required field missing"})),
        ("POST", "/certificates", {"cert": cert, "key": w.pem["c1"][1]}, 400,
         schema(f"schema violation ({match})", {"@entity": [match]})),
        ("PUT", f"/certificates/{c1}", {"cert": cert, "key": w.pem["c1"][1]}, 400,
         schema(f"schema violation ({match})", {"@entity": [match]})),
        ("PATCH", "/certificates/a.example.test", {"key": key}, 400,
         schema(f"schema violation ({match})", {"@entity": [match]})),
        ("POST", "/certificates", {"cert": cert, "key": key,
                                   "snis": ["x.example.test", "x.example.test"]}, 400,
         schema("schema violation (snis: x.example.test is duplicated)",
                {"snis": "x.example.test is duplicated"})),
        ("PATCH", f"/certificates/{c1}", {"snis": ["x.example.test", "x.example.test"]}, 400,
         schema("schema violation (snis: x.example.test is duplicated)",
                {"snis": "x.example.test is duplicated"})),
        ("POST", "/certificates", {"cert": cert, "key": key,
                                   "snis": ["new.example.test", "c.example.test"]}, 400,
         schema(f"schema violation (snis: {owned})", {"snis": owned})),
        ("PATCH", "/certificates/a.example.test", {"snis": ["c.example.test"]}, 400,
         schema(f"schema violation (snis: {owned})", {"snis": owned})),
        ("PUT", "/certificates/new.example.test", {"cert": cert, "key": key,
                                                   "snis": ["c.example.test"]}, 400,
         schema(f"schema violation (snis: {owned})", {"snis": owned})),
        ("POST", "/certificates", {"cert": cert, "key": key, "snis": [1]}, 400,
         schema("schema violation (snis.1: expected a string)", {"snis": ["expected a string"]})),
        ("POST", "/certificates", {"cert": cert, "key": key, "snis": "x.example.test",
                                   "colour": 1}, 400,
         schema("schema violation (colour: unknown field)", {"colour": "unknown field"})),
    ])
    # garbage PEM: OpenSSL's words follow Kong's prefix
    with unchanged(w.cp):
        r = call(w.cp, "POST", "/certificates", {"cert": "garbage", "key": key})
        assert r.status == 400 and r.json["code"] == 2, r
        assert r.json["message"].startswith("schema violation (cert: invalid certificate: "), r
        assert list(r.json["fields"]) == ["cert"], r


def test_sni_schema_violations(w):
    c1 = w.C1["id"]
    run_cases(w, [
        ("PUT", f"/snis/{NEW}", {}, 400,
         schema("2 schema violations (certificate: required field missing; name: required "
                "field missing)", {"certificate": "required field missing",
                                   "name": "required field missing"})),
        ("POST", "/snis", {"name": "*.wildcard.*", "certificate": {"id": c1}}, 400,
         schema("schema violation (name: only one wildcard must be specified)",
                {"name": "only one wildcard must be specified"})),
        ("POST", "/snis", {"name": "a..b", "certificate": {"id": c1}}, 400,
         schema("schema violation (name: invalid value: a..b)", {"name": "invalid value: a..b"})),
        ("POST", f"/certificates/{c1}/snis", {"name": "x.example.test", "colour": 1}, 400,
         schema("schema violation (colour: unknown field)", {"colour": "unknown field"})),
        ("POST", "/certificates/a.example.test/snis", {}, 400,
         schema("schema violation (name: required field missing)",
                {"name": "required field missing"})),
        ("PATCH", "/snis/a.example.test", {"name": "1.2.3.4"}, 400,
         schema("schema violation (name: must not be an IP)", {"name": "must not be an IP"})),
        ("PATCH", f"/certificates/{c1}/snis/a.example.test", {"name": "x.example.test:80"},
         400, schema("schema violation (name: must not have a port)",
                     {"name": "must not have a port"})),
        ("PUT", "/snis/a.example.test", {}, 400,
         schema("schema violation (certificate: required field missing)",
                {"certificate": "required field missing"})),
    ])


def test_ca_certificate_schema_violations(w):
    ca2 = w.CA2["id"]
    not_ca = ('certificate does not appear to be a CA because it is missing the "CA" basic '
              'constraint')
    expired = 'certificate expired, "Not After" time is in the past'
    one = "please submit only one certificate at a time"
    leaf = w.pem["c3"][0]
    run_cases(w, [
        ("POST", "/ca_certificates", {}, 400,
         schema("schema violation (cert: required field missing)",
                {"cert": "required field missing"})),
        ("POST", "/ca_certificates", {"cert": leaf}, 400,
         schema(f"schema violation ({not_ca})", {"@entity": [not_ca]})),
        ("POST", "/ca_certificates", {"cert": leaf + "\n" + leaf}, 400,
         schema(f"schema violation ({one})", {"@entity": [one]})),
        ("POST", "/ca_certificates", {"cert": w.expired_ca}, 400,
         schema(f"schema violation ({expired})", {"@entity": [expired]})),
        ("PUT", f"/ca_certificates/{ca2}", {}, 400,
         schema("schema violation (cert: required field missing)",
                {"cert": "required field missing"})),
        ("PUT", f"/ca_certificates/{NEW}", {"cert": leaf}, 400,
         schema(f"schema violation ({not_ca})", {"@entity": [not_ca]})),
        ("PATCH", f"/ca_certificates/{ca2}", {"cert": leaf}, 400,
         schema(f"schema violation ({not_ca})", {"@entity": [not_ca]})),
        ("PATCH", f"/ca_certificates/{ca2}", {"cert": w.expired_ca}, 400,
         schema(f"schema violation ({expired})", {"@entity": [expired]})),
        ("PATCH", f"/ca_certificates/{ca2}", {"colour": 1}, 400,
         schema("schema violation (colour: unknown field)", {"colour": "unknown field"})),
    ])


# ----------------------------------------------------------------------------- keys


def test_unique_violations(w):
    s1, r1 = w.S1["id"], w.R1["id"]
    c1, c2 = w.C1["id"], w.C2["id"]
    svc = {"host": "h"}
    rt = {"protocols": ["tcp"], "destinations": [{"port": 1}]}
    run_cases(w, [
        ("POST", "/services", {"name": "svc-b", **svc}, 409, unique("name", "svc-b")),
        ("POST", "/services", [("name", "svc-b"), ("host", "h")], 409, unique("name", "svc-b")),
        ("PATCH", "/services/svc-a", {"name": "svc-b"}, 409, unique("name", "svc-b")),
        ("PATCH", f"/services/{s1}", {"name": "svc-b"}, 409, unique("name", "svc-b")),
        ("PUT", f"/services/{s1}", {"name": "svc-b", **svc}, 409, unique("name", "svc-b")),
        ("PUT", f"/services/{NEW}", {"name": "svc-b", **svc}, 409, unique("name", "svc-b")),
        ("PATCH", "/routes/rt-a1/service", {"name": "svc-b"}, 409, unique("name", "svc-b")),
        ("PUT", "/routes/rt-a1/service", {"name": "svc-b", **svc}, 409,
         unique("name", "svc-b")),
        ("POST", "/routes", {"name": "rt-b1", "service": {"id": s1}, **rt}, 409,
         unique("name", "rt-b1")),
        ("POST", "/services/svc-a/routes", {"name": "rt-b1", **rt}, 409,
         unique("name", "rt-b1")),
        ("PATCH", "/routes/rt-a1", {"name": "rt-b1"}, 409, unique("name", "rt-b1")),
        ("PUT", f"/routes/{r1}", {"name": "rt-b1", "service": {"id": s1}, **rt}, 409,
         unique("name", "rt-b1")),
        ("PUT", f"/routes/{NEW}", {"name": "rt-b1", **rt}, 409, unique("name", "rt-b1")),
        ("PATCH", "/services/svc-a/routes/rt-a1", {"name": "rt-b1"}, 409,
         unique("name", "rt-b1")),
        ("POST", "/snis", {"name": "a.example.test", "certificate": {"id": c2}}, 409,
         unique("name", "a.example.test")),
        ("POST", f"/certificates/{c2}/snis", {"name": "a.example.test"}, 409,
         unique("name", "a.example.test")),
        ("POST", "/certificates/c.example.test/snis", {"name": "a.example.test"}, 409,
         unique("name", "a.example.test")),
        ("PATCH", "/snis/b.example.test", {"name": "a.example.test"}, 409,
         unique("name", "a.example.test")),
        ("PUT", f"/snis/{NEW}", {"name": "a.example.test", "certificate": {"id": c2}}, 409,
         unique("name", "a.example.test")),
        ("PATCH", f"/certificates/{c1}/snis/b.example.test", {"name": "a.example.test"}, 409,
         unique("name", "a.example.test")),
        # the same CA certificate twice: its digest is unique
        ("POST", "/ca_certificates", {"cert": w.pem["ca1"][0]}, 409,
         unique("cert_digest", w.CA1["cert_digest"])),
        ("PUT", f"/ca_certificates/{w.CA2['id']}", {"cert": w.pem["ca1"][0]}, 409,
         unique("cert_digest", w.CA1["cert_digest"])),
        ("PUT", f"/ca_certificates/{NEW}", {"cert": w.pem["ca1"][0]}, 409,
         unique("cert_digest", w.CA1["cert_digest"])),
    ])


def test_duplicate_primary_key_is_400_code_3(w):
    # the one code Strait picks for a duplicate primary key (docs/admin-api.md): Kong's
    # generated endpoints answer 400, code 3
    s1, r1, c1 = w.S1["id"], w.R1["id"], w.C1["id"]
    cert, key = w.pem["c3"]
    run_cases(w, [
        ("POST", "/services", {"id": w.S2["id"], "host": "h"}, 400, pk_violation(w.S2["id"])),
        ("POST", "/services", [("id", s1), ("host", "h")], 400, pk_violation(s1)),
        ("POST", "/routes", {"id": r1, "protocols": ["tcp"], "destinations": [{"port": 1}],
                             "service": {"id": s1}}, 400, pk_violation(r1)),
        ("POST", "/services/svc-b/routes", {"id": r1, "protocols": ["tcp"],
                                            "destinations": [{"port": 1}]}, 400,
         pk_violation(r1)),
        ("POST", "/certificates", {"id": c1, "cert": cert, "key": key}, 400, pk_violation(c1)),
        ("POST", "/certificates", {"id": c1, "cert": cert, "key": key,
                                   "snis": ["new.example.test"]}, 400, pk_violation(c1)),
        ("POST", "/snis", {"id": w.SNI_A["id"], "name": "new.example.test",
                           "certificate": {"id": w.C2["id"]}}, 400, pk_violation(w.SNI_A["id"])),
        ("POST", f"/certificates/{w.C2['id']}/snis", {"id": w.SNI_A["id"],
                                                     "name": "new.example.test"}, 400,
         pk_violation(w.SNI_A["id"])),
        ("POST", "/ca_certificates", {"id": w.CA1["id"], "cert": w.pem["ca3"][0]}, 400,
         pk_violation(w.CA1["id"])),
    ])


def test_invalid_primary_key_and_invalid_unique(w):
    # a CA certificate has no endpoint key: anything but a UUID is Kong's invalid primary
    # key; a name that is not a valid name is Kong's invalid_unique (code 10), for every
    # method and for a parent in the path too
    bad_svc = invalid_unique(f"invalid value 'bad name': {NAME_ASCII}")
    bad_rt = invalid_unique(f"invalid value 'bad name': {NAME_UTF8}")
    bad_sni = invalid_unique("invalid value: bad name")
    cases = []
    for m, body in (("GET", None), ("PUT", {"cert": w.pem["ca3"][0]}), ("PATCH", {}),
                    ("DELETE", None)):
        cases += [
            (m, "/ca_certificates/not-a-uuid", body, 400, INVALID_PK),
            (m, "/services/bad%20name", body, 400, bad_svc),
            (m, "/routes/bad%20name", body, 400, bad_rt),
            (m, "/snis/bad%20name", body, 400, bad_sni),
            (m, "/certificates/bad%20name", body, 400, bad_sni),
        ]
    cases += [
        ("GET", "/services/bad%20name/routes", None, 400, bad_svc),
        ("POST", "/services/bad%20name/routes", {"protocols": ["tcp"]}, 400, bad_svc),
        ("GET", "/services/svc-a/routes/bad%20name", None, 400, bad_rt),
        ("DELETE", "/services/svc-a/routes/bad%20name", None, 400, bad_rt),
        ("GET", "/certificates/bad%20name/snis", None, 400, bad_sni),
        ("GET", "/routes/bad%20name/service", None, 400, bad_rt),
        ("PATCH", "/routes/bad%20name/service", {}, 400, bad_rt),
    ]
    run_cases(w, cases)


def test_foreign_key_violations(w):
    s1 = w.S1["id"]
    rt = {"protocols": ["tcp"], "destinations": [{"port": 1}]}
    tls = {"host": "h", "protocol": "tls"}
    run_cases(w, [
        ("POST", "/routes", {"service": {"id": NEW}, **rt}, 400, fk("service", "services", NEW)),
        ("POST", "/routes", [("protocols", "tcp"), ("destinations[1].port", "1"),
                             ("service.id", NEW)], 400, fk("service", "services", NEW)),
        ("PATCH", "/routes/rt-a1", {"service": {"id": NEW}}, 400,
         fk("service", "services", NEW)),
        ("PUT", f"/routes/{w.R1['id']}", {"service": {"id": NEW}, **rt}, 400,
         fk("service", "services", NEW)),
        # Kong's nested PATCH takes the body's service when it names one
        ("PATCH", "/services/svc-a/routes/rt-a1", {"service": {"id": NEW}}, 400,
         fk("service", "services", NEW)),
        ("POST", "/snis", {"name": "n.example.test", "certificate": {"id": NEW}}, 400,
         fk("certificate", "certificates", NEW)),
        ("PATCH", "/snis/a.example.test", {"certificate": {"id": NEW}}, 400,
         fk("certificate", "certificates", NEW)),
        ("PUT", f"/snis/{NEW}", {"name": "n.example.test", "certificate": {"id": NEW}}, 400,
         fk("certificate", "certificates", NEW)),
        ("POST", "/services", {"client_certificate": {"id": NEW}, **tls}, 400,
         fk("client_certificate", "certificates", NEW)),
        ("PATCH", "/services/svc-tls", {"client_certificate": {"id": NEW}}, 400,
         fk("client_certificate", "certificates", NEW)),
        # Kong keeps ca_certificates as plain UUIDs; Strait refuses one that names no CA
        # certificate, in Kong's foreign key words
        ("POST", "/services", {"ca_certificates": [NEW], **tls}, 400,
         fk("ca_certificates", "ca_certificates", NEW)),
        ("PATCH", "/services/svc-tls", {"ca_certificates": [w.CA1["id"], NEW]}, 400,
         fk("ca_certificates", "ca_certificates", NEW)),
        # a service by a name no service has: Kong's resolve_foreign
        ("POST", "/routes", {"service": {"name": "nope"}, **rt}, 400, unresolved("nope")),
        ("POST", "/routes", [("protocols", "tcp"), ("destinations[1].port", "1"),
                             ("service.name", "nope")], 400, unresolved("nope")),
        ("PATCH", "/routes/rt-a1", {"service": {"name": "nope"}}, 400, unresolved("nope")),
        ("PUT", "/routes/rt-a1", {"service": {"name": "nope"}, **rt}, 400,
         unresolved("nope")),
        ("PUT", f"/routes/{NEW}", {"service": {"name": "nope"}, **rt}, 400,
         unresolved("nope")),
        ("PATCH", f"/services/{s1}/routes/rt-a1", {"service": {"name": "nope"}}, 400,
         unresolved("nope")),
    ])


def test_delete_referenced(w):
    routes_ref = {"code": 4, "name": "foreign key violation",
                  "message": "an existing 'routes' entity references this 'services' entity",
                  "fields": {"@referenced_by": "routes"}}
    services_ref = {"code": 4, "name": "foreign key violation",
                    "message": "an existing 'services' entity references this 'certificates' "
                               "entity",
                    "fields": {"@referenced_by": "services"}}
    ca_ref = {"code": 19, "name": "referenced by others",
              "message": f"ca certificate {w.CA1['id']} is still referenced by services "
                         f"(id = {w.S4['id']})"}
    run_cases(w, [
        ("DELETE", "/services/svc-a", None, 400, routes_ref),
        ("DELETE", f"/services/{w.S1['id']}", None, 400, routes_ref),
        ("DELETE", "/services/svc-b", None, 400, routes_ref),
        ("DELETE", f"/certificates/{w.C2['id']}", None, 400, services_ref),
        ("DELETE", "/certificates/c.example.test", None, 400, services_ref),
        ("DELETE", f"/ca_certificates/{w.CA1['id']}", None, 400, ca_ref),
        # Kong: a route's service is never deleted through the route
        ("DELETE", "/routes/rt-a1/service", None, 405, NOT_ALLOWED),
        ("DELETE", f"/routes/{w.R3['id']}/service", None, 405, NOT_ALLOWED),
    ])


# ----------------------------------------------------------------------------- 404


def test_not_found(w):
    s1, s2, r1, c1, c2 = w.S1["id"], w.S2["id"], w.R1["id"], w.C1["id"], w.C2["id"]
    rt = {"protocols": ["tcp"], "destinations": [{"port": 1}]}
    cases = []
    for m, body in (("GET", None), ("PATCH", {"port": 1})):
        cases += [(m, f"/services/{NEW}", body, 404, NOT_FOUND),
                  (m, "/services/nope", body, 404, NOT_FOUND),
                  (m, f"/routes/{NEW}", body, 404, NOT_FOUND),
                  (m, "/routes/nope", body, 404, NOT_FOUND),
                  (m, f"/snis/{NEW}", body, 404, NOT_FOUND),
                  (m, "/snis/nope.example.test", body, 404, NOT_FOUND),
                  (m, f"/ca_certificates/{NEW}", body, 404, NOT_FOUND),
                  (m, f"/certificates/{NEW}", body, 404, NOT_FOUND),
                  (m, f"/routes/{NEW}/service", body, 404, NOT_FOUND),
                  (m, "/routes/nope/service", body, 404, NOT_FOUND)]
    # a certificate by a name no SNI has (kong/api/routes/certificates.lua), except PUT
    for m, body in (("GET", None), ("PATCH", {}), ("DELETE", None)):
        cases.append((m, "/certificates/nope.example.test", body, 404, SNI_NOT_FOUND))
    cases += [
        ("GET", "/certificates/nope.example.test/snis", None, 404, SNI_NOT_FOUND),
        ("POST", "/certificates/nope.example.test/snis", {"name": "x.example.test"}, 404,
         SNI_NOT_FOUND),
        ("GET", "/certificates/nope.example.test/snis/a.example.test", None, 404,
         SNI_NOT_FOUND),
        ("GET", f"/certificates/{NEW}/snis", None, 404, NOT_FOUND),
        ("POST", f"/certificates/{NEW}/snis", {"name": "x.example.test"}, 404, NOT_FOUND),
        ("PUT", f"/certificates/{NEW}/snis/x.example.test", {}, 404, NOT_FOUND),
        ("PUT", "/routes/nope/service", {"host": "h"}, 404, NOT_FOUND),
        ("PUT", f"/routes/{NEW}/service", {"host": "h"}, 404, NOT_FOUND),
        # nested under a parent that does not exist
        ("GET", f"/services/{NEW}/routes", None, 404, NOT_FOUND),
        ("GET", "/services/nope/routes", None, 404, NOT_FOUND),
        ("POST", "/services/nope/routes", rt, 404, NOT_FOUND),
        ("POST", f"/services/{NEW}/routes", [("protocols", "tcp")], 404, NOT_FOUND),
        ("PUT", "/services/nope/routes/rt-a1", rt, 404, NOT_FOUND),
        ("PATCH", f"/services/{NEW}/routes/{r1}", {}, 404, NOT_FOUND),
        ("DELETE", "/services/nope/routes/rt-a1", None, 404, NOT_FOUND),
        # a child of another parent (kong/api/endpoints.lua compares the foreign key)
        ("GET", "/services/svc-b/routes/rt-a1", None, 404, NOT_FOUND),
        ("GET", f"/services/{s2}/routes/{r1}", None, 404, NOT_FOUND),
        ("PATCH", "/services/svc-b/routes/rt-a1", {"destinations": [{"port": 2}]}, 404,
         NOT_FOUND),
        ("DELETE", f"/services/{s2}/routes/{r1}", None, 404, NOT_FOUND),
        ("DELETE", "/services/svc-empty/routes/rt-a1", None, 404, NOT_FOUND),
        ("GET", f"/certificates/{c2}/snis/a.example.test", None, 404, NOT_FOUND),
        ("PATCH", "/certificates/c.example.test/snis/a.example.test", {}, 404, NOT_FOUND),
        ("DELETE", f"/certificates/{c2}/snis/{w.SNI_A['id']}", None, 404, NOT_FOUND),
        # a child that does not exist under a parent that does
        ("GET", "/services/svc-a/routes/nope", None, 404, NOT_FOUND),
        ("PATCH", f"/services/{s1}/routes/{NEW}", {}, 404, NOT_FOUND),
        ("DELETE", "/services/svc-a/routes/nope", None, 404, NOT_FOUND),
        ("DELETE", f"/certificates/{c1}/snis/nope.example.test", None, 404, NOT_FOUND),
        # paths that are no endpoint
        ("GET", "/nothing", None, 404, NOT_FOUND),
        ("POST", "/nothing", {}, 404, NOT_FOUND),
        ("GET", "/services/svc-a/routes/rt-a1/service", None, 404, NOT_FOUND),
        ("GET", "/snis/a.example.test/certificate", None, 404, NOT_FOUND),
        ("GET", "/services/svc-a/snis", None, 404, NOT_FOUND),
        ("DELETE", "/services//svc-a", None, 404, NOT_FOUND),
    ]
    run_cases(w, cases)


def test_delete_absent_is_204_and_changes_nothing(w):
    # Kong's generated DELETE answers 204 for an entity that does not exist
    cp = w.cp
    with unchanged(cp):
        for p in (f"/services/{NEW}", "/services/nope", f"/routes/{NEW}", "/routes/nope",
                  f"/snis/{NEW}", "/snis/nope.example.test", f"/certificates/{NEW}",
                  f"/ca_certificates/{NEW}"):
            r = cp.api("DELETE", p)
            assert (r.status, r.raw) == (204, b""), (p, r)


# ----------------------------------------------------------------------------- reads


LISTS = ["/services", "/routes", "/certificates", "/snis", "/ca_certificates",
         "/services/svc-a/routes", "/services/{S1}/routes", "/certificates/a.example.test/snis",
         "/certificates/{C1}/snis"]


def list_path(w, p):
    return p.replace("{S1}", w.S1["id"]).replace("{C1}", w.C1["id"])


@pytest.mark.parametrize("path", LISTS)
def test_paging_errors(w, path):
    # kong/api/endpoints.lua get_page_size, kong/db/dao/init.lua validate_size_value,
    # and Kong's base64 offsets (kong/db/strategies/postgres: "bad base64 encoding")
    p = list_path(w, path)
    size_int = {"code": 9, "name": "invalid size",
                "message": "size must be an integer between 1 and 1000"}
    cases = [("GET", f"{p}?size=abc", None, 400,
              {"code": 9, "name": "invalid size", "message": "size must be a number"}),
             ("GET", f"{p}?size=", None, 400,
              {"code": 9, "name": "invalid size", "message": "size must be a number"})]
    for size in ("0", "1001", "1.5", "-3"):
        cases.append(("GET", f"{p}?size={size}", None, 400, size_int))
    for off in ("x", "|potato|", "a-b", "!!"):
        q = urllib.parse.quote(off, safe="")
        cases.append(("GET", f"{p}?offset={q}", None, 400,
                      {"code": 7, "name": "invalid offset",
                       "message": f"'{off}' is not a valid offset: bad base64 encoding"}))
    run_cases(w, cases)
    # base64 text that is no offset of Strait's: still code 7
    with unchanged(w.cp):
        r = w.cp.get(f"{p}?offset=zzzz&size=2")
        assert r.status == 400, r
        assert (r.json["code"], r.json["name"]) == (7, "invalid offset"), r
        assert r.json["message"].startswith("'zzzz' is not a valid offset: "), r


@pytest.mark.parametrize("path", LISTS)
def test_tags_filter_errors(w, path):
    # kong/api/endpoints.lua TAGS_AND_REGEX / TAGS_OR_REGEX and validate_options_value;
    # spec/02-integration/04-admin_api/14-tags_spec.lua (nested lists check them too)
    p = list_path(w, path)
    syntax = {"code": 11, "name": "invalid options",
              "message": "invalid option (tags: invalid filter syntax)"}
    cases = [("GET", f"{p}?tags={t}", None, 400, syntax)
             for t in ("a,b/c", "a/b,c", "", ",a", "a,,b", "a//b", "/", "%01", "%7F", "a%0Ab")]
    cases.append(("GET", f"{p}?tags=a,b,c,d,e,f", None, 400,
                  {"code": 11, "name": "invalid options",
                   "message": "invalid option (tags: cannot query more than 5 tags)"}))
    cases.append(("GET", f"{p}?tags=a/b/c/d/e/f&size=1", None, 400,
                  {"code": 11, "name": "invalid options",
                   "message": "invalid option (tags: cannot query more than 5 tags)"}))
    run_cases(w, cases)


# ----------------------------------------------------------------------------- 405


def test_method_not_allowed(w):
    # Kong's 405 body, whatever the body of the request (kong/api/endpoints.lua; the
    # routes spec "returns HTTP 405 on invalid method")
    cases = []
    for c in COLLECTIONS:
        for m in ("PUT", "PATCH", "DELETE"):
            cases.append((m, f"/{c}", {}, 405, NOT_ALLOWED))
    for p in ("/services/svc-a", "/routes/rt-a1", f"/certificates/{w.C1['id']}",
              "/snis/a.example.test", f"/ca_certificates/{w.CA1['id']}",
              "/services/svc-a/routes/rt-a1", "/certificates/a.example.test/snis/a.example.test",
              "/routes/rt-a1/service"):
        cases.append(("POST", p, {"name": "x"}, 405, NOT_ALLOWED))
    for p in ("/services/svc-a/routes", f"/certificates/{w.C1['id']}/snis"):
        for m in ("PUT", "PATCH", "DELETE"):
            cases.append((m, p, {}, 405, NOT_ALLOWED))
    for p in ("/status", "/"):
        for m in ("POST", "PUT", "PATCH", "DELETE"):
            cases.append((m, p, {}, 405, NOT_ALLOWED))
    # the method decides first: a bad body to a 405 is still a 405
    cases.append(("PUT", "/routes", ("application/json", "{bad"), 405, NOT_ALLOWED))
    cases.append(("DELETE", "/services", ("text/plain", "x"), 405, NOT_ALLOWED))
    run_cases(w, cases)


def test_error_bodies_are_json(w):
    # every error above is sent as JSON
    cp = w.cp
    with unchanged(cp):
        for m, p in (("GET", "/nothing"), ("PUT", "/services"), ("GET", "/services?size=x"),
                     ("GET", "/ca_certificates/x"), ("POST", "/services")):
            r = raw(cp, m, p, "{}" if m != "GET" else "",
                    [("Content-Type", "application/json")] if m != "GET" else [])
            assert r.status >= 400, (m, p, r)
            ctype = {k.lower(): v for k, v in r.headers.items()}.get("content-type", "")
            assert ctype.startswith("application/json"), (m, p, r.headers)
            json.loads(r.raw)


# ----------------------------------------------------------------------------- nested moves


def test_nested_put_and_patch_move_a_child_as_kong_does(st):
    # kong/api/endpoints.lua: a nested PUT upserts the child with the parent of the path
    # whoever owned it; a nested PATCH checks the child belongs to the path's parent,
    # then takes the body's parent when it names one. (Not an error path: its own CP.)
    cp = st.cp()
    a = cp.service("a", 9000)
    b = cp.service("b", 9001)
    r = cp.route(a, name="r", destinations=[{"port": 5000}])
    got = cp.ok("PUT", "/services/b/routes/r",
                json_body={"protocols": ["tcp"], "destinations": [{"port": 5001}]}, expect=200)
    assert (got["id"], got["service"]) == (r["id"], {"id": b["id"]}), got
    assert [x["id"] for x in cp.get("/services/b/routes").json["data"]] == [r["id"]]
    assert cp.get("/services/a/routes").json["data"] == []
    # now r is b's: a PATCH through a is 404 and changes nothing
    with unchanged(cp):
        expect(cp.api("PATCH", "/services/a/routes/r", json_body={"service": {"id": a["id"]}}),
               404, NOT_FOUND)
    got = cp.ok("PATCH", "/services/b/routes/r", json_body={"service": {"id": a["id"]}},
                expect=200)
    assert got["service"] == {"id": a["id"]}, got
    assert cp.get("/routes/r/service").json["id"] == a["id"]
