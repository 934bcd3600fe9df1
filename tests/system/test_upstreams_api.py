# Guards issue 16, point 1: Kong's `upstreams` and `targets` on the control plane, as
# Kong 3.10 defines them (kong/db/schema/entities/upstreams.lua and targets.lua, the
# targets DAO; the cases mirror spec/02-integration/04-admin_api/07-upstreams_routes_spec.lua
# and 08-targets_routes_spec.lua and spec/01-unit/01-db/01-schema/09-upstreams_spec.lua):
# every field with Kong's default, the whole healthchecks record filled in, Kong's messages
# (nested paths for the record), the algorithm/hash_on shorthands on the request's own keys,
# targets normalised with :8000, 409 on a duplicate, only under /upstreams/{u}/targets and
# addressed by id or target string, deleted with their upstream; declarative
# upstreams[].targets[] with the same hash after a round trip; the snapshot a DP takes;
# GET /schemas. Every refused write leaves the store as it was. Runs on SQLite and, in
# system_postgres, on Postgres.

import pytest

from conftest import wait_for

HC_DEFAULT = {
    "active": {
        "type": "http",
        "timeout": 1,
        "concurrency": 10,
        "http_path": "/",
        "https_sni": None,
        "https_verify_certificate": True,
        "headers": None,
        "tcp_send": None,
        "tcp_expect": None,
        "healthy": {"interval": 0, "http_statuses": [200, 302], "successes": 0},
        "unhealthy": {
            "interval": 0,
            "http_statuses": [429, 404, 500, 501, 502, 503, 504, 505],
            "tcp_failures": 0,
            "timeouts": 0,
            "http_failures": 0,
        },
    },
    "passive": {
        "type": "http",
        "healthy": {
            "http_statuses": [200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
                              300, 301, 302, 303, 304, 305, 306, 307, 308],
            "successes": 0,
        },
        "unhealthy": {"http_statuses": [429, 500, 503], "tcp_failures": 0, "timeouts": 0,
                      "http_failures": 0},
    },
    "threshold": 0,
}


@pytest.fixture
def cp(st):
    return st.cp()


def snapshot_of(cp):
    """Everything the store holds of upstreams and targets, and the configuration hash."""
    ups = cp.get("/upstreams?size=1000").json["data"]
    tgs = []
    for u in ups:
        tgs += cp.get(f"/upstreams/{u['id']}/targets?size=1000").json["data"]
    return sorted(ups, key=lambda e: e["id"]), sorted(tgs, key=lambda e: e["id"]), \
        cp.status_hash()


def refused(cp, method, path, body, status=400):
    """A write that must be refused with Kong's body, changing nothing."""
    before = snapshot_of(cp)
    r = cp.api(method, path, json_body=body)
    assert r.status == status, r
    assert snapshot_of(cp) == before
    return r.json


# ----------------------------------------------------------------------------- upstreams


def test_upstream_defaults(cp):
    u = cp.ok("POST", "/upstreams", json_body={"name": "pool.test"})
    assert u["name"] == "pool.test"
    assert u["algorithm"] == "round-robin"
    assert u["hash_on"] == "none" and u["hash_fallback"] == "none"
    assert u["hash_on_cookie_path"] == "/"
    assert u["slots"] == 10000
    assert u["use_srv_name"] is False
    for k in ("hash_on_header", "hash_fallback_header", "hash_on_cookie", "hash_on_query_arg",
              "hash_fallback_query_arg", "hash_on_uri_capture", "hash_fallback_uri_capture",
              "host_header", "client_certificate", "tags"):
        assert u[k] is None, k
    assert u["healthchecks"] == HC_DEFAULT
    assert isinstance(u["created_at"], int) and isinstance(u["updated_at"], int)
    # by name and by id, the same entity
    assert cp.get("/upstreams/pool.test").json == u
    assert cp.get(f"/upstreams/{u['id']}").json == u


