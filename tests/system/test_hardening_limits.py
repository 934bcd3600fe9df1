# Guards issue 14, defects 2 and 5: limits that keep the control plane's answers and its
# snapshot bounded.
#
# Defect 5, one accepted write could freeze every DP: a POST /services with a 16 MiB tag
# got 201, and then no snapshot could be sent until the entity was deleted. Now names and
# tags are at most 256 bytes, an entity has at most 64 tags, an entity as stored is at most
# 1 MiB (400, Kong's schema-violation body), and a write after which the snapshot would be
# beyond cluster_max_payload is refused with both sizes named (400 for POST/PUT/PATCH,
# 413 for POST /config, exit 1 for `config db_import`), while the DPs keep taking every
# accepted write.
#
# Defect 2, small requests that grew into gigabytes: a declarative entity named
# "99999999999" with a dangling reference, YAML aliases, thousands of errors: each now
# answers a small body at once.

import json
import re
import subprocess

import pytest

from conftest import CP_BIN, _child_env, scaled, wait_for, write_conf

MIB = 1 << 20


def create(cp, path, body):
    return cp.api("POST", path, json_body=body)


def schema_error(r):
    """A 400 in Kong's schema-violation shape; returns its fields."""
    assert r.status == 400, r
    assert r.json["code"] == 2 and r.json["name"] == "schema violation", r
    return r.json["fields"]


# ----------------------------------------------------------------------------- names, tags


def test_names_and_tags(st):
    cp = st.cp()
    svc = {"host": "127.0.0.1", "port": 9000}

    # the write: a tag of 1 MiB (16 MiB needs a body over the admin API's limit)
    h0 = cp.status_hash()
    r = create(cp, "/services", dict(svc, name="big-tag", tags=["x" * MIB]))
    assert schema_error(r)["tags"] == ["length must be at most 256"], r
    assert cp.get("/services/big-tag").status == 404
    assert cp.status_hash() == h0

    # 256 bytes pass, 257 do not
    cp.ok("POST", "/services", json_body=dict(svc, name="n" * 256, tags=["t" * 256]))
    assert schema_error(create(cp, "/services", dict(svc, name="m" * 257))) == {
        "name": "length must be at most 256"}
    assert schema_error(create(cp, "/services", dict(svc, name="ok", tags=["a", "t" * 257]))) == {
        "tags": [None, "length must be at most 256"]}
    r = create(cp, "/routes", {"name": "r" * 257, "destinations": [{"port": 1}]})
    assert schema_error(r) == {"name": "length must be at most 256"}

    # 64 tags pass, 65 do not; PATCH and PUT too
    tags = [f"t{i}" for i in range(64)]
    s = cp.ok("POST", "/services", json_body=dict(svc, name="tagged", tags=tags))
    r = cp.api("PATCH", f"/services/{s['id']}", json_body={"tags": tags + ["one-more"]})
    assert schema_error(r) == {"tags": "length must be at most 64"}
    r = cp.api("PUT", "/services/tagged", json_body=dict(svc, tags=tags + ["one-more"]))
    assert schema_error(r) == {"tags": "length must be at most 64"}
    assert cp.get("/services/tagged").json["tags"] == tags

    # form bodies and declarative config meet the same rules
    r = cp.api("POST", "/services", form={"name": "formed", "host": "h.org", "tags[1]": "x" * 300})
    assert schema_error(r) == {"tags": ["length must be at most 256"]}
    doc = {"_format_version": "3.0", "services": [dict(svc, name="decl", tags=tags + ["x"])]}
    r = cp.api("POST", "/config", json_body=doc)
    assert r.status == 400 and r.json["code"] == 14, r
    assert r.json["fields"] == {"services": [{"tags": "length must be at most 64"}]}


def route_of(n, name, service_id=None):
    """A route with n destinations: about 32 bytes each as stored, 17 in the snapshot."""
    body = {"name": name, "protocols": ["tcp"],
            "destinations": [{"ip": "10.0.0.1", "port": 1 + i % 60000} for i in range(n)]}
    if service_id is not None:
        body["service"] = {"id": service_id}
    return body


def test_entity_size(st):
    cp = st.cp()
    r = create(cp, "/routes", route_of(40000, "too-big"))
    fields = schema_error(r)
    assert list(fields) == ["@entity"], r
    assert re.fullmatch(r"entity too large: \d+ bytes stored, at most 1048576",
                        fields["@entity"][0]), r
    assert cp.get("/routes/too-big").status == 404
    cp.ok("POST", "/routes", json_body=route_of(30000, "fits"))


# ----------------------------------------------------------------------------- the snapshot


