# Guards issue 5, point 2 (introspection): GET /endpoints lists every path the admin API
# serves (each one probed: none listed that does not exist), in Kong's order and with
# Kong's parameter names; POST /schemas/{entity}/validate runs Kong's checks on a body and
# stores nothing; GET /schemas/{entity} describes in Kong's shape exactly the fields that
# validation accepts, with its required fields, defaults, ranges and choices (each checked
# against validate and against what the CP stores); GET /status counts the entities.

import re

import pytest

UNIT = {"services": "svc", "routes": "rt", "certificates": "c", "snis": "s.test",
        "ca_certificates": "ca", "name": "services", "db_entity_name": "services",
        "tags": "t", "upstreams": "u.test", "targets": "127.0.0.1:80", "plugins": "p"}
ENTITIES = ("services", "routes", "certificates", "snis", "ca_certificates", "upstreams",
            "targets", "plugins")


def kong_sorted(paths):
    # kong/api/routes/kong.lua: '/' sorts below every other byte
    return sorted(paths, key=lambda p: p.replace("/", "\0"))


def test_endpoints_lists_every_served_path(st):
    cp = st.cp()
    r = cp.get("/endpoints")
    assert r.status == 200, r
    paths = r.json["data"]
    assert paths == kong_sorted(paths) and len(paths) == len(set(paths)), paths
    for p in ("/", "/status", "/services", "/services/{services}/routes",
              "/certificates/{certificates}/snis", "/schemas/{db_entity_name}/validate",
              "/schemas/{name}", "/endpoints", "/config", "/tags", "/tags/{tags}"):
        assert p in paths, (p, paths)
    for p in paths:
        concrete = re.sub(r"\{(\w+)\}", lambda m: UNIT[m.group(1)], p)
        r = cp.api("OPTIONS", concrete)
        assert r.status == 204, (p, concrete, r)
        assert r.headers.get("Allow"), (p, r.headers)
    # and a path it does not list is not served
    assert cp.api("OPTIONS", "/nope").status == 404
    assert cp.api("OPTIONS", "/schemas/services/nope").status == 404
    assert cp.api("OPTIONS", "/tags/a/b").status == 404


def test_schema_validate(st):
    cp = st.cp()
    h0 = cp.status_hash()

    r = cp.api("POST", "/schemas/services/validate",
               json_body={"name": "ok", "url": "tcp://127.0.0.1:9000"})
    assert (r.status, r.json) == (200, {"message": "schema validation successful"}), r

    r = cp.api("POST", "/schemas/services/validate", json_body={"host": "h", "port": 70000})
    assert r.status == 400, r
    assert r.json["code"] == 2 and r.json["name"] == "schema violation", r.json
    assert r.json["message"] == "schema violation (port: value should be between 0 and 65535)"
    assert r.json["fields"] == {"port": "value should be between 0 and 65535"}, r.json

    # form bodies too, and Kong's entity-level rules for routes
    r = cp.api("POST", "/schemas/routes/validate", form=[("protocols", "tls_passthrough")])
    assert r.status == 400, r
    assert "must set snis when 'protocols' is 'tls_passthrough'" in r.json["message"], r.json

    # certificates: PEM checks and the snis shorthand
    r = cp.api("POST", "/schemas/certificates/validate",
               json_body={"cert": "nope", "key": "nope", "snis": ["a.test", "a.test"]})
    assert r.status == 400, r
    assert "invalid certificate" in r.json["message"] or "is duplicated" in r.json["message"], r

    r = cp.api("POST", "/schemas/nope/validate", json_body={})
    assert (r.status, r.json) == (404, {"message": "No entity named 'nope'"}), r
    assert cp.api("GET", "/schemas/services/validate").status == 405
    r = cp.api("POST", "/schemas/services/validate", body=b"x=1", ctype="text/plain")
    assert r.status == 415, r

    # validation stores nothing
    assert cp.get("/services").json["data"] == []
    assert cp.get("/routes").json["data"] == []
    assert cp.get("/certificates").json["data"] == []
    assert cp.status_hash() == h0


# ------------------------------------------------------------------ GET /schemas/{entity}


def read(path):
    with open(path) as f:
        return f.read()


