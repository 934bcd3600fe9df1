# Guards issue 5, point 3 (control-plane side): Kong's declarative configuration on the
# control plane. POST /config (kong/api/routes/config.lua) takes the document as a JSON or
# YAML body, as a `config` string in JSON, form-urlencoded or multipart, replaces the
# whole configuration in one transaction (a refused document leaves every collection and
# the configuration hash as they were), answers 201 with Kong's entity map, 400 with
# Kong's code-14 body (`flattened_errors` only with flatten_errors=1), 304 with
# check_hash=1 while nothing changed, 415 for other content types. GET /config exports.
# `strait-cp config parse|db_import|db_export` (kong/cmd/config.lua): exit codes, Kong's
# messages, all-or-nothing upsert import, export that never overwrites. And the round trip
# of the issue: a file with every stream entity -> POST /config -> traffic through a DP ->
# GET /config -> db_import into a fresh CP -> the same configuration hash.

import os
import subprocess
import uuid

import pytest

from conftest import (CP_BIN, _child_env, echo_once, pem_to_der, read_text, scaled,
                      tls_echo, wait_for, write_conf)

COLLECTIONS = ("services", "routes", "certificates", "snis", "ca_certificates")

DOC_YAML = """\
_format_version: "3.0"
services:
- name: alpha
  host: 127.0.0.1
  port: 9001
  protocol: tcp
  tags: [decl]
  routes:
  - name: alpha-r
    protocols: [tcp]
    destinations:
    - port: 7001
- name: beta
  url: tcp://127.0.0.1:9002
"""


@pytest.fixture
def cp(st):
    return st.cp()


def items(cp, coll):
    r = cp.get(f"/{coll}?size=1000")
    assert r.status == 200, r
    return r.json["data"]


def by_name(cp, coll):
    return {e.get("name"): e for e in items(cp, coll)}


def state(cp):
    """Every collection, whole, and the configuration hash: what a refused write keeps."""
    out = {c: sorted(items(cp, c), key=lambda e: e["id"]) for c in COLLECTIONS}
    out["hash"] = cp.status_hash()
    return out


def post_config(cp, path="/config", **kw):
    return cp.api("POST", path, **kw)


def post_ok(cp, path="/config", settle=True, **kw):
    """A POST /config that must answer 201; waits for the CP to publish when settle."""
    h0 = cp.status_hash()
    r = post_config(cp, path, **kw)
    assert r.status == 201, r
    if settle:
        wait_for(lambda: cp.status_hash() != h0, 10, "the CP to publish the new configuration")
    return r


def cli(*args, timeout=60):
    return subprocess.run([CP_BIN, *args], capture_output=True, text=True,
                          env=_child_env({}), timeout=scaled(timeout))


def cp_cli(cp, *args):
    """`strait-cp ARGS -c <cp's conf> -p <cp's prefix>` (the conf is written first)."""
    write_conf(cp.conf_path, cp.conf)
    return cli(*args, "-c", cp.conf_path, "-p", cp.prefix)


# ----------------------------------------------------------------------------- POST forms


def test_post_json_body_and_201_body(cp):
    doc = {
        "_format_version": "3.0",
        "services": [{"name": "svc", "host": "127.0.0.1", "port": 9000,
                      "routes": [{"name": "r1", "protocols": ["tcp"],
                                  "sources": [{"ip": "10.0.0.0/8"}]}]}],
    }
    r = post_ok(cp, json_body=doc)
    svcs = by_name(cp, "services")
    routes = by_name(cp, "routes")
    assert set(svcs) == {"svc"} and set(routes) == {"r1"}
    s, rt = svcs["svc"], routes["r1"]
    # Kong's 201 body: every entity, by collection, keyed by id
    assert set(r.json) == {"services", "routes"}, r.json
    assert r.json["services"] == {s["id"]: s}, r.json
    assert r.json["routes"] == {rt["id"]: rt}, r.json
    assert rt["service"] == {"id": s["id"]}
    assert s["connect_timeout"] == 60000 and s["protocol"] == "tcp"  # defaults filled
    assert s["created_at"] < 10**11  # seconds through the API


def test_post_yaml_bodies(cp):
    for ctype in ("application/yaml", "text/yaml"):
        post_ok(cp, body=DOC_YAML.replace("alpha", ctype.split("/")[0]), ctype=ctype)
        assert set(by_name(cp, "services")) == {ctype.split("/")[0], "beta"}, ctype


