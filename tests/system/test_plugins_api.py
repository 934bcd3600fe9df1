# Guards issue 18, point 1: Kong's `plugins` entity on the control plane, as Kong 3.10
# defines it (kong/db/schema/entities/plugins.lua, kong/db/dao/plugins.lua, the
# ip-restriction schema; cases after spec/02-integration/03-db/03-plugins_spec.lua and
# spec/03-plugins/17-ip-restriction/01-schema_spec.lua): defaults (the plugin's own
# protocols, enabled, the config record filled), Kong's messages (a plugin not enabled,
# ip_or_cidr, at_least_one_of, protocols against the route and the service's routes), a
# consumer refused, 409 on the same name and scope with Kong's body, /plugins,
# /plugins/{id|instance_name}, /services/{s}/plugins, /routes/{r}/plugins, cascade on
# delete, /plugins/enabled, /schemas/plugins/{name}, the `plugins` key (bundled, names,
# off, refused at start), and declarative plugins (top level and nested) with the same hash
# after a round trip. Every refused write leaves the store as it was. Runs on SQLite and,
# in system_postgres, on Postgres.

import pytest

from conftest import CP_BIN, DP_BIN, wait_for, write_conf
from test_conf import run, valid_conf

NOT_ENABLED = "plugin '{}' not enabled; add it to the 'plugins' configuration property"
IPR_PROTOCOLS = ["http", "https", "tcp", "tls", "grpc", "grpcs"]


@pytest.fixture
def cp(st):
    return st.cp()


def store_of(cp):
    return sorted(cp.get("/plugins?size=1000").json["data"], key=lambda e: e["id"]), \
        cp.status_hash()


def refused(cp, method, path, body, status=400):
    """A write that must be refused with Kong's body, changing nothing."""
    before = store_of(cp)
    r = cp.api(method, path, json_body=body)
    assert r.status == status, r
    assert store_of(cp) == before
    return r.json


def svc_route(cp, name="s", protocols=("tcp",), port=9):
    svc = cp.service(name, port)
    fields = {"destinations": [{"port": 1000 + port}]} if "tcp" in protocols else \
        {"snis": [name + ".test"]}
    rt = cp.route(svc, name=name + "-r", protocols=list(protocols), **fields)
    return svc, rt


def test_defaults_and_shape(cp):
    p = cp.ok("POST", "/plugins", json_body={"name": "ip-restriction",
                                             "config": {"allow": ["10.0.0.0/8"]}})
    assert p["name"] == "ip-restriction"
    assert p["protocols"] == IPR_PROTOCOLS
    assert p["enabled"] is True
    assert p["config"] == {"allow": ["10.0.0.0/8"], "deny": None, "status": None,
                           "message": None}
    for k in ("route", "service", "consumer", "instance_name", "tags"):
        assert p[k] is None, k
    assert list(p) == ["id", "name", "instance_name", "created_at", "updated_at", "route",
                       "service", "consumer", "config", "protocols", "enabled", "tags"]
    assert cp.get(f"/plugins/{p['id']}").json == p


def test_validation_messages(cp):
    j = refused(cp, "POST", "/plugins", {"name": "tcp-log", "config": {}})
    assert j["message"] == f"schema violation (name: {NOT_ENABLED.format('tcp-log')})"
    assert j["fields"] == {"name": NOT_ENABLED.format("tcp-log")}
    assert j["code"] == 2
    j = refused(cp, "POST", "/plugins", {"name": "ip-restriction"})
    assert j["message"] == ("schema violation (at least one of these fields must be "
                            "non-empty: 'config.allow', 'config.deny')")
    j = refused(cp, "POST", "/plugins", {"name": "ip-restriction",
                                         "config": {"allow": ["1.2.3.4", "nope", "10.0.0.0/8"]}})
    assert j["message"] == ("schema violation (config.allow.2: invalid ip or cidr range: "
                            "'nope')")
    j = refused(cp, "POST", "/plugins", {"name": "ip-restriction",
                                         "config": {"deny": ["1.2.3.4"], "foo": 1}})
    assert j["fields"] == {"config": {"foo": "unknown field"}}
    j = refused(cp, "POST", "/plugins", {"name": "ip-restriction",
                                         "config": {"deny": ["1.2.3.4"], "status": "x"}})
    assert j["fields"] == {"config": {"status": "expected a number"}}
    j = refused(cp, "POST", "/plugins", {"name": "ip-restriction", "protocols": ["ftp"],
                                         "config": {"deny": ["1.2.3.4"]}})
    assert j["fields"] == {"protocols": ["expected one of: grpc, grpcs, http, https, tcp, tls, "
                                         "tls_passthrough, udp"]}
    j = refused(cp, "POST", "/plugins", {"name": "ip-restriction",
                                         "consumer": {"id": "9e0e0c4f-6f43-4e8c-9d39-"
                                                            "111111111111"},
                                         "config": {"deny": ["1.2.3.4"]}})
    assert "consumer" in j["fields"] and "no consumers" in j["fields"]["consumer"]
    j = refused(cp, "POST", "/plugins", {"config": {"deny": ["1.2.3.4"]}})
    assert j["fields"] == {"name": "required field missing"}