@pytest.fixture
def bodies(pki):
    """A minimal valid body of each entity (the sni's certificate need not exist to
    validate; the CP's tests below create one)."""
    cert, key = pki.self_signed("schemas-leaf", "schemas.test")
    ca, _ = pki.ca("schemas-ca")
    return {
        "services": {"host": "example.test"},
        "routes": {"destinations": [{"port": 5555}]},
        "certificates": {"cert": read(cert), "key": read(key)},
        "snis": {"name": "schemas.test",
                 "certificate": {"id": "00000000-0000-4000-8000-000000000001"}},
        "ca_certificates": {"cert": read(ca)},
        "upstreams": {"name": "schemas-pool.test"},
        "targets": {"target": "127.0.0.1:80",
                    "upstream": {"id": "00000000-0000-4000-8000-000000000001"}},
        "plugins": {"name": "ip-restriction", "config": {"deny": ["192.0.2.1"]}},
    }


def schema_fields(cp, entity):
    r = cp.get("/schemas/" + entity)
    assert r.status == 200, r
    assert set(r.json) == {"fields", "entity_checks"}, r.json
    assert isinstance(r.json["entity_checks"], list)
    out = []
    for f in r.json["fields"]:
        assert isinstance(f, dict) and len(f) == 1, f
        (name, d), = f.items()
        assert isinstance(d.get("type"), str), (entity, name, d)
        out.append((name, d))
    return out


def validate(cp, entity, body):
    return cp.api("POST", f"/schemas/{entity}/validate", json_body=body)


def test_schema_shape(st):
    cp = st.cp()
    for entity in ENTITIES:
        fields = dict(schema_fields(cp, entity))
        assert fields["id"] == {"type": "string", "uuid": True, "auto": True}, entity
        assert fields["created_at"] == {"type": "integer", "timestamp": True, "auto": True}
        assert fields["tags"]["type"] == "set"
        for name, d in fields.items():
            if d["type"] == "foreign":
                assert "schema" not in d and d["reference"] in ENTITIES, (entity, name, d)
    svc = dict(schema_fields(cp, "services"))
    assert svc["port"] == {"type": "integer", "between": [0, 65535], "required": True,
                           "default": 80}
    assert svc["protocol"]["one_of"] == ["tcp", "tls"] and svc["protocol"]["default"] == "tcp"
    rt = dict(schema_fields(cp, "routes"))
    assert rt["service"] == {"type": "foreign", "reference": "services"}
    assert rt["protocols"]["default"] == ["tcp"]
    # HEAD, the 404 of Kong, and no writes
    assert cp.api("HEAD", "/schemas/routes").status == 200
    for name in ("nope", "consumers", "tags"):
        r = cp.get("/schemas/" + name)
        assert (r.status, r.json) == (404, {"message": f"No entity named '{name}'"}), r
    r = cp.api("POST", "/schemas/services", json_body={})
    assert (r.status, r.json) == (405, {"message": "Method not allowed"}), r


def test_schema_fields_are_what_validation_accepts(st, bodies):
    cp = st.cp()
    for entity in ENTITIES:
        base = bodies[entity]
        if entity == "services":
            base = dict(base, protocol="tls")  # the TLS fields may be set
        r = validate(cp, entity, base)
        assert r.status == 200, (entity, r)
        # a field the schema does not list is unknown (so the check below can fail)
        r = validate(cp, entity, dict(base, bogus=1))
        assert r.status == 400 and r.json["fields"].get("bogus") == "unknown field", r
        for name, d in schema_fields(cp, entity):
            r = validate(cp, entity, dict(base, **{name: None}))
            fields = (r.json or {}).get("fields") or {}
            assert fields.get(name) != "unknown field", (entity, name, r.json)
            if d.get("required") and "default" not in d:
                # required: refused when missing, and the missing field is named
                body = {k: v for k, v in base.items() if k != name}
                r = validate(cp, entity, body)
                assert r.status == 400, (entity, name, r)
                assert r.json["fields"].get(name) == "required field missing", (entity, r.json)
            if d["type"] == "integer" and "between" in d:
                lo, hi = d["between"]
                for bad in (lo - 1, hi + 1):
                    r = validate(cp, entity, dict(base, **{name: bad}))
                    assert r.status == 400, (entity, name, bad, r)
                    assert r.json["fields"][name] == f"value should be between {lo} and {hi}"
                r = validate(cp, entity, dict(base, **{name: hi}))
                assert r.status == 200, (entity, name, hi, r)
            if "one_of" in d and (entity, name) != ("upstreams", "hash_fallback"):
                # (hash_fallback's values depend on hash_on: test_upstreams_api.py)
                r = validate(cp, entity, dict(base, **{name: "nope"}))
                assert r.status == 400 and name in r.json["fields"], (entity, name, r)
                for v in d["one_of"]:
                    r = validate(cp, entity, dict(base, **{name: v}))
                    assert name not in ((r.json or {}).get("fields") or {}), (entity, v, r)
            el = d.get("elements") or {}
            if "one_of" in el:
                for v in el["one_of"]:
                    r = validate(cp, entity, dict(base, **{name: [v]}))
                    assert name not in ((r.json or {}).get("fields") or {}), (entity, v, r)
                r = validate(cp, entity, dict(base, **{name: ["nope"]}))
                assert r.status == 400 and name in r.json["fields"], (entity, name, r)
        # the fields not marked required may be left out
        required = {n for n, d in schema_fields(cp, entity) if d.get("required")}
        for name in base:
            if name not in required:
                body = {k: v for k, v in base.items() if k != name}
                r = validate(cp, entity, body)
                assert name not in ((r.json or {}).get("fields") or {}), (entity, name, r)


