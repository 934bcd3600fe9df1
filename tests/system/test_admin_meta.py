# Guards issue 5, point 2 (introspection), the part built so far: GET /endpoints lists
# every path the admin API serves (each one probed: none listed that does not exist), and
# POST /schemas/{entity}/validate runs Kong's checks on a body and stores nothing.

import re

UNIT = {"services": "svc", "routes": "rt", "certificates": "c", "snis": "s.test",
        "ca_certificates": "ca", "name": "services"}


def test_endpoints_lists_every_served_path(st):
    cp = st.cp()
    r = cp.get("/endpoints")
    assert r.status == 200, r
    paths = r.json["data"]
    assert paths == sorted(paths) and len(paths) == len(set(paths)), paths
    for p in ("/", "/status", "/services", "/services/{services}/routes",
              "/certificates/{certificates}/snis", "/schemas/{name}/validate", "/endpoints"):
        assert p in paths, (p, paths)
    for p in paths:
        concrete = re.sub(r"\{(\w+)\}", lambda m: UNIT[m.group(1)], p)
        r = cp.api("OPTIONS", concrete)
        assert r.status == 204, (p, concrete, r)
        assert r.headers.get("Allow"), (p, r.headers)
    # and a path it does not list is not served
    assert cp.api("OPTIONS", "/nope").status == 404
    assert cp.api("OPTIONS", "/schemas/services").status == 404


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