def test_post_config_string_json_form_multipart(cp, tmp_path):
    post_ok(cp, json_body={"config": DOC_YAML})
    assert set(by_name(cp, "services")) == {"alpha", "beta"}

    post_ok(cp, form={"config": DOC_YAML.replace("alpha", "formed")})
    assert set(by_name(cp, "services")) == {"formed", "beta"}

    path = tmp_path / "kong.yml"
    path.write_text(DOC_YAML.replace("alpha", "multi"))
    h0 = cp.status_hash()
    r = subprocess.run(["curl", "-sS", "--noproxy", "*", "-o", str(tmp_path / "body"), "-w",
                        "%{http_code}", "-F", f"config=@{path}", f"{cp.base}/config"],
                       capture_output=True, text=True, timeout=scaled(20))
    assert r.returncode == 0 and r.stdout == "201", (r.stdout, r.stderr,
                                                     (tmp_path / "body").read_text())
    wait_for(lambda: cp.status_hash() != h0, 10, "the CP to publish the multipart config")
    assert set(by_name(cp, "services")) == {"multi", "beta"}


def test_post_replaces_everything_and_keeps_ids_by_name(cp):
    post_ok(cp, body=DOC_YAML, ctype="application/yaml")
    before = by_name(cp, "services")
    extra = cp.service("made-by-api", 9100)
    # alpha again (no id in the file), beta gone: beta and the API's service disappear
    doc = {"_format_version": "3.0",
           "services": [{"name": "alpha", "host": "127.0.0.1", "port": 9011}]}
    post_ok(cp, json_body=doc)
    after = by_name(cp, "services")
    assert set(after) == {"alpha"}
    assert after["alpha"]["id"] == before["alpha"]["id"]
    assert after["alpha"]["created_at"] == before["alpha"]["created_at"]
    assert after["alpha"]["port"] == 9011
    assert items(cp, "routes") == []
    assert cp.get(f"/services/{extra['id']}").status == 404


def test_post_415_400_and_empty(cp):
    before = state(cp)
    r = post_config(cp, body=DOC_YAML, ctype="text/plain")
    assert r.status == 415 and r.json == {"message": "Unsupported Content-Type"}, r
    r = post_config(cp)
    assert r.status == 400 and r.json == {"message": "expected a declarative configuration"}, r
    r = post_config(cp, body="{not json", ctype="application/json")
    assert r.status == 400 and r.json == {"message": "Cannot parse JSON body"}, r
    r = post_config(cp, json_body={"config": "bobby tables"})
    assert r.status == 400 and r.json["code"] == 14, r
    assert r.json["name"] == "invalid declarative configuration", r.json
    assert r.json["message"].startswith("declarative config is invalid"), r.json
    # YAML is accepted on /config only
    r = cp.api("POST", "/services", body="name: x\nhost: h\n", ctype="application/yaml")
    assert r.status == 415, r
    assert state(cp) == before


def test_post_over_the_body_limit(cp):
    """The admin API's body limit (16 MiB, cp_http) holds for /config too: 413, nothing
    loaded."""
    post_ok(cp, body=DOC_YAML, ctype="application/yaml")
    before = state(cp)
    big = DOC_YAML + "# " + "x" * (17 << 20) + "\n"
    r = post_config(cp, body=big, ctype="application/yaml")
    assert r.status == 413, r
    assert state(cp) == before


# ----------------------------------------------------------------------------- GET /config


def test_get_config_round_trip(cp):
    post_ok(cp, body=DOC_YAML, ctype="application/yaml")
    r = cp.get("/config")
    assert r.status == 200, r
    text = r.json["config"]
    assert isinstance(text, str) and "_format_version" in text and "3.0" in text, text
    assert "alpha-r" in text and "beta" in text
    h = cp.status_hash()
    ids = {e["name"]: e["id"] for e in items(cp, "services")}
    # the export loaded again is the same configuration: ids, created_at, hash
    r = post_config(cp, json_body={"config": text})
    assert r.status == 201, r
    assert {e["name"]: e["id"] for e in items(cp, "services")} == ids
    assert cp.status_hash() == h
    assert cp.get("/config").json["config"] == text


# ----------------------------------------------------------------------------- errors