def test_protocols_must_match_scope(cp):
    svc, rt = svc_route(cp, "s", ("tcp",))
    j = refused(cp, "POST", "/plugins", {"name": "ip-restriction", "protocols": ["tls"],
                                         "route": {"id": rt["id"]},
                                         "config": {"deny": ["1.2.3.4"]}})
    assert j["message"] == ("schema violation (protocols: must match the associated "
                            "route's protocols)")
    j = refused(cp, "POST", "/plugins", {"name": "ip-restriction", "protocols": ["tls"],
                                         "service": {"id": svc["id"]},
                                         "config": {"deny": ["1.2.3.4"]}})
    assert j["message"] == ("schema violation (protocols: must match the protocols of at "
                            "least one route pointing to this Plugin's service)")
    # a service with no route accepts any protocols
    lone = cp.service("lone", 10)
    cp.ok("POST", "/plugins", json_body={"name": "ip-restriction", "protocols": ["tls"],
                                         "service": {"id": lone["id"]},
                                         "config": {"deny": ["1.2.3.4"]}})
    # the default (tcp among them) matches the tcp route
    p = cp.ok("POST", f"/routes/{rt['id']}/plugins",
              json_body={"name": "ip-restriction", "config": {"deny": ["1.2.3.4"]}})
    assert p["route"] == {"id": rt["id"]} and p["service"] is None
    # and a PATCH is checked too
    j = refused(cp, "PATCH", f"/plugins/{p['id']}", {"protocols": ["tls"]})
    assert j["fields"] == {"protocols": "must match the associated route's protocols"}


def test_unique_scope_409(cp):
    svc, rt = svc_route(cp)
    cp.ok("POST", "/plugins", json_body={"name": "ip-restriction",
                                         "config": {"deny": ["1.2.3.4"]}})
    j = refused(cp, "POST", "/plugins", {"name": "ip-restriction",
                                         "config": {"deny": ["5.6.7.8"]}}, 409)
    assert j == {"code": 5, "name": "unique constraint violation",
                 "message": "UNIQUE violation detected on '{consumer=null,"
                            "name=\"ip-restriction\",route=null,service=null}'",
                 "fields": {"consumer": None, "name": "ip-restriction", "route": None,
                            "service": None}}
    cp.ok("POST", f"/services/{svc['id']}/plugins",
          json_body={"name": "ip-restriction", "config": {"deny": ["1.2.3.4"]}})
    j = refused(cp, "POST", f"/services/{svc['name']}/plugins",
                {"name": "ip-restriction", "config": {"deny": ["1.2.3.4"]}}, 409)
    assert j["message"] == ("UNIQUE violation detected on '{consumer=null,"
                            f"name=\"ip-restriction\",route=null,service={{id=\"{svc['id']}\"}}}}'")
    # route + service is another scope
    cp.ok("POST", "/plugins", json_body={"name": "ip-restriction",
                                         "route": {"id": rt["id"]},
                                         "service": {"id": svc["id"]},
                                         "config": {"deny": ["1.2.3.4"]}})