def test_upstream_healthchecks_partial_record(cp):
    body = {"name": "hc.test", "healthchecks": {
        "active": {"type": "tcp", "timeout": 2.5, "healthy": {"interval": 5, "successes": 2},
                   "unhealthy": {"interval": 1, "tcp_failures": 3}},
        "threshold": 50.5}}
    u = cp.ok("POST", "/upstreams", json_body=body)
    hc = u["healthchecks"]
    assert hc["active"]["type"] == "tcp" and hc["active"]["timeout"] == 2.5
    assert hc["active"]["healthy"] == {"interval": 5, "http_statuses": [200, 302],
                                       "successes": 2}
    assert hc["active"]["unhealthy"]["tcp_failures"] == 3
    assert hc["active"]["unhealthy"]["http_statuses"] == [429, 404, 500, 501, 502, 503, 504,
                                                          505]
    assert hc["active"]["concurrency"] == 10
    assert hc["passive"] == HC_DEFAULT["passive"]
    assert hc["threshold"] == 50.5
    # the record's keys in Kong's order, whatever the order sent
    assert list(hc) == ["active", "passive", "threshold"]
    assert list(hc["active"])[:3] == ["type", "timeout", "concurrency"]
    # an integral real is an integer, as Kong's number type prints it
    u = cp.ok("PATCH", "/upstreams/hc.test", json_body={"healthchecks": {"threshold": 25.0}})
    assert u["healthchecks"]["threshold"] == 25 and u["healthchecks"]["active"]["timeout"] == 1
    # null is the default record (Kong's records are not nullable)
    u = cp.ok("PATCH", "/upstreams/hc.test", json_body={"healthchecks": None})
    assert u["healthchecks"] == HC_DEFAULT
    # Strait's payload probe fields
    u = cp.ok("PATCH", "/upstreams/hc.test", json_body={"healthchecks": {"active": {
        "type": "tcp", "tcp_send": "PING\r\n", "tcp_expect": "+PONG"}}})
    assert u["healthchecks"]["active"]["tcp_send"] == "PING\r\n"


def test_upstream_form_body(cp):
    r = cp.api("POST", "/upstreams", form={
        "name": "form.test", "slots": "20", "healthchecks.threshold": "12.5",
        "healthchecks.active.timeout": "3", "healthchecks.active.type": "tcp"})
    assert r.status == 201, r
    assert r.json["slots"] == 20
    assert r.json["healthchecks"]["threshold"] == 12.5
    assert r.json["healthchecks"]["active"]["timeout"] == 3
    assert r.json["healthchecks"]["active"]["type"] == "tcp"