def seed_everything(cp, pki):
    """A configuration with every kind, made through the entity endpoints."""
    ca_cert = pki.ca()[0]
    cert, key = pki.leaf("cfg-seed", "seed.example.test")
    ca = cp.ok("POST", "/ca_certificates", json_body={"cert": read_text(ca_cert)}, expect=201)
    c = cp.ok("POST", "/certificates", json_body={"cert": read_text(cert), "key": read_text(key),
                                                  "snis": ["seed.example.test"]}, expect=201)
    s = cp.service("seed", 9200, protocol="tls", tls_verify=True, ca_certificates=[ca["id"]],
                   client_certificate={"id": c["id"]})
    cp.route(s, name="seed-r", destinations=[{"port": 7200}])


BAD_DOC = """\
_format_version: "3.0"
services:
- name: good
  host: 127.0.0.1
  port: 9300
- name: bad
  port: -12
routes:
- name: orphan
  protocols: [tcp]
  destinations: [{port: 7300}]
  service: nowhere
"""


def test_refused_document_changes_nothing(cp, pki):
    seed_everything(cp, pki)
    before = state(cp)
    r = post_config(cp, body=BAD_DOC, ctype="application/yaml")
    assert r.status == 400, r
    assert r.json["code"] == 14 and r.json["name"] == "invalid declarative configuration", r.json
    assert "flattened_errors" not in r.json, r.json
    assert isinstance(r.json["fields"], dict) and r.json["fields"], r.json
    assert "services" in r.json["fields"], r.json
    assert state(cp) == before

    for flag in ("1", "true", "yes", "on"):
        r = post_config(cp, f"/config?flatten_errors={flag}", body=BAD_DOC,
                        ctype="application/yaml")
        assert r.status == 400, r
        flat = r.json.get("flattened_errors")
        assert isinstance(flat, list) and flat, r.json
        assert any(e.get("entity_type") == "service" for e in flat), flat
        assert state(cp) == before
    r = post_config(cp, "/config?flatten_errors=0", body=BAD_DOC, ctype="application/yaml")
    assert r.status == 400 and "flattened_errors" not in r.json, r.json


def test_duplicate_in_document_changes_nothing(cp, pki):
    """Two CA certificates with one digest: Kong's declarative uniqueness check (code 14),
    nothing written. (A conflict only the store sees is rolled back whole too: see the
    db_import test below and tests/unit/test_cp_decl_load.c.)"""
    seed_everything(cp, pki)
    before = state(cp)
    ca_pem = read_text(pki.ca("cfg-dup")[0])
    doc = {"_format_version": "3.0",
           "services": [{"name": "first", "host": "127.0.0.1", "port": 9400}],
           "ca_certificates": [{"cert": ca_pem}, {"cert": ca_pem}]}
    r = post_config(cp, json_body=doc)
    assert r.status == 400 and r.json["code"] == 14, r
    assert "uniqueness violation" in r.json["message"], r.json
    assert state(cp) == before


# ----------------------------------------------------------------------------- check_hash


def test_check_hash(cp):
    r = post_ok(cp, "/config?check_hash=1", body=DOC_YAML, ctype="application/yaml")
    r = post_config(cp, "/config?check_hash=1", body=DOC_YAML, ctype="application/yaml")
    assert r.status == 304 and r.raw == b"", r
    # the same text as a `config` field is the same text
    r = post_config(cp, "/config?check_hash=1", json_body={"config": DOC_YAML})
    assert r.status == 304, r
    # without check_hash it loads again
    r = post_config(cp, "/config", body=DOC_YAML, ctype="application/yaml")
    assert r.status == 201, r
    r = post_config(cp, "/config?check_hash=1", body=DOC_YAML, ctype="application/yaml")
    assert r.status == 304, r
    # another text is loaded
    other = DOC_YAML.replace("9002", "9003")
    r = post_config(cp, "/config?check_hash=1", body=other, ctype="application/yaml")
    assert r.status == 201, r
    r = post_config(cp, "/config?check_hash=1", body=other, ctype="application/yaml")
    assert r.status == 304, r
    # a write through the entity endpoints: the same text is no longer what is loaded
    cp.service("intruder", 9500)
    r = post_config(cp, "/config?check_hash=1", body=other, ctype="application/yaml")
    assert r.status == 201, r
    assert "intruder" not in by_name(cp, "services")
    # check_hash=true is not Kong's "1": loads
    r = post_config(cp, "/config?check_hash=true", body=other, ctype="application/yaml")
    assert r.status == 201, r


# ----------------------------------------------------------------------------- CLI