def test_write_beyond_max_payload(st, echo):
    """CP and DP at Kong's minimum cluster_max_payload (4 MiB): routes of ~0.5 MB of
    snapshot each go in until the next one would not fit; that one is refused with both
    sizes, the DP has every accepted write, and writes that fit still go through."""
    cp = st.cp(conf={"cluster_max_payload": 4 * MIB})
    dp = st.dp(cp, conf={"cluster_max_payload": 4 * MIB}, start=False)
    svc = cp.service("echo", echo.port)
    small = cp.route(svc, name="small", destinations=[{"port": dp.port}])
    dp.start()
    dp.wait_synced()

    refused = None
    for i in range(20):
        r = create(cp, "/routes", route_of(30000, f"wide-{i}", svc["id"]))
        if r.status != 201:
            refused = r
            break
    assert refused is not None and i >= 4, (i, refused)
    msg = schema_error(refused)["@entity"][0]
    m = re.fullmatch(r"the configuration would be sent to data planes as (\d+) bytes \((\d+) "
                     r"now\), beyond cluster_max_payload \(4194304 bytes\): raise "
                     r"cluster_max_payload on the control plane and every data plane", msg)
    assert m, msg
    assert int(m.group(1)) > 4 * MIB >= int(m.group(2)), msg
    assert cp.get(f"/routes/wide-{i}").status == 404
    # every accepted write reached the DP
    dp.wait_synced(timeout=30)

    # PATCH and PUT that would grow past the limit are refused the same way
    r = cp.api("PATCH", f"/routes/{small['id']}", json_body=route_of(30000, "small"))
    assert "beyond cluster_max_payload" in str(schema_error(r)), r
    assert cp.get("/routes/small").json["destinations"] == [{"ip": None, "port": dp.port}]
    r = cp.api("PUT", f"/routes/wide-{i}", json_body=route_of(30000, f"wide-{i}", svc["id"]))
    assert "beyond cluster_max_payload" in str(schema_error(r)), r
    # a write that shrinks, then one that fits, go through and reach the DP
    cp.ok("PATCH", "/routes/wide-0", json_body={"destinations": [{"port": dp.port}]})
    cp.ok("POST", "/services", json_body={"name": "small", "host": "127.0.0.1", "port": 1})
    dp.wait_synced(timeout=30)
    assert not [ln for ln in cp.log_text().splitlines() if "not sent to data planes" in ln]


def test_config_and_db_import_beyond_max_payload(st, tmp_path):
    cp = st.cp(conf={"cluster_max_payload": 4 * MIB})
    doc = {"_format_version": "3.0",
           "routes": [route_of(30000, f"wide-{i}") for i in range(10)]}
    h0 = cp.status_hash()
    r = cp.api("POST", "/config", json_body=doc)
    assert r.status == 413, r
    assert re.fullmatch(r"the configuration would be sent to data planes as \d+ bytes, beyond "
                        r"cluster_max_payload \(4194304 bytes\): raise cluster_max_payload on "
                        r"the control plane and every data plane", r.json["message"]), r
    assert cp.status_hash() == h0
    assert cp.get("/routes").json["data"] == []

    # db_import upserts into what is stored: 5 routes fit, 5 more do not
    half = tmp_path / "half.json"
    half.write_text(json.dumps(dict(doc, routes=doc["routes"][:5])))
    full = tmp_path / "full.json"
    full.write_text(json.dumps(dict(doc, routes=[route_of(30000, f"more-{i}")
                                                  for i in range(5)])))
    write_conf(cp.conf_path, cp.conf)

    def db_import(path):
        return subprocess.run([CP_BIN, "config", "db_import", str(path), "-c", cp.conf_path,
                               "-p", cp.prefix], capture_output=True, text=True,
                              env=_child_env({}), timeout=scaled(120))

    r = db_import(half)
    assert r.returncode == 0, r
    wait_for(lambda: cp.status_hash() != h0, 20, "the CP to see the import")
    h1 = cp.status_hash()
    r = db_import(full)
    assert r.returncode == 1, r
    lines = r.stderr.splitlines()
    assert lines[0] == "strait: Failed importing:", r
    assert re.fullmatch(r"the configuration would be sent to data planes as \d+ bytes \(\d+ "
                        r"now\), beyond cluster_max_payload \(4194304 bytes\): raise "
                        r"cluster_max_payload on the control plane and every data plane",
                        lines[1]), r
    assert len(cp.get("/routes?size=100").json["data"]) == 5
    assert cp.status_hash() == h1


# ----------------------------------------------------------------------------- defect 2


@pytest.mark.parametrize("name", ["99999999999", "18446744073709551615", "3000000"])
def test_config_numeric_name(st, name):
    """Kong keys a reference error by the entity's name: a name of digits is not an
    array index (it made an array of 10^11 entries)."""
    cp = st.cp()
    doc = (f"_format_version: '3.0'\nroutes:\n- name: '{name}'\n  service: nope\n"
           "  destinations: [{port: 1}]\n")
    r = cp.api("POST", "/config?flatten_errors=1", body=doc, ctype="application/yaml")
    assert r.status == 400, r
    assert len(r.raw) < 4096, len(r.raw)
    assert [e["entity_name"] for e in r.json["flattened_errors"]] == [name]
    r = cp.api("POST", "/config", body=doc, ctype="application/yaml")
    assert r.json["fields"] == {"routes": {name: [
        "invalid reference 'service: nope' (no such entry in 'services')"]}}


def test_config_yaml_aliases(st):
    """Aliases count as copies of what they name: 64 KiB named 1000 times is refused."""
    cp = st.cp()
    doc = ("_format_version: '3.0'\nx: &big " + "a" * 65536 + "\nservices:\n- name: s\n"
           "  host: h.org\n  tags: [" + ", ".join(["*big"] * 1000) + "]\n")
    r = cp.api("POST", "/config", body=doc, ctype="application/yaml")
    assert r.status == 400, r
    assert re.search(r"failed parsing declarative configuration: \d+:\d+: document too large: "
                     r"it builds more than \d+ bytes", r.json["message"]), r
    assert len(r.raw) < 4096


def test_config_error_count(st):
    """At most 1000 errors, then how many there were."""
    cp = st.cp()
    doc = {"_format_version": "3.0",
           "services": [{"name": f"s{i}", "host": "h.org", "port": "x"} for i in range(5000)]}
    r = cp.api("POST", "/config?flatten_errors=1", json_body=doc)
    assert r.status == 400, r
    fields = r.json["fields"]
    assert fields["@truncated"] == "only the first 1000 of 5000 errors are shown", r
    assert fields["services"] == [{"port": "expected an integer"}] * 1000
    assert len(r.json["flattened_errors"]) == 1000
