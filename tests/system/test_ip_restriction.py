# Guards issue 18, points 1-2: the `ip-restriction` plugin run by the data plane after
# routing (Kong 3.10's kong/plugins/ip-restriction/handler.lua and the stream
# plugins iterator): deny first, then allow; a refused connection is closed without a byte
# and its session log line says status 403 (or the configured status); Kong's scope
# precedence (route + service, route, service, global); the instance's protocols honoured
# per connection (a tls-only instance does not run on a tcp session); a disabled instance
# is not applied and does not hide a less specific one; a removed one stops applying.
# Clients come from distinct loopback addresses (127.0.0.2, 127.0.0.3) to tell allow from
# deny.

import pytest

from conftest import pinged


def ipr(cp, dp, path="/plugins", **body):
    body = dict(body)
    body.setdefault("name", "ip-restriction")
    p = cp.ok("POST", path, json_body=body)
    dp.wait_synced()
    return p


def change(cp, dp, method, path, body=None):
    r = cp.ok(method, path, json_body=body, expect=(200, 201, 204))
    dp.wait_synced()
    return r


def refused(dp, src):
    """A connection from src that the DP closes without proxying a byte."""
    return not pinged(dp.port, src=src)


@pytest.fixture
def c(cluster):
    cp, dp, svc, route = cluster
    assert pinged(dp.port, src="127.0.0.2") and pinged(dp.port, src="127.0.0.3")
    return cp, dp, svc, route


def test_deny_then_allow(c):
    cp, dp, svc, route = c
    mark = dp.log_size()
    p = ipr(cp, dp, config={"deny": ["127.0.0.2", "10.0.0.0/8"]})
    assert refused(dp, "127.0.0.2")
    assert pinged(dp.port, src="127.0.0.3")
    line = dp.wait_log(r"session: client 127\.0\.0\.2:\d+, .* status 403, .*end ip-restriction",
                       since=mark)
    assert "r-echo" in line
    dp.wait_log(r"\[warn\].*ip-restriction: IP address not allowed while .*client: 127\.0\.0\.2",
                since=mark)
    # an allow list: everything else is refused; deny is checked first
    change(cp, dp, "PATCH", f"/plugins/{p['id']}",
           {"config": {"allow": ["127.0.0.0/24"], "deny": ["127.0.0.3"], "status": 401,
                       "message": "no entry"}})
    assert pinged(dp.port, src="127.0.0.2")
    assert refused(dp, "127.0.0.3")
    assert refused(dp, "127.0.1.1")
    dp.wait_log(r"session: client 127\.0\.1\.1:\d+, .* status 401, .*end ip-restriction",
                since=mark)
    dp.wait_log(r"ip-restriction: no entry while", since=mark)
    # removed: takes effect
    change(cp, dp, "DELETE", f"/plugins/{p['id']}")
    assert pinged(dp.port, src="127.0.0.3") and pinged(dp.port, src="127.0.1.1")


def test_precedence_across_scopes(c):
    cp, dp, svc, route = c
    g = ipr(cp, dp, config={"deny": ["127.0.0.2"]})
    assert refused(dp, "127.0.0.2")
    # service beats global
    s = ipr(cp, dp, f"/services/{svc['id']}/plugins", config={"deny": ["127.0.0.3"]})
    assert pinged(dp.port, src="127.0.0.2") and refused(dp, "127.0.0.3")
    # route beats service
    r = ipr(cp, dp, f"/routes/{route['id']}/plugins", config={"deny": ["127.0.0.4"]})
    assert pinged(dp.port, src="127.0.0.3") and refused(dp, "127.0.0.4")
    # route + service beats route
    rs = ipr(cp, dp, config={"deny": ["127.0.0.5"]}, route={"id": route["id"]},
             service={"id": svc["id"]})
    assert pinged(dp.port, src="127.0.0.4") and refused(dp, "127.0.0.5")
    # a route + service instance naming another service never applies to this route
    other = cp.service("other", 9)
    cp.ok("DELETE", f"/plugins/{rs['id']}", expect=204)
    ipr(cp, dp, config={"deny": ["127.0.0.6"]}, route={"id": route["id"]},
        service={"id": other["id"]})
    assert pinged(dp.port, src="127.0.0.6") and refused(dp, "127.0.0.4")
    # disabled: not applied, and the next scope applies again
    change(cp, dp, "PATCH", f"/plugins/{r['id']}", {"enabled": False})
    assert pinged(dp.port, src="127.0.0.4") and refused(dp, "127.0.0.3")
    change(cp, dp, "DELETE", f"/plugins/{s['id']}")
    assert pinged(dp.port, src="127.0.0.3") and refused(dp, "127.0.0.2")
    change(cp, dp, "PATCH", f"/plugins/{g['id']}", {"enabled": False})
    assert pinged(dp.port, src="127.0.0.2")