def test_endpoints_nesting_and_cascade(cp):
    svc, rt = svc_route(cp)
    g = cp.ok("POST", "/plugins", json_body={"name": "ip-restriction", "instance_name": "g",
                                             "config": {"deny": ["1.2.3.4"]}})
    s = cp.ok("POST", f"/services/{svc['name']}/plugins",
              json_body={"name": "ip-restriction", "instance_name": "on-s",
                         "config": {"deny": ["1.2.3.4"]}})
    r = cp.ok("POST", f"/routes/{rt['name']}/plugins",
              json_body={"name": "ip-restriction", "instance_name": "on-r",
                         "config": {"allow": ["::1"]}})
    assert s["service"] == {"id": svc["id"]} and r["route"] == {"id": rt["id"]}
    assert cp.get("/plugins/g").json["id"] == g["id"]
    assert [p["id"] for p in cp.get(f"/services/{svc['id']}/plugins").json["data"]] == [s["id"]]
    assert [p["id"] for p in cp.get(f"/routes/{rt['id']}/plugins").json["data"]] == [r["id"]]
    assert cp.get(f"/routes/{rt['id']}/plugins/on-r").json["id"] == r["id"]
    assert cp.get(f"/routes/{rt['id']}/plugins/on-s").status == 404
    assert len(cp.get("/plugins").json["data"]) == 3
    j = refused(cp, "POST", "/plugins", {"name": "ip-restriction", "instance_name": "g",
                                         "route": {"id": rt["id"]},
                                         "config": {"deny": ["1.2.3.4"]}}, 409)
    assert j["message"] == "UNIQUE violation detected on '{instance_name=\"g\"}'"
    # PATCH by instance_name, PUT by instance_name
    cp.ok("PATCH", "/plugins/g", json_body={"enabled": False})
    assert cp.get(f"/plugins/{g['id']}").json["enabled"] is False
    # deleting the route takes its plugins; the service's stays until the service goes
    cp.ok("DELETE", f"/routes/{rt['id']}", expect=204)
    assert cp.get(f"/plugins/{r['id']}").status == 404
    cp.ok("DELETE", f"/services/{svc['id']}", expect=204)
    assert cp.get(f"/plugins/{s['id']}").status == 404
    assert [p["id"] for p in cp.get("/plugins").json["data"]] == [g["id"]]
    cp.ok("DELETE", "/plugins/g", expect=204)
    assert cp.get("/plugins").json["data"] == []


def test_enabled_schema_and_root(cp):
    assert cp.get("/plugins/enabled").json == {"enabled_plugins": ["ip-restriction"]}
    s = cp.get("/schemas/plugins/ip-restriction").json
    fields = {list(f)[0]: list(f.values())[0] for f in s["fields"]}
    assert fields["protocols"]["default"] == IPR_PROTOCOLS
    cfg = {list(f)[0]: list(f.values())[0] for f in fields["config"]["fields"]}
    assert list(cfg) == ["allow", "deny", "status", "message"]
    assert s["entity_checks"] == [{"at_least_one_of": ["config.allow", "config.deny"]}]
    r = cp.get("/schemas/plugins/tcp-log")
    assert (r.status, r.json) == (404, {"message": "No plugin named 'tcp-log'"})
    root = cp.get("/").json
    assert root["plugins"]["available_on_server"]["ip-restriction"]["priority"] == 990
    assert root["plugins"]["enabled_in_cluster"] == []
    cp.ok("POST", "/plugins", json_body={"name": "ip-restriction",
                                         "config": {"deny": ["192.0.2.1"]}})
    assert cp.get("/").json["plugins"]["enabled_in_cluster"] == ["ip-restriction"]
    # the generic validate endpoint runs the plugin's own schema
    r = cp.api("POST", "/schemas/plugins/validate", json_body={"name": "ip-restriction"})
    assert r.status == 400 and "at least one of" in r.json["message"]
    r = cp.api("POST", "/schemas/plugins/validate",
               json_body={"name": "ip-restriction", "config": {"deny": ["1.2.3.4"]}})
    assert r.status == 200, r