@pytest.mark.parametrize("body, fields", [
    ({}, {"name": "required field missing"}),
    ({"name": "123.123.123.123"},
     {"name": "Invalid name ('123.123.123.123'); no ip addresses allowed"}),
    ({"name": "name:80"}, {"name": "Invalid name ('name:80'); no port allowed"}),
    ({"name": "n!me"}, {"name": "Invalid name ('n!me'); must be a valid hostname"}),
    ({"name": "a.test", "algorithm": "fastest"},
     {"algorithm": "expected one of: consistent-hashing, least-connections, round-robin, "
                   "latency"}),
    ({"name": "a.test", "hash_on": "x"},
     {"hash_on": "expected one of: none, consumer, ip, header, cookie, path, query_arg, "
                 "uri_capture, sni, port"}),
    ({"name": "a.test", "hash_on": "header"},
     {"hash_on_header": "required field missing",
      "@entity": ["failed conditional validation given value of field 'hash_on'"]}),
    ({"name": "a.test", "hash_on": "ip", "hash_fallback": "ip"},
     {"hash_fallback": "expected one of: none, consumer, header, cookie, path, query_arg, "
                       "uri_capture, sni, port",
      "@entity": ["failed conditional validation given value of field 'hash_on'"]}),
    ({"name": "a.test", "hash_on": "sni", "hash_fallback": "sni"},
     {"hash_fallback": "expected one of: none, consumer, ip, header, cookie, path, query_arg, "
                       "uri_capture, port",
      "@entity": ["failed conditional validation given value of field 'hash_on'"]}),
    ({"name": "a.test", "hash_on": "cookie", "hash_on_cookie": "c", "hash_fallback": "ip"},
     {"hash_fallback": "expected one of: none",
      "@entity": ["failed conditional validation given value of field 'hash_on'"]}),
    ({"name": "a.test", "hash_on": "header", "hash_on_header": "x-a",
      "hash_fallback": "header", "hash_fallback_header": "x-a"},
     {"@entity": ["values of these fields must be distinct: 'hash_on_header', "
                  "'hash_fallback_header'"]}),
    ({"name": "a.test", "hash_on": "header", "hash_on_header": "x a"},
     {"hash_on_header": "bad header name 'x a', allowed characters are A-Z, a-z, 0-9, '_', "
                        "and '-'"}),
    ({"name": "a.test", "hash_on": "query_arg", "hash_on_query_arg": ""},
     {"hash_on_query_arg": "length must be at least 1"}),
    ({"name": "a.test", "hash_on_cookie_path": "x"},
     {"hash_on_cookie_path": "should start with: /"}),
    ({"name": "a.test", "slots": 9}, {"slots": "value should be between 10 and 65536"}),
    ({"name": "a.test", "slots": 65537}, {"slots": "value should be between 10 and 65536"}),
    ({"name": "a.test", "host_header": "http://ahostname.test"},
     {"host_header": "invalid hostname: http://ahostname.test"}),
    ({"name": "a.test", "healthchecks": {"threshold": 101}},
     {"healthchecks": {"threshold": "value should be between 0 and 100"}}),
    ({"name": "a.test", "healthchecks": {"threshold": "x"}},
     {"healthchecks": {"threshold": "expected a number"}}),
    ({"name": "a.test", "healthchecks": {"active": {"timeout": -1}}},
     {"healthchecks": {"active": {"timeout": "value should be between 0 and 65535"}}}),
    ({"name": "a.test", "healthchecks": {"active": {"concurrency": 0}}},
     {"healthchecks": {"active": {"concurrency": "value should be between 1 and 2147483648"}}}),
    ({"name": "a.test", "healthchecks": {"active": {"concurrency": 0.5}}},
     {"healthchecks": {"active": {"concurrency": "expected an integer"}}}),
    ({"name": "a.test", "healthchecks": {"active": {"type": "udp"}}},
     {"healthchecks": {"active": {"type": "expected one of: tcp, http, https, grpc, grpcs"}}}),
    ({"name": "a.test", "healthchecks": {"active": {"http_path": "x"}}},
     {"healthchecks": {"active": {"http_path": "should start with: /"}}}),
    ({"name": "a.test", "healthchecks": {"active": {"https_sni": "127.0.0.1"}}},
     {"healthchecks": {"active": {"https_sni": "must not be an IP"}}}),
    ({"name": "a.test", "healthchecks": {"active": {"https_sni": "a.test:80"}}},
     {"healthchecks": {"active": {"https_sni": "must not have a port"}}}),
    ({"name": "a.test", "healthchecks": {"active": {"https_verify_certificate": "yes"}}},
     {"healthchecks": {"active": {"https_verify_certificate": "expected a boolean"}}}),
    ({"name": "a.test", "healthchecks": {"active": {"healthy": {"successes": 256}}}},
     {"healthchecks": {"active": {"healthy": {"successes":
                                              "value should be between 0 and 255"}}}}),
    ({"name": "a.test", "healthchecks": {"passive": {"unhealthy": {"http_statuses": [99]}}}},
     {"healthchecks": {"passive": {"unhealthy": {"http_statuses":
                                                 ["value should be between 100 and 999"]}}}}),
    ({"name": "a.test", "healthchecks": {"active": {"foo": 1}}},
     {"healthchecks": {"active": {"foo": "unknown field"}}}),
    ({"name": "a.test", "healthchecks": 5}, {"healthchecks": "expected a record"}),
    ({"name": "a.test", "client_certificate": {"id": "7e1f1b4e-5a9e-4c3e-8f2d-1d2c3b4a5f6e"}},
     None),
])
def test_upstream_refusals(cp, body, fields):
    cp.ok("POST", "/upstreams", json_body={"name": "existing.test"})
    status = 400 if fields is not None else 400
    r = refused(cp, "POST", "/upstreams", body, status)
    if fields is None:
        # Kong's foreign key error
        assert r["name"] == "foreign key violation", r
        assert r["fields"] == {"client_certificate": {"id": body["client_certificate"]["id"]}}
        return
    assert r["name"] == "schema violation", r
    assert r["fields"] == fields, r
    # the same refusal through /schemas/upstreams/validate
    v = cp.api("POST", "/schemas/upstreams/validate", json_body=body)
    assert v.status == 400 and v.json["fields"] == fields, v