def test_schema_matches_stored_entities(st, bodies):
    """What the CP stores has exactly the schema's fields, and each default shown is the
    value a field left out gets."""
    cp = st.cp()
    made = {}
    made["services"] = cp.ok("POST", "/services", json_body=bodies["services"])
    made["routes"] = cp.ok("POST", "/routes", json_body=bodies["routes"])
    made["certificates"] = cp.ok("POST", "/certificates", json_body=bodies["certificates"])
    made["snis"] = cp.ok("POST", "/snis", json_body=dict(
        bodies["snis"], certificate={"id": made["certificates"]["id"]}))
    made["ca_certificates"] = cp.ok("POST", "/ca_certificates",
                                    json_body=bodies["ca_certificates"])
    made["upstreams"] = cp.ok("POST", "/upstreams", json_body=bodies["upstreams"])
    made["targets"] = cp.ok("POST", f"/upstreams/{made['upstreams']['id']}/targets",
                            json_body={"target": bodies["targets"]["target"]})
    for entity, obj in made.items():
        fields = schema_fields(cp, entity)
        names = [n for n, _ in fields]
        keys = [k for k in obj if not (entity == "certificates" and k == "snis")]
        assert sorted(keys) == sorted(names), (entity, keys, names)
        for name, d in fields:
            if "default" in d and name not in bodies[entity]:
                assert obj[name] == d["default"], (entity, name, obj[name], d)
            if d.get("auto"):
                assert obj[name] is not None, (entity, name)


# ------------------------------------------------------------------ GET /status counts


def test_status_counts_entities(st, bodies):
    cp = st.cp()

    def counts():
        r = cp.get("/status")
        assert r.status == 200, r
        assert r.json["database"] == {"reachable": True}
        return r.json["entities"]

    assert counts() == {e: 0 for e in ENTITIES}
    svc = cp.ok("POST", "/services", json_body=bodies["services"])
    rt = cp.ok("POST", f"/services/{svc['id']}/routes", json_body=bodies["routes"])
    cp.ok("POST", "/routes", json_body=bodies["routes"])
    cert = cp.ok("POST", "/certificates",
                 json_body=dict(bodies["certificates"], snis=["a.test", "b.test"]))
    cp.ok("POST", "/ca_certificates", json_body=bodies["ca_certificates"])
    up = cp.ok("POST", "/upstreams", json_body=bodies["upstreams"])
    cp.ok("POST", f"/upstreams/{up['id']}/targets", json_body={"target": "127.0.0.1"})
    cp.ok("POST", f"/routes/{rt['id']}/plugins", json_body=bodies["plugins"])
    assert counts() == {"services": 1, "routes": 2, "certificates": 1, "snis": 2,
                        "ca_certificates": 1, "upstreams": 1, "targets": 1, "plugins": 1}
    # a refused write counts nothing
    r = cp.api("POST", "/services", json_body={"host": "x", "port": 70000})
    assert r.status == 400
    cp.ok("DELETE", f"/routes/{rt['id']}", expect=204)
    cp.ok("DELETE", f"/certificates/{cert['id']}", expect=204)
    assert counts() == {"services": 1, "routes": 1, "certificates": 0, "snis": 0,
                        "ca_certificates": 1, "upstreams": 1, "targets": 1, "plugins": 0}