def test_plugins_key(st):
    off = st.cp(conf={"plugins": "off"})
    assert off.get("/plugins/enabled").json == {"enabled_plugins": []}
    r = off.api("POST", "/plugins", json_body={"name": "ip-restriction",
                                               "config": {"deny": ["1.2.3.4"]}})
    assert r.status == 400
    assert r.json["fields"] == {"name": NOT_ENABLED.format("ip-restriction")}
    named = st.cp(conf={"plugins": "ip-restriction"})
    assert named.get("/plugins/enabled").json == {"enabled_plugins": ["ip-restriction"]}


@pytest.mark.parametrize("value,why", [("bundled,nope", "'nope' is not a plugin Strait has"),
                                       ("off,ip-restriction", "'off' cannot be listed")])
def test_plugins_key_refused_at_start(value, why, tmp_path, ports, cluster_certs):
    for kind, binary in (("cp", CP_BIN), ("dp", DP_BIN)):
        conf = tmp_path / f"{kind}.conf"
        c = valid_conf(kind, ports, cluster_certs)
        c["plugins"] = value
        write_conf(str(conf), c)
        r = run([binary, "start", "-c", str(conf), "-p", str(tmp_path / kind)])
        assert r.returncode == 2, (kind, r.returncode, r.stderr)
        assert "plugins" in r.stderr and why in r.stderr, r.stderr


def test_declarative_round_trip(cp):
    doc = {
        "_format_version": "3.0",
        "services": [{
            "name": "s", "host": "127.0.0.1", "port": 9, "protocol": "tcp",
            "routes": [{"name": "r", "protocols": ["tcp"],
                        "destinations": [{"port": 1009}],
                        "plugins": [{"name": "ip-restriction",
                                     "config": {"allow": ["127.0.0.1"]}}]}],
            "plugins": [{"name": "ip-restriction", "protocols": ["tcp"],
                         "config": {"deny": ["10.0.0.0/8"], "status": 401}}],
        }],
        "plugins": [{"name": "ip-restriction", "instance_name": "global",
                     "config": {"deny": ["192.0.2.1"], "message": "go away"}}],
    }
    h0 = cp.status_hash()
    r = cp.api("POST", "/config", json_body=doc)
    assert r.status == 201, r
    wait_for(lambda: cp.status_hash() != h0, 10, "the CP to publish")
    plugins = cp.get("/plugins").json["data"]
    assert len(plugins) == 3
    by = {(p["route"] is not None, p["service"] is not None): p for p in plugins}
    assert by[(True, False)]["config"]["allow"] == ["127.0.0.1"]
    assert by[(False, True)]["config"]["status"] == 401
    assert by[(False, False)]["instance_name"] == "global"
    h = cp.status_hash()
    text = cp.get("/config").json["config"]
    assert "plugins:" in text
    # the export loaded again: same ids, same hash, same text
    r = cp.api("POST", "/config", json_body={"config": text})
    assert r.status == 201, r
    assert cp.status_hash() == h
    assert cp.get("/config").json["config"] == text
    assert sorted(p["id"] for p in cp.get("/plugins").json["data"]) == \
        sorted(p["id"] for p in plugins)
    # a bad nested plugin is refused with the flattened path, the store unchanged
    bad = dict(doc, plugins=[{"name": "tcp-log"}])
    before = store_of(cp)
    r = cp.api("POST", "/config", json_body=bad)
    assert r.status == 400, r
    assert NOT_ENABLED.format("tcp-log") in r.raw.decode()
    assert store_of(cp) == before


def test_form_bodies(cp):
    # Kong's documented form: config.allow=... repeated (a single one is an array too),
    # config.status=401 a number, as the plugin's own schema types them
    p = cp.ok("POST", "/plugins", form=[("name", "ip-restriction"),
                                         ("config.allow", "10.0.0.0/8"),
                                         ("config.allow", "192.168.1.7"),
                                         ("config.status", "401")])
    assert p["config"]["allow"] == ["10.0.0.0/8", "192.168.1.7"]
    assert p["config"]["status"] == 401
    p = cp.ok("PATCH", f"/plugins/{p['id']}", form=[("config.deny", "10.1.0.0/16")])
    assert p["config"]["deny"] == ["10.1.0.0/16"]
    assert p["config"]["allow"] == ["10.0.0.0/8", "192.168.1.7"]
