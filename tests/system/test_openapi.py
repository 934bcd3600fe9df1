# Guards issue 5, point 5 (and issue 16, point 1: upstreams and targets): docs/openapi.yaml
# describes the admin API the control plane really serves. No endpoint undocumented, none
# documented that does not exist:
#   - the document is OpenAPI 3 shaped (every $ref resolves, every operation has
#     responses, path parameters match the templates, operationIds are unique);
#   - its path set equals GET /endpoints exactly (both directions), and Kong admin paths
#     Strait does not document are not served either;
#   - every documented path and method is probed on a running CP with real entities: the
#     answer is the documented success status (never 404 for an unknown path, never 405),
#     and its JSON body matches the documented schema;
#   - OPTIONS answers exactly the documented methods in `Allow`, and every method not
#     documented for a path answers 405;
#   - the documented security schemes (admin_token as a header or a bearer token) work.
# Needs python3-yaml (scripts/deps.sh installs it).

import json
import os
import re
import uuid

import pytest
import yaml

from conftest import REPO, http, read_text, wait_for

SPEC_PATH = os.path.join(REPO, "docs", "openapi.yaml")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROBED = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

CA_ID = "6f1c2b9e-8a8e-4c39-9b5a-2f4d1c0a7e11"  # the probe CA certificate's fixed id


@pytest.fixture(scope="module")
def spec():
    with open(SPEC_PATH) as f:
        return yaml.safe_load(f)


def operations(spec):
    """(path, method, operation) for every documented operation."""
    for path, item in spec["paths"].items():
        for m in HTTP_METHODS:
            if m in item:
                yield path, m, item[m]