def test_upstream_nested_message(cp):
    r = refused(cp, "POST", "/upstreams", {"name": "a.test", "healthchecks": {
        "active": {"timeout": 70000}}})
    assert r["message"] == ("schema violation (healthchecks.active.timeout: value should be "
                            "between 0 and 65535)"), r


def test_upstream_duplicate_name(cp):
    cp.ok("POST", "/upstreams", json_body={"name": "dup.test"})
    r = refused(cp, "POST", "/upstreams", {"name": "dup.test"}, 409)
    assert r["name"] == "unique constraint violation", r
    assert r["fields"] == {"name": "dup.test"}, r


def test_upstream_shorthands(cp):
    # hash_on other than none makes the algorithm consistent-hashing
    u = cp.ok("POST", "/upstreams", json_body={"name": "s.test", "hash_on": "ip"})
    assert u["algorithm"] == "consistent-hashing" and u["hash_on"] == "ip"
    # least-connections clears hash_on, even when the same body names one
    u = cp.ok("PATCH", "/upstreams/s.test",
              json_body={"algorithm": "least-connections", "hash_on": "ip"})
    assert u["algorithm"] == "least-connections" and u["hash_on"] == "none"
    # a PATCH of another field leaves the stored algorithm alone (the shorthands read the
    # request's own keys, never the stored entity)
    u = cp.ok("PATCH", "/upstreams/s.test", json_body={"slots": 100})
    assert u["algorithm"] == "least-connections" and u["slots"] == 100
    # hash_on "none" sent makes it round-robin, as Kong does (kong-next-features.md §0)
    u = cp.ok("PATCH", "/upstreams/s.test", json_body={"hash_on": "none"})
    assert u["algorithm"] == "round-robin"
    # consistent-hashing without a hash source is accepted, as Kong accepts it
    u = cp.ok("PATCH", "/upstreams/s.test", json_body={"algorithm": "consistent-hashing"})
    assert u["algorithm"] == "consistent-hashing" and u["hash_on"] == "none"
    u = cp.ok("PATCH", "/upstreams/s.test", json_body={"algorithm": "latency"})
    assert u["algorithm"] == "latency" and u["hash_on"] == "none"
    # PUT by name is an upsert, with the shorthands too
    u = cp.ok("PUT", "/upstreams/put.test", json_body={"hash_on": "ip"})
    assert u["name"] == "put.test" and u["algorithm"] == "consistent-hashing"


# ----------------------------------------------------------------------------- targets


def test_targets_nested_only(cp):
    u = cp.ok("POST", "/upstreams", json_body={"name": "t.test"})
    t = cp.ok("POST", "/upstreams/t.test/targets", json_body={"target": "127.0.0.1"})
    assert t["target"] == "127.0.0.1:8000"
    assert t["weight"] == 100
    assert t["upstream"] == {"id": u["id"]}
    assert t["tags"] is None
    # by id and by target string, under its upstream (by name or id)
    assert cp.get(f"/upstreams/t.test/targets/{t['id']}").json == t
    assert cp.get("/upstreams/t.test/targets/127.0.0.1:8000").json == t
    assert cp.get(f"/upstreams/{u['id']}/targets/127.0.0.1:8000").json == t
    data = cp.get("/upstreams/t.test/targets").json["data"]
    assert [x["id"] for x in data] == [t["id"]]
    # no top-level collection (Kong disables /targets)
    assert cp.get("/targets").status == 404
    assert cp.get(f"/targets/{t['id']}").status == 404
    # the collection takes GET and POST only
    for m in ("PUT", "PATCH", "DELETE"):
        r = cp.api(m, "/upstreams/t.test/targets", json_body={})
        assert r.status == 405, (m, r)
    # the same target under another upstream is another target
    cp.ok("POST", "/upstreams", json_body={"name": "other.test"})
    t2 = cp.ok("POST", "/upstreams/other.test/targets", json_body={"target": "127.0.0.1"})
    assert t2["id"] != t["id"]
    # not under this upstream: 404
    assert cp.get(f"/upstreams/other.test/targets/{t['id']}").status == 404
    # PATCH and DELETE by target string
    t = cp.ok("PATCH", "/upstreams/t.test/targets/127.0.0.1:8000", json_body={"weight": 0})
    assert t["weight"] == 0
    r = cp.api("DELETE", "/upstreams/t.test/targets/127.0.0.1:8000")
    assert r.status == 204, r
    assert cp.get("/upstreams/t.test/targets").json["data"] == []
    assert cp.get(f"/upstreams/other.test/targets/{t2['id']}").status == 200