def test_cli_parse(tmp_path):
    good = tmp_path / "good.yml"
    good.write_text(DOC_YAML)
    r = cli("config", "parse", str(good))
    assert r.returncode == 0 and "parse successful" in r.stdout, r

    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_DOC)
    r = cli("config", "parse", str(bad))
    assert r.returncode == 1, r
    lines = r.stderr.splitlines()
    assert lines[0] == "strait: Failed parsing:", r.stderr
    assert "in 'services':" in lines, r.stderr
    assert any("- in entry 2 of 'services':" in ln for ln in lines), r.stderr
    assert any("value should be between 0 and 65535" in ln for ln in lines), r.stderr

    r = cli("config", "parse", str(tmp_path / "missing.yml"))
    assert r.returncode == 1 and "cannot read" in r.stderr, r
    garbage = tmp_path / "garbage.yml"
    garbage.write_text("bobby tables\n")
    r = cli("config", "parse", str(garbage))
    assert r.returncode == 1 and "Failed parsing" in r.stderr, r

    for args in (["config"], ["config", "parse"], ["config", "nope", "x"],
                 ["config", "parse", "a", "b"], ["config", "db_export"]):
        r = cli(*args)
        assert r.returncode == 2, (args, r)
    r = cli("--help")
    assert r.returncode == 0
    for sub in ("config db_import FILE", "config db_export FILE", "config parse FILE"):
        assert sub in r.stdout, r.stdout


def test_cli_db_import_upsert_all_or_nothing(st, tmp_path):
    cp = st.cp(start=False)
    first = tmp_path / "first.yml"
    first.write_text(DOC_YAML)
    r = cp_cli(cp, "config", "db_import", str(first))
    assert r.returncode == 0, r
    assert "import successful" in r.stdout, r
    cp.start()
    svcs = by_name(cp, "services")
    assert set(svcs) == {"alpha", "beta"}
    assert set(by_name(cp, "routes")) == {"alpha-r"}

    # Kong's db_import upserts: alpha (by name) keeps its id, gamma is added, beta stays
    second = tmp_path / "second.yml"
    second.write_text('_format_version: "3.0"\nservices:\n'
                      "- {name: alpha, host: 127.0.0.1, port: 9999}\n"
                      "- {name: gamma, host: 127.0.0.1, port: 9003}\n")
    h0 = cp.status_hash()
    r = cp_cli(cp, "config", "db_import", str(second))
    assert r.returncode == 0, r
    wait_for(lambda: cp.status_hash() != h0, 20, "the CP to see the import")
    after = by_name(cp, "services")
    assert set(after) == {"alpha", "beta", "gamma"}
    assert after["alpha"]["id"] == svcs["alpha"]["id"]
    assert after["alpha"]["created_at"] == svcs["alpha"]["created_at"]
    assert after["alpha"]["port"] == 9999

    # all or nothing: "fresh" comes first, then a name another id owns
    before = state(cp)
    conflict = tmp_path / "conflict.yml"
    conflict.write_text('_format_version: "3.0"\nservices:\n'
                        "- {name: fresh, host: 127.0.0.1, port: 9004}\n"
                        f"- {{id: {uuid.uuid4()}, name: gamma, host: 127.0.0.1, port: 9005}}\n")
    r = cp_cli(cp, "config", "db_import", str(conflict))
    # the store refuses the second entity after the first was inserted: rolled back whole
    assert r.returncode == 1, r
    assert r.stderr.splitlines() == ["strait: Failed importing:",
                                     "UNIQUE violation detected on '{name=\"gamma\"}'"], r
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_DOC)
    r = cp_cli(cp, "config", "db_import", str(bad))
    assert r.returncode == 1 and "Failed parsing" in r.stderr, r
    assert state(cp) == before


def test_cli_db_export(st, tmp_path):
    cp = st.cp()
    post_ok(cp, body=DOC_YAML, ctype="application/yaml")
    out = tmp_path / "export.yml"
    r = cp_cli(cp, "config", "db_export", str(out))
    assert r.returncode == 0, r
    assert out.read_text() == cp.get("/config").json["config"]

    # never overwrites (Kong: "<file> already exists. Will not overwrite it.")
    out.write_text("keep me\n")
    r = cp_cli(cp, "config", "db_export", str(out))
    assert r.returncode == 1, r
    assert f"{out} already exists. Will not overwrite it." in r.stderr, r
    assert out.read_text() == "keep me\n"

    r = cp_cli(cp, "config", "db_export", "-")
    assert r.returncode == 0 and r.stdout == cp.get("/config").json["config"], r

    parsed = tmp_path / "again.yml"
    parsed.write_text(cp.get("/config").json["config"])
    r = cli("config", "parse", str(parsed))
    assert r.returncode == 0, r