def resolve(spec, node):
    """Follows $ref (local, '#/...') until a node that is not a reference."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local references: {ref}"
        node = spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
            node = node[part]
        seen += 1
        assert seen < 20, f"$ref loop at {ref}"
    return node


# ----------------------------------------------------------------------------- a small
# validator for the OpenAPI 3.0 schema subset docs/openapi.yaml uses


def schema_errors(spec, schema, value, where="$", response=True):
    """The ways value does not match schema (empty when it matches)."""
    s = resolve(spec, schema)
    errs = []
    if value is None:
        # `nullable` sits on the schema itself (also beside an `allOf` of a reference)
        if s.get("nullable") or not (set(s) & {"type", "allOf", "oneOf", "properties"}):
            return []
        return [f"{where}: null, not nullable"]
    for part in s.get("allOf", []):
        errs += schema_errors(spec, part, value, where, response)
    if "oneOf" in s:
        ok = [p for p in s["oneOf"] if not schema_errors(spec, p, value, where, response)]
        if len(ok) != 1:
            errs.append(f"{where}: matches {len(ok)} of the oneOf alternatives: {value!r:.200}")
    t = s.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if t in types and not isinstance(value, types[t]):
        return errs + [f"{where}: {type(value).__name__}, not {t}: {value!r:.100}"]
    if t == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return errs + [f"{where}: not an integer: {value!r:.100}"]
    if t == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return errs + [f"{where}: not a number: {value!r:.100}"]
    if "enum" in s and value not in s["enum"]:
        errs.append(f"{where}: {value!r} not in {s['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in s and value < s["minimum"]:
            errs.append(f"{where}: {value} < {s['minimum']}")
        if "maximum" in s and value > s["maximum"]:
            errs.append(f"{where}: {value} > {s['maximum']}")
    if isinstance(value, str):
        if "pattern" in s and not re.search(s["pattern"], value):
            errs.append(f"{where}: {value!r} does not match {s['pattern']}")
        if s.get("format") == "uuid" and not UUID_RE.match(value):
            errs.append(f"{where}: {value!r} is not a UUID")
    if isinstance(value, list) and "items" in s:
        for i, v in enumerate(value):
            errs += schema_errors(spec, s["items"], v, f"{where}[{i}]", response)
    if isinstance(value, dict):
        props = s.get("properties", {})
        for k in s.get("required", []):
            if k not in value:
                errs.append(f"{where}: missing required {k!r}")
        if "minProperties" in s and len(value) < s["minProperties"]:
            errs.append(f"{where}: fewer than {s['minProperties']} properties")
        if "maxProperties" in s and len(value) > s["maxProperties"]:
            errs.append(f"{where}: more than {s['maxProperties']} properties")
        extra = s.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                p = resolve(spec, props[k])
                if response and p.get("writeOnly"):
                    errs.append(f"{where}.{k}: writeOnly, but in a response")
                errs += schema_errors(spec, props[k], v, f"{where}.{k}", response)
            elif extra is False:
                errs.append(f"{where}: undocumented property {k!r}")
            elif isinstance(extra, dict):
                errs += schema_errors(spec, extra, v, f"{where}.{k}", response)
    return errs


def json_schema_of(spec, holder):
    """The application/json schema of a response or request body (None if there is none)."""
    holder = resolve(spec, holder)
    media = (holder.get("content") or {}).get("application/json")
    return media.get("schema") if media else None


# ----------------------------------------------------------------------------- the document


def test_document_is_openapi_shaped(spec):
    assert str(spec.get("openapi", "")).startswith("3."), spec.get("openapi")
    assert spec["info"]["title"] and spec["info"]["version"]
    assert isinstance(spec["paths"], dict) and spec["paths"]

    # every $ref anywhere resolves
    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(spec, node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)

    schemes = spec["components"]["securitySchemes"]
    for req in spec.get("security", []):
        for name in req:
            assert name in schemes, name

    op_ids = []
    for path, item in spec["paths"].items():
        assert path.startswith("/"), path
        template = set(re.findall(r"\{(\w+)\}", path))
        assert "options" in item, f"{path}: every path serves OPTIONS"
        assert ("get" in item) == ("head" in item), f"{path}: HEAD goes with GET"
        path_params = [resolve(spec, p) for p in item.get("parameters", [])]
        for m in HTTP_METHODS:
            if m not in item:
                continue
            op = item[m]
            responses = op.get("responses")
            assert responses, f"{m.upper()} {path}: no responses"
            for code, r in responses.items():
                assert re.fullmatch(r"[1-5]\d\d", str(code)), f"{m.upper()} {path}: {code}"
                assert resolve(spec, r).get("description"), f"{m.upper()} {path} {code}"
            if "operationId" in op:
                op_ids.append(op["operationId"])
            params = path_params + [resolve(spec, p) for p in op.get("parameters", [])]
            named = {p["name"] for p in params if p["in"] == "path"}
            assert named == template, f"{m.upper()} {path}: path parameters {named}"
            for p in params:
                if p["in"] == "path":
                    assert p.get("required") is True, f"{path}: {p['name']} must be required"
            if m in ("post", "put", "patch"):
                assert "requestBody" in op, f"{m.upper()} {path}: no requestBody"
    assert len(op_ids) == len(set(op_ids)), sorted(i for i in op_ids if op_ids.count(i) > 1)

    # the examples the document gives match their own schemas
    def examples(node):
        if isinstance(node, dict):
            if "schema" in node and "example" in node:
                yield node["schema"], node["example"]
            for v in node.values():
                yield from examples(v)

    for schema, example in examples(spec):
        assert not schema_errors(spec, schema, example), (example, schema_errors(
            spec, schema, example))

    # the entity schemas the brief asks for are there
    for name in ("Service", "Route", "Certificate", "Sni", "CaCertificate", "Upstream",
                 "Healthchecks", "Target", "Message", "KongError"):
        assert name in spec["components"]["schemas"], name


def test_paths_equal_get_endpoints(st, spec):
    cp = st.cp()
    r = cp.get("/endpoints")
    assert r.status == 200, r
    served = set(r.json["data"])
    documented = set(spec["paths"])
    assert not served - documented, f"served but not documented: {sorted(served - documented)}"
    assert not documented - served, f"documented but not served: {sorted(documented - served)}"


# Kong admin paths (kong/api/routes/*.lua and the generated entity endpoints) that Strait
# does not document: none of them may be served, so an endpoint added to the server without
# being added to docs/openapi.yaml (and GET /endpoints) makes this fail.
KONG_PATHS = [
    "/upstreams/u/targets/t/healthy", "/upstreams/u/targets/t/unhealthy",
    "/upstreams/u/targets/t/a/healthy", "/upstreams/u/targets/t/a/unhealthy",
    "/targets", "/targets/t", "/targets/t/upstream", "/plugins/schema/p",
    "/plugins/p/route", "/plugins/p/service", "/consumers/c/plugins",
    "/consumers", "/consumers/c", "/services/s/client_certificate",
    "/snis/s/certificate", "/certificates/c/services", "/ca_certificates/c/services",
    "/cache", "/cache/k", "/timers", "/status/ready", "/metrics", "/debug/node/log-level",
    "/clustering", "/clustering/nope", "/vaults", "/keys", "/key-sets", "/filter-chains",
    "/tags/a/b", "/config/x", "/endpoints/x", "/status/x", "/schemas", "/schemas/s/v/x",
    "/services/s/routes/r/service", "/routes/r/service/x",
]


def test_undocumented_kong_paths_are_not_served(st, spec):
    cp = st.cp()
    for path in KONG_PATHS:
        r = cp.api("OPTIONS", path)
        assert r.status == 404, f"OPTIONS {path} -> {r.status} {r.headers.get('Allow')}: " \
                                "served but not in docs/openapi.yaml"
        r = cp.get(path)
        assert (r.status, r.json) == (404, {"message": "Not found"}), (path, r)


# ----------------------------------------------------------------------------- probing


class Probe:
    """Real entities for every path parameter, (re)made before each request."""

    def __init__(self, cp, pki, echo_port):
        self.cp = cp
        self.echo_port = echo_port
        cert, key = pki.leaf("oa-leaf", "probe.test")
        self.cert, self.key = read_text(cert), read_text(key)
        self.ca = read_text(pki.ca("oa-ca")[0])
        self.ca2 = read_text(pki.ca("oa-ca2")[0])
        self.n = 0
        self.ids = {}

    def uniq(self, stem):
        self.n += 1
        return f"{stem}{self.n}"

    def put(self, path, body):
        r = self.cp.api("PUT", path, json_body=body)
        assert r.status == 200, (path, r)
        return r.json

    def ensure(self):
        """Makes the probe entities exist as the path parameters name them."""
        svc = self.put("/services/svc", {"protocol": "tcp", "host": "127.0.0.1",
                                         "port": self.echo_port, "tags": ["probe"]})
        self.put("/routes/rt", {"protocols": ["tcp"], "destinations": [{"port": 5555}],
                                "service": {"id": svc["id"]}, "tags": ["probe"]})
        cert = self.put("/certificates/probe.test",
                        {"cert": self.cert, "key": self.key, "tags": ["probe"]})
        self.put("/snis/sni.probe.test", {"certificate": {"id": cert["id"]}})
        self.put(f"/ca_certificates/{CA_ID}", {"cert": self.ca, "tags": ["probe"]})
        self.put("/upstreams/up.probe.test", {"healthchecks": {"active": {"type": "tcp"}},
                                              "tags": ["probe"]})
        self.put("/upstreams/up.probe.test/targets/127.0.0.1:8001",
                 {"weight": 10, "tags": ["probe"]})
        rt = self.cp.get("/routes/rt").json
        # issue 18: one plugin scoped to both the probe route and service, so that it is
        # found under /plugins, /services/svc/plugins and /routes/rt/plugins
        self.put("/plugins/probe-ipr", {"name": "ip-restriction", "route": {"id": rt["id"]},
                                        "service": {"id": svc["id"]},
                                        "config": {"deny": ["192.0.2.1"]}, "tags": ["probe"]})
        self.ids = {"service": svc["id"], "certificate": cert["id"], "route": rt["id"]}

    # the concrete value of each path parameter (named as GET /endpoints names them)
    PARAMS = {"services": "svc", "routes": "rt", "certificates": "probe.test",
              "snis": "sni.probe.test", "ca_certificates": CA_ID,
              "upstreams": "up.probe.test", "targets": "127.0.0.1:8001", "name": "services",
              "db_entity_name": "services", "tags": "probe", "plugins": "probe-ipr"}

    def url(self, path):
        if path.startswith("/schemas/plugins/"):
            return "/schemas/plugins/ip-restriction"
        return re.sub(r"\{(\w+)\}", lambda m: self.PARAMS[m.group(1)], path)

    def body(self, path, method):
        """A valid JSON body for a documented write, and the status it must get."""
        cert_body = {"cert": self.cert, "key": self.key}
        route = {"protocols": ["tcp"], "destinations": [{"port": 6000 + self.n}]}
        ipr = {"name": "ip-restriction", "config": {"deny": ["192.0.2.2"]}}
        table = {
            ("/services", "POST"): ({"name": self.uniq("s"), "host": "127.0.0.1",
                                     "port": 9}, 201),
            ("/services/{services}", "PUT"): ({"host": "127.0.0.1", "port": 9}, 200),
            ("/services/{services}", "PATCH"): ({"retries": 3}, 200),
            ("/routes/{routes}/service", "PUT"): ({"name": "svc", "host": "127.0.0.1",
                                                   "port": 9}, 200),
            ("/routes/{routes}/service", "PATCH"): ({"retries": 4}, 200),
            ("/routes", "POST"): (dict(route, service={"id": self.ids["service"]}), 201),
            ("/routes/{routes}", "PUT"): (dict(route, service={"id": self.ids["service"]}),
                                          200),
            ("/routes/{routes}", "PATCH"): ({"sources": [{"ip": "10.0.0.0/8"}]}, 200),
            ("/services/{services}/routes", "POST"): (route, 201),
            ("/services/{services}/routes/{routes}", "PUT"): (route, 200),
            ("/services/{services}/routes/{routes}", "PATCH"): ({"tags": ["x"]}, 200),
            ("/certificates", "POST"): (cert_body, 201),
            ("/certificates/{certificates}", "PUT"): (cert_body, 200),
            ("/certificates/{certificates}", "PATCH"): ({"tags": ["x"]}, 200),
            ("/certificates/{certificates}/snis", "POST"): ({"name": self.uniq("n") +
                                                             ".probe.test"}, 201),
            ("/certificates/{certificates}/snis/{snis}", "PUT"): ({}, 200),
            ("/certificates/{certificates}/snis/{snis}", "PATCH"): ({"tags": ["x"]}, 200),
            ("/snis", "POST"): ({"name": self.uniq("m") + ".probe.test",
                                 "certificate": {"id": self.ids["certificate"]}}, 201),
            ("/snis/{snis}", "PUT"): ({"certificate": {"id": self.ids["certificate"]}}, 200),
            ("/snis/{snis}", "PATCH"): ({"tags": ["x"]}, 200),
            ("/ca_certificates", "POST"): ({"cert": self.ca2}, 201),
            ("/ca_certificates/{ca_certificates}", "PUT"): ({"cert": self.ca}, 200),
            ("/ca_certificates/{ca_certificates}", "PATCH"): ({"tags": ["x"]}, 200),
            ("/upstreams", "POST"): ({"name": self.uniq("u") + ".probe.test",
                                      "algorithm": "least-connections"}, 201),
            ("/upstreams/{upstreams}", "PUT"): ({"hash_on": "ip", "slots": 100}, 200),
            ("/upstreams/{upstreams}", "PATCH"): (
                {"healthchecks": {"active": {"tcp_send": "PING\r\n", "tcp_expect": "+PONG",
                                             "healthy": {"interval": 5}},
                                  "threshold": 50.5}}, 200),
            ("/upstreams/{upstreams}/targets", "POST"): (
                {"target": "127.0.0.2:" + self.uniq("7"), "weight": 5}, 201),
            ("/upstreams/{upstreams}/targets/{targets}", "PUT"): ({"weight": 20}, 200),
            ("/upstreams/{upstreams}/targets/{targets}", "PATCH"): ({"tags": ["x"]}, 200),
            ("/schemas/{db_entity_name}/validate", "POST"): ({"host": "example.test"}, 200),
            ("/plugins", "POST"): (ipr, 201),
            ("/plugins/{plugins}", "PUT"): (dict(ipr, route={"id": self.ids["route"]},
                                                 service={"id": self.ids["service"]}), 200),
            ("/plugins/{plugins}", "PATCH"): ({"tags": ["x"]}, 200),
            ("/services/{services}/plugins", "POST"): (ipr, 201),
            ("/services/{services}/plugins/{plugins}", "PUT"): (
                dict(ipr, route={"id": self.ids["route"]}), 200),
            ("/services/{services}/plugins/{plugins}", "PATCH"): ({"enabled": False}, 200),
            ("/routes/{routes}/plugins", "POST"): (ipr, 201),
            ("/routes/{routes}/plugins/{plugins}", "PUT"): (
                dict(ipr, service={"id": self.ids["service"]}), 200),
            ("/routes/{routes}/plugins/{plugins}", "PATCH"): ({"protocols": ["tcp"]}, 200),
        }
        if (path, method) == ("/config", "POST"):
            # the configuration as it is, loaded again: the same entities afterwards
            r = self.cp.get("/config")
            assert r.status == 200, r
            return {"config": r.json["config"]}, 201
        assert (path, method) in table, f"no probe body for {method} {path}: add one"
        return table[(path, method)]

    def prepare(self, path, method):
        """What a request needs beyond ensure() to succeed."""
        if (path, method) == ("/services/{services}", "DELETE"):
            # a service that routes use is not deleted (400, code 4)
            for r in self.cp.get("/services/svc/routes").json["data"]:
                assert self.cp.api("DELETE", f"/routes/{r['id']}").status == 204
        if method == "POST" and path.endswith("/plugins"):
            # one plugin of a name per scope: only the probe's stays
            for p in self.cp.get("/plugins?size=1000").json["data"]:
                if p["instance_name"] != "probe-ipr":
                    assert self.cp.api("DELETE", f"/plugins/{p['id']}").status == 204
        if (path, method) == ("/ca_certificates", "POST"):
            # the same certificate cannot be added twice (unique digest)
            for c in self.cp.get("/ca_certificates?size=1000").json["data"]:
                if c["id"] != CA_ID:
                    assert self.cp.api("DELETE", f"/ca_certificates/{c['id']}").status == 204


SUCCESS = {"GET": 200, "HEAD": 200, "PUT": 200, "PATCH": 200, "DELETE": 204, "OPTIONS": 204}


def documented_methods(item):
    return {m.upper() for m in HTTP_METHODS if m in item}


def test_every_documented_operation_is_served(st, spec, pki, echo):
    cp = st.cp()
    dp = st.dp(cp)  # so /clustering/* have an entry to check against the schemas
    dp.wait_synced()
    probe = Probe(cp, pki, echo.port)
    # /config last: the others are independent of each other
    order = sorted(spec["paths"].items(), key=lambda kv: kv[0] == "/config")
    probed = 0
    for path, item in order:
        allowed = documented_methods(item)
        for m in ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"):
            if m not in allowed:
                continue
            op = item[m.lower()]
            probe.ensure()
            probe.prepare(path, m)
            url = probe.url(path)
            body = None
            expect = SUCCESS.get(m)
            if m in ("POST", "PUT", "PATCH"):
                body, expect = probe.body(path, m)
                req_schema = json_schema_of(spec, op["requestBody"])
                if req_schema is not None and "config" not in body:
                    errs = schema_errors(spec, req_schema, body, response=False)
                    assert not errs, (m, path, "the probe's body does not match the doc", errs)
            r = cp.api(m, url, json_body=body)
            what = f"{m} {url} (documented as {path})"
            assert r.status != 405, f"{what}: 405, but documented"
            assert r.status == expect, f"{what}: {r.status} {r.raw[:400]!r}, expected {expect}"
            assert str(r.status) in op["responses"], f"{what}: {r.status} is not documented"
            probed += 1
            if m == "OPTIONS":
                allow = {a.strip() for a in (r.headers.get("Allow") or "").split(",")}
                assert allow == allowed, f"{what}: Allow {allow}, documented {allowed}"
                continue
            if m == "HEAD" or r.status == 204:
                assert r.raw == b"", f"{what}: a body with {r.status}: {r.raw[:200]!r}"
                continue
            schema = json_schema_of(spec, op["responses"][str(r.status)])
            if schema is not None:
                assert r.json is not None, f"{what}: not JSON: {r.raw[:200]!r}"
                errs = schema_errors(spec, schema, r.json)
                assert not errs, f"{what}: body does not match the documented schema:\n" + \
                    "\n".join(errs[:20]) + f"\n{json.dumps(r.json)[:1500]}"
        # every method not documented for this path is refused with 405
        for m in PROBED:
            if m in allowed:
                continue
            probe.ensure()
            r = cp.api(m, probe.url(path), json_body={} if m in ("POST", "PUT", "PATCH")
                       else None)
            assert r.status == 405, f"{m} {probe.url(path)}: {r.status}, expected 405 " \
                                    f"(not documented for {path})"
            if m != "HEAD":
                assert r.json == {"message": "Method not allowed"}, r
    assert probed >= 2 * len(spec["paths"]), probed

    # the probes documented as changing nothing did not: POST /config of the exported
    # configuration kept the probe entities (ids included)
    probe.ensure()
    assert cp.get("/services/svc").json["id"] == probe.ids["service"]


def test_documented_errors_are_the_real_ones(st, spec):
    """The 4xx bodies the document names by example are the server's."""
    cp = st.cp()
    responses = spec["components"]["responses"]
    ex = lambda name: responses[name]["content"]["application/json"]["example"]  # noqa: E731

    r = cp.get("/services/nope")
    assert (r.status, r.json) == (404, ex("NotFound")), r
    r = cp.get("/certificates/nope.test")
    assert (r.status, r.json) == (404, ex("CertificateNotFound")), r
    r = cp.api("POST", "/schemas/nope/validate", json_body={})
    assert (r.status, r.json) == (404, ex("NoSuchEntity")), r
    r = cp.api("POST", "/services", body=b"x", ctype="text/plain")
    assert (r.status, r.json) == (415, ex("UnsupportedMediaType")), r
    r = cp.api("POST", "/services", json_body={"host": "h", "port": 70000})
    assert (r.status, r.json) == (400, ex("BadRequest")), r
    cp.ok("POST", "/services", json_body={"name": "echo", "host": "h"})
    r = cp.api("POST", "/services", json_body={"name": "echo", "host": "h"})
    assert (r.status, r.json) == (409, ex("Conflict")), r
    # a duplicate id: 400, code 3 (documented in info.description and BadRequest)
    sid = cp.get("/services/echo").json["id"]
    r = cp.api("POST", "/services", json_body={"id": sid, "name": "other", "host": "h"})
    assert r.status == 400 and r.json["code"] == 3, r
    assert r.json["name"] == "primary key violation", r
    assert "400 with code 3" in spec["info"]["description"]
    assert not schema_errors(spec, responses["BadRequest"]["content"]["application/json"]
                             ["schema"], r.json)