@pytest.mark.parametrize("given, stored", [
    ("127.0.0.1", "127.0.0.1:8000"),
    ("127.0.0.1:80", "127.0.0.1:80"),
    ("backend.test", "backend.test:8000"),
    ("backend.test:9000", "backend.test:9000"),
    ("::1", "[0000:0000:0000:0000:0000:0000:0000:0001]:8000"),
    ("[::1]:81", "[0000:0000:0000:0000:0000:0000:0000:0001]:81"),
])
def test_target_normalised(cp, given, stored):
    cp.ok("POST", "/upstreams", json_body={"name": "n.test"})
    t = cp.ok("POST", "/upstreams/n.test/targets", json_body={"target": given})
    assert t["target"] == stored


def test_target_refusals(cp):
    cp.ok("POST", "/upstreams", json_body={"name": "r.test"})
    cp.ok("POST", "/upstreams/r.test/targets", json_body={"target": "127.0.0.1:80"})
    r = refused(cp, "POST", "/upstreams/r.test/targets", {})
    assert r["fields"] == {"target": "required field missing"}, r
    for bad in ("not a host!", "127.0.0.1:99999", "[::1"):
        r = refused(cp, "POST", "/upstreams/r.test/targets", {"target": bad})
        assert r["fields"] == {"target": "Invalid target; not a valid hostname or ip address"}, r
    r = refused(cp, "POST", "/upstreams/r.test/targets", {"target": "a.test", "weight": 65536})
    assert r["fields"] == {"weight": "value should be between 0 and 65535"}, r
    r = refused(cp, "POST", "/upstreams/r.test/targets", {"target": "a.test", "weight": -1})
    assert r["fields"] == {"weight": "value should be between 0 and 65535"}, r
    # a duplicate (also when written without the port that makes it the same), with
    # Kong's body for its (upstream, target) key
    uid = cp.get("/upstreams/r.test").json["id"]
    r = refused(cp, "POST", "/upstreams/r.test/targets", {"target": "127.0.0.1:80"}, 409)
    assert r["name"] == "unique constraint violation", r
    assert r["fields"] == {"target": "127.0.0.1:80", "upstream": {"id": uid}}, r
    assert r["message"] == ("UNIQUE violation detected on '{target=\"127.0.0.1:80\","
                            f"upstream={{id=\"{uid}\"}}}}'"), r
    cp.ok("POST", "/upstreams/r.test/targets", json_body={"target": "127.0.0.2"})
    refused(cp, "POST", "/upstreams/r.test/targets", {"target": "127.0.0.2:8000"}, 409)
    # under an upstream that does not exist
    r = cp.api("POST", "/upstreams/nope.test/targets", json_body={"target": "a.test"})
    assert r.status == 404, r


def test_targets_deleted_with_upstream(cp):
    u = cp.ok("POST", "/upstreams", json_body={"name": "c.test"})
    ids = [cp.ok("POST", "/upstreams/c.test/targets", json_body={"target": f"127.0.0.{i}"})["id"]
           for i in range(1, 4)]
    r = cp.api("DELETE", "/upstreams/c.test")
    assert r.status == 204, r
    assert cp.get(f"/upstreams/{u['id']}").status == 404
    for i in ids:
        assert cp.get(f"/upstreams/{u['id']}/targets/{i}").status == 404
    assert cp.get("/status").json["server"] is not None


# ----------------------------------------------------------------------------- schemas