def test_protocols_per_connection(c):
    cp, dp, svc, route = c
    g = ipr(cp, dp, protocols=["tls"], config={"deny": ["127.0.0.0/8"]})
    # a tls-only instance does not run on this tcp session (Kong would run it)
    assert pinged(dp.port, src="127.0.0.2")
    change(cp, dp, "PATCH", f"/plugins/{g['id']}", {"protocols": ["tls", "tcp"]})
    assert refused(dp, "127.0.0.2")
    change(cp, dp, "PATCH", f"/plugins/{g['id']}", {"protocols": ["http", "https"]})
    assert pinged(dp.port, src="127.0.0.2")
    # a route instance for tls only does not hide the global one on a tcp session
    change(cp, dp, "PATCH", f"/plugins/{g['id']}",
           {"protocols": ["tcp"], "config": {"deny": ["127.0.0.2"]}})
    change(cp, dp, "PATCH", f"/routes/{route['id']}", {"protocols": ["tcp", "tls"]})
    ipr(cp, dp, f"/routes/{route['id']}/plugins", protocols=["tls"],
        config={"deny": ["127.0.0.3"]})
    assert refused(dp, "127.0.0.2") and pinged(dp.port, src="127.0.0.3")


def test_ipv6_and_many_entries(c):
    cp, dp, svc, route = c
    # thousands of entries: matched by binary search (the CP and DP take them whole)
    deny = [f"10.{i // 256}.{i % 256}.0/24" for i in range(4000)] + ["::1", "127.0.0.2/32"]
    p = ipr(cp, dp, config={"deny": deny})
    assert refused(dp, "127.0.0.2")
    assert pinged(dp.port, src="127.0.0.3")
    change(cp, dp, "PATCH", f"/plugins/{p['id']}",
           {"config": {"deny": None, "allow": ["::ffff:127.0.0.3"]}})
    assert pinged(dp.port, src="127.0.0.3") and refused(dp, "127.0.0.2")


def test_no_plugin_no_refusal_and_other_routes(c):
    cp, dp, svc, route = c
    # an instance on another route leaves this one alone
    svc2 = cp.service("s2", 9)
    r2 = cp.route(svc2, name="r2", destinations=[{"port": 1}])
    ipr(cp, dp, f"/routes/{r2['id']}/plugins", config={"deny": ["127.0.0.0/8"]})
    assert pinged(dp.port, src="127.0.0.2")


def test_dp_without_the_plugin_refuses_the_configuration(st, echo):
    # a DP whose `plugins` key leaves ip-restriction out never takes a configuration
    # using it (it would ignore it): it keeps its last configuration and says why
    cp = st.cp()
    dp = st.dp(cp, conf={"plugins": "off"}, start=False)
    svc = cp.service("echo", echo.port)
    route = cp.route(svc, name="r-echo", destinations=[{"port": dp.port}])
    dp.start()
    h = dp.wait_synced()
    mark = dp.log_size()
    cp.ok("POST", f"/routes/{route['id']}/plugins",
          json_body={"name": "ip-restriction", "config": {"deny": ["127.0.0.2"]}})
    dp.wait_log(r"sync: refused configuration version .*plugin 'ip-restriction' not enabled",
                since=mark)
    assert dp.status_hash() == h != cp.status_hash()
    assert pinged(dp.port, src="127.0.0.2")