def test_documented_security_schemes(st, spec):
    """admin_token, sent as each documented scheme; the 401 body is the documented one."""
    schemes = spec["components"]["securitySchemes"]
    header = schemes["adminToken"]["name"]
    assert schemes["adminToken"]["in"] == "header"
    assert schemes["adminBearer"]["scheme"] == "bearer"
    token = uuid.uuid4().hex
    cp = st.cp(conf={"admin_token": token}, start=False)
    cp.start(wait=False)  # the harness's readiness check sends no token
    unauthorized = spec["components"]["responses"]["Unauthorized"]
    ex = unauthorized["content"]["application/json"]["example"]

    def call(headers):
        return http("GET", cp.base + "/services", headers=headers)

    wait_for(lambda: cp.check_alive() and call({header: token}).status == 200, 20,
             "the CP's admin API with the token")
    for headers in ({}, {header: "wrong"}, {"Authorization": "Bearer wrong"}):
        r = call(headers)
        assert (r.status, r.json) == (401, ex), (headers, r)
    for headers in ({header: token}, {"Authorization": f"Bearer {token}"}):
        r = call(headers)
        assert r.status == 200, (headers, r)
    # every operation documents the 401
    for path, m, op in operations(spec):
        assert "401" in op["responses"], f"{m.upper()} {path}: 401 not documented"