def test_schemas(cp):
    s = cp.get("/schemas/upstreams").json
    fields = {next(iter(f)): f[next(iter(f))] for f in s["fields"]}
    assert list(fields)[:4] == ["id", "created_at", "name", "updated_at"]
    hc = fields["healthchecks"]
    assert hc["type"] == "record"
    assert hc["default"] == HC_DEFAULT
    sub = {next(iter(f)): f[next(iter(f))] for f in hc["fields"]}
    assert sub["threshold"] == {"type": "number", "between": [0, 100], "default": 0}
    assert sub["active"]["type"] == "record"
    assert fields["slots"] == {"type": "integer", "between": [10, 65536], "default": 10000}
    assert fields["name"]["required"] is True and fields["name"]["unique"] is True
    assert any("distinct" in c for c in s["entity_checks"])
    t = cp.get("/schemas/targets").json
    tf = {next(iter(f)): f[next(iter(f))] for f in t["fields"]}
    assert tf["upstream"]["reference"] == "upstreams"
    assert tf["weight"]["default"] == 100


# ----------------------------------------------------------------------------- declarative

DOC = """\
_format_version: "3.0"
upstreams:
- name: pool.test
  algorithm: least-connections
  healthchecks:
    active:
      type: tcp
      healthy: {interval: 2, successes: 2}
      unhealthy: {interval: 1, tcp_failures: 2, timeouts: 2}
    threshold: 33.5
  targets:
  - target: 127.0.0.1:9001
    weight: 10
  - target: 127.0.0.1
- name: hash.test
  hash_on: ip
services:
- name: svc
  host: pool.test
  port: 80
  routes:
  - name: r
    protocols: [tcp]
    destinations: [{port: 9999}]
"""


def test_declarative_round_trip(cp):
    h0 = cp.status_hash()
    r = cp.api("POST", "/config", body=DOC, ctype="application/yaml")
    assert r.status == 201, r
    wait_for(lambda: cp.status_hash() != h0, 10, "the CP to publish")
    ups = {u["name"]: u for u in cp.get("/upstreams").json["data"]}
    assert ups["pool.test"]["algorithm"] == "least-connections"
    assert ups["pool.test"]["healthchecks"]["threshold"] == 33.5
    assert ups["pool.test"]["healthchecks"]["active"]["concurrency"] == 10
    assert ups["hash.test"]["algorithm"] == "consistent-hashing"
    tg = sorted(t["target"] for t in cp.get("/upstreams/pool.test/targets").json["data"])
    assert tg == ["127.0.0.1:8000", "127.0.0.1:9001"]
    h = cp.status_hash()
    text = cp.get("/config").json["config"]
    assert "upstreams:" in text and "targets:" in text
    # the export loaded again: same ids, same hash
    r = cp.api("POST", "/config", json_body={"config": text})
    assert r.status == 201, r
    assert cp.status_hash() == h
    assert cp.get("/config").json["config"] == text
    assert {u["name"]: u["id"] for u in cp.get("/upstreams").json["data"]} == \
        {n: u["id"] for n, u in ups.items()}


def test_declarative_errors(cp):
    before = snapshot_of(cp)
    doc = ('_format_version: "3.0"\nupstreams:\n- name: bad.test\n  slots: 1\n'
           '  targets:\n  - target: "no way"\n')
    r = cp.api("POST", "/config", body=doc, ctype="application/yaml")
    assert r.status == 400, r
    assert r.json["fields"] == {"upstreams": [{
        "slots": "value should be between 10 and 65536",
        "targets": [{"target": "Invalid target; not a valid hostname or ip address"}]}]}, r
    doc = ('_format_version: "3.0"\nupstreams:\n- name: a.test\n  targets:\n'
           '  - target: 127.0.0.1:1\n  - target: 127.0.0.1:1\n')
    r = cp.api("POST", "/config", body=doc, ctype="application/yaml")
    assert r.status == 400, r
    assert snapshot_of(cp) == before


# ----------------------------------------------------------------------------- snapshot


def test_dp_takes_upstreams(st):
    cp = st.cp()
    cp.ok("POST", "/upstreams", json_body={"name": "dp.test", "healthchecks": {
        "active": {"type": "tcp", "healthy": {"interval": 1}}, "threshold": 12.5}})
    cp.ok("POST", "/upstreams/dp.test/targets", json_body={"target": "127.0.0.1:1"})
    dp = st.dp(cp)
    dp.wait_synced()
    assert dp.status_hash() == cp.status_hash()
    # a change of a target reaches the DP as a new configuration
    cp.ok("PATCH", "/upstreams/dp.test/targets/127.0.0.1:1", json_body={"weight": 5})
    dp.wait_synced()
    assert dp.status_hash() == cp.status_hash()