# ----------------------------------------------------------------------------- round trip


def test_round_trip_every_stream_entity(st, pki, echo, tmp_path):
    """The issue's round trip: one file with every stream entity -> POST /config -> traffic
    through a DP -> GET /config -> db_import into a fresh CP -> the same hash."""
    ca_cert = pki.ca()[0]
    srv_cert, srv_key = pki.leaf("rt-server", "rt.example.test")
    cl_cert, cl_key = pki.leaf("rt-client", "strait-rt-client")
    up_cert, up_key = pki.leaf("rt-up", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    up = st.tls_echo(up_cert, up_key, client_ca=ca_cert, name="rt-mtls-upstream")

    cp = st.cp()
    dp = st.dp(cp, listeners=4, listen_flags=[None, None, "ssl", None], start=False)
    p_plain, p_src, p_ssl, p_mtls = dp.listen_ports
    ca_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())

    def block(pem, indent):
        return "|\n" + "".join(" " * indent + ln + "\n" for ln in pem.strip().splitlines())

    doc = f"""\
_format_version: "3.0"
_transform: true
ca_certificates:
- id: {ca_id}
  cert: {block(read_text(ca_cert), 4)}  tags: [rt]
certificates:
- cert: {block(read_text(srv_cert), 4)}  key: {block(read_text(srv_key), 4)}  snis:
  - name: rt.example.test
- id: {client_id}
  cert: {block(read_text(cl_cert), 4)}  key: {block(read_text(cl_key), 4)}services:
- name: rt-tcp
  protocol: tcp
  host: 127.0.0.1
  port: {echo.port}
  tags: [rt, plain]
  routes:
  - name: rt-plain
    protocols: [tcp]
    destinations:
    - port: {p_plain}
  - name: rt-src
    protocols: [tcp]
    sources:
    - ip: 127.0.0.0/8
    destinations:
    - ip: 127.0.0.1
      port: {p_src}
- name: rt-terminate
  url: tcp://127.0.0.1:{echo.port}
  routes:
  - name: rt-tls
    protocols: [tls]
    snis: [rt.example.test]
- name: rt-mtls
  protocol: tls
  host: localhost
  port: {up.port}
  tls_verify: true
  ca_certificates: [{ca_id}]
  client_certificate: {client_id}
routes:
- name: rt-mtls-route
  protocols: [tcp]
  destinations:
  - port: {p_mtls}
  service: rt-mtls
"""
    r = post_ok(cp, body=doc, ctype="application/yaml")
    assert set(r.json) == set(COLLECTIONS), r.json
    assert len(r.json["routes"]) == 4 and len(r.json["services"]) == 3, r.json
    assert len(r.json["certificates"]) == 2 and len(r.json["snis"]) == 1, r.json
    assert list(r.json["ca_certificates"]) == [ca_id], r.json
    svcs = by_name(cp, "services")
    assert svcs["rt-mtls"]["client_certificate"] == {"id": client_id}
    assert svcs["rt-mtls"]["ca_certificates"] == [ca_id]

    # traffic through a DP, every route
    dp.start()
    dp.wait_synced()
    assert echo_once(p_plain, b"plain\n") == b"plain\n"
    assert echo_once(p_src, b"by source\n") == b"by source\n"
    t = tls_echo(p_ssl, "rt.example.test", payload=b"terminated\n")
    assert t["echo"] == b"terminated\n" and t["cert"] == pem_to_der(srv_cert)
    assert echo_once(p_mtls, b"mutual\n") == b"mutual\n"
    rec = [c for c in up.handshakes() if bytes(c["data"]) == b"mutual\n"]
    assert rec and rec[0]["client_cert"] == pem_to_der(cl_cert), up.conns

    # export, import into a fresh CP (fresh prefix and SQLite file): the same hash
    h = cp.status_hash()
    exported = cp.get("/config").json["config"]
    path = tmp_path / "exported.yml"
    path.write_text(exported)
    fresh = st.cp(start=False)
    assert not os.path.exists(os.path.join(fresh.prefix, "strait.db"))
    r = cp_cli(fresh, "config", "db_import", str(path))
    assert r.returncode == 0, r
    fresh.start()
    assert fresh.status_hash() == h
    assert fresh.get("/config").json["config"] == exported
    assert state(fresh)["services"] == state(cp)["services"]
