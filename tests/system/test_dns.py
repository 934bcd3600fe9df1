# Guards issue 16, point 3: DNS for targets and service hosts, through a DNS server the
# test runs on loopback (dns_server.py) and points the DP at with dns_resolver. A name
# with several A records is one balancer peer per address, each with its own health; a
# TTL that runs out is asked again off the workers' path, and a changed answer moves the
# traffic while the addresses that stayed keep their health; a lookup that fails keeps the
# last answer while dns_stale_ttl allows, then the target is DNS_ERROR, and it comes back
# when the name servers do; SRV records bring their ports and weights (best priority
# only); a service host that does not resolve closes with 503 "name resolution failed";
# the hosts file answers before any name server; dns_order decides which types are
# asked. Loopback only (127.0.0.0/8).

import os

import pytest

from conftest import EchoServer, pinged, scaled, wait_for
from dns_server import DnsServer


@pytest.fixture
def dns(st):
    d = DnsServer()
    yield d
    d.close()


def echos(st, hosts, port=0):
    """One echo server per loopback address of hosts, all on one port (the first's, or
    port)."""
    out = []
    for h in hosts:
        e = EchoServer(h, port=port, host=h)
        if port == 0:
            port = e.port
            st.ports.claim(port)
        st.echos.append(e)
        out.append(e)
    return out


def dns_conf(st, dns, hosts="", **extra):
    path = os.path.join(st.tmp, f"hosts-{dns.port}")
    with open(path, "w") as f:
        f.write(hosts)
    conf = {"dns_resolver": dns.address, "dns_hostsfile": path}
    conf.update({k: str(v) for k, v in extra.items()})
    return conf


def pool(st, dns, targets, hc=None, conf=None, hosts="", upstream=None, service=None):
    """A CP with upstream dns.pool over targets (strings), a service and a route on it,
    and a DP resolving through dns. Returns (cp, dp)."""
    cp = st.cp()
    cp.ok("POST", "/upstreams", json_body=dict({"name": "dns.pool", "healthchecks": hc or {}},
                                               **(upstream or {})))
    for t in targets:
        cp.ok("POST", "/upstreams/dns.pool/targets", json_body={"target": t})
    svc = cp.ok("POST", "/services", json_body=dict({"name": "pool", "host": "dns.pool",
                                                      "port": 1, "connect_timeout": 2000},
                                                     **(service or {})))
    dp = st.dp(cp, start=False, conf=dns_conf(st, dns, hosts, **(conf or {})))
    cp.ok("POST", "/routes", json_body={"protocols": ["tcp"], "service": {"id": svc["id"]},
                                        "destinations": [{"port": dp.port}]})
    dp.start()
    dp.wait_synced()
    return cp, dp


def addresses(dp):
    """{ip: health} of every address of the DP's view of dns.pool, and the targets'
    health."""
    r = dp.status_get("/upstreams/dns.pool/health")
    assert r.status == 200, r
    out, targets = {}, {}
    for t in r.json["data"]:
        targets[t["target"]] = t["health"]
        for a in t["data"]["addresses"]:
            out[(a["ip"], a["port"])] = a["health"]
    return out, targets


def served(e):
    with e.lock:
        return sum(1 for c in e.conns if bytes(c["data"]).startswith(b"ping"))


def test_each_address_of_a_name_is_a_peer(st, dns):
    a, b = echos(st, ["127.0.0.2", "127.0.0.3"])
    dns.set("two.test", "A", 300, ["127.0.0.2", "127.0.0.3"])
    cp, dp = pool(st, dns, [f"two.test:{a.port}"])
    for _ in range(40):
        assert pinged(dp.port)
    assert (served(a), served(b)) == (20, 20)
    addrs, targets = addresses(dp)
    assert addrs == {("127.0.0.2", a.port): "HEALTHCHECKS_OFF",
                     ("127.0.0.3", a.port): "HEALTHCHECKS_OFF"}
    assert targets == {f"two.test:{a.port}": "HEALTHCHECKS_OFF"}
    # Kong's dns_order (LAST,SRV,A,CNAME): SRV asked first, then A answered
    assert dns.asked("two.test", "SRV") >= 1 and dns.asked("two.test", "A") >= 1
    # resolved on the DP's sync thread, not per connection: 40 connections, no new query
    n = dns.asked("two.test")
    for _ in range(10):
        assert pinged(dp.port)
    assert dns.asked("two.test") == n


def test_ttl_change_moves_traffic_and_keeps_health(st, dns):
    a, c = echos(st, ["127.0.0.2", "127.0.0.4"])  # 127.0.0.3 on that port: refused
    port = a.port
    dns.set("ttl.test", "A", 1, ["127.0.0.2", "127.0.0.3"])
    cp, dp = pool(st, dns, [f"ttl.test:{port}"],
                  hc={"passive": {"unhealthy": {"tcp_failures": 1}}})
    for _ in range(6):
        assert pinged(dp.port)  # a refusal on .3 is retried on .2
    wait_for(lambda: addresses(dp)[0].get(("127.0.0.3", port)) == "UNHEALTHY", scaled(10),
             "127.0.0.3 unhealthy (passive)")
    dns.set("ttl.test", "A", 1, ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    wait_for(lambda: ("127.0.0.4", port) in addresses(dp)[0], scaled(10),
             "the new address in the balancer")
    dp.wait_log(r"addresses rebuilt \(DNS answers changed\)")
    addrs, _ = addresses(dp)
    # the address that stayed kept its health (passive only: nothing would mend it)
    assert addrs[("127.0.0.3", port)] == "UNHEALTHY"
    assert addrs[("127.0.0.2", port)] == "HEALTHY" and addrs[("127.0.0.4", port)] == "HEALTHY"
    before = (served(a), served(c))
    for _ in range(10):
        assert pinged(dp.port)
    got = (served(a) - before[0], served(c) - before[1])
    assert sum(got) == 10 and min(got) >= 2, got  # both take turns; .3 is skipped
    # the name now has .4 only: every connection goes there
    dns.set("ttl.test", "A", 1, ["127.0.0.4"])
    wait_for(lambda: set(addresses(dp)[0]) == {("127.0.0.4", port)}, scaled(10),
             "only 127.0.0.4 left")
    before_a, before_c = served(a), served(c)
    for _ in range(6):
        assert pinged(dp.port)
    assert (served(a) - before_a, served(c) - before_c) == (0, 6)


def test_failed_lookup_serves_stale_then_drops_then_recovers(st, dns):
    (a,) = echos(st, ["127.0.0.2"])
    dns.set("stale.test", "A", 1, ["127.0.0.2"])
    cp, dp = pool(st, dns, [f"stale.test:{a.port}"],
                  conf={"dns_stale_ttl": 3, "dns_error_ttl": 1})
    assert pinged(dp.port)
    dns.fail("stale.test")  # SERVFAIL from now on
    dp.wait_log(r"dns: stale\.test: lookup failed; serving its last answer", timeout=scaled(10))
    assert pinged(dp.port), "the last answer must serve while stale is allowed"
    # past dns_stale_ttl: the target has no address, the upstream no peer (503)
    wait_for(lambda: addresses(dp)[1] == {f"stale.test:{a.port}": "DNS_ERROR"}, scaled(15),
             "the target DNS_ERROR")
    assert not pinged(dp.port)
    dp.wait_log(r"failure to get a peer from the ring-balancer")
    # the name servers come back: asked again every dns_error_ttl, served again
    dns.heal("stale.test")
    wait_for(lambda: pinged(dp.port), scaled(15), "served again after the DNS recovered")


def test_srv_records_bring_ports_and_weights(st, dns):
    a, b, c = st.echo("a"), st.echo("b"), st.echo("c")
    dns.set("_echo._tcp.srv.test", "SRV", 300, [f"10 1 {a.port} a.srv.test.",
                                               f"10 3 {b.port} b.srv.test.",
                                               f"20 1 {c.port} c.srv.test."])
    for n in ("a", "b", "c"):
        dns.set(f"{n}.srv.test", "A", 300, ["127.0.0.1"])
    cp, dp = pool(st, dns, ["_echo._tcp.srv.test"])  # normalised to :8000, which SRV overrides
    for _ in range(400):
        assert pinged(dp.port)
    assert (served(a), served(b), served(c)) == (100, 300, 0)
    r = dp.status_get("/upstreams/dns.pool/health").json["data"]
    assert [t["target"] for t in r] == ["_echo._tcp.srv.test:8000"]
    assert sorted((x["port"], x["weight"]) for x in r[0]["data"]["addresses"]) == \
        sorted([(a.port, 1), (b.port, 3)])


def test_service_host_by_dns_and_name_resolution_failure(st, dns):
    e = st.echo()
    dns.set("svc.test", "A", 300, ["127.0.0.1"])
    cp = st.cp()
    dp = st.dp(cp, start=False, listeners=2, conf=dns_conf(st, dns))
    for host, port in (("svc.test", dp.listen_ports[0]), ("missing.test", dp.listen_ports[1])):
        svc = cp.ok("POST", "/services", json_body={"host": host, "port": e.port})
        cp.ok("POST", "/routes", json_body={"protocols": ["tcp"],
                                            "service": {"id": svc["id"]},
                                            "destinations": [{"port": port}]})
    dp.start()
    dp.wait_synced()
    assert pinged(dp.listen_ports[0])
    assert not pinged(dp.listen_ports[1])
    dp.wait_log(r"name resolution failed: service host 'missing\.test' has no address")
    dp.wait_log(r"status 503")
    assert dns.asked("missing.test") >= 1


def test_hosts_file_first_and_dns_order(st, dns):
    a = st.echo()
    dns.set("aonly.test", "A", 300, ["127.0.0.1"])
    cp, dp = pool(st, dns, [f"fromhosts.test:{a.port}", f"alias.test:{a.port}",
                            f"aonly.test:{a.port}"],
                  conf={"dns_order": "A"},
                  hosts="# a comment\n127.0.0.1\tfromhosts.test alias.test  # two names\n")
    for _ in range(6):
        assert pinged(dp.port)
    _, targets = addresses(dp)
    assert targets == {f"fromhosts.test:{a.port}": "HEALTHCHECKS_OFF",
                       f"alias.test:{a.port}": "HEALTHCHECKS_OFF",
                       f"aonly.test:{a.port}": "HEALTHCHECKS_OFF"}
    # the hosts file answered
    assert dns.asked("fromhosts.test") == 0 and dns.asked("alias.test") == 0
    assert dns.asked("aonly.test", "A") >= 1
    assert dns.asked("aonly.test", "SRV") == 0  # not in dns_order


@pytest.mark.parametrize("use_srv_name", [True, False])
def test_use_srv_name_is_the_sni_of_a_tls_service(st, dns, pki, use_srv_name):
    cert, key = pki.leaf(f"srv-leaf-{use_srv_name}", "a.srv.test")
    up = st.tls_echo(cert, key)
    dns.set("_tls._tcp.srv.test", "SRV", 300, [f"10 1 {up.port} a.srv.test."])
    dns.set("a.srv.test", "A", 300, ["127.0.0.1"])
    cp, dp = pool(st, dns, ["_tls._tcp.srv.test"], upstream={"use_srv_name": use_srv_name},
                  service={"protocol": "tls"})
    assert pinged(dp.port)
    # Kong: with use_srv_name the SRV record's name, else the target's host
    want = "a.srv.test" if use_srv_name else "_tls._tcp.srv.test"
    assert [c["sni"] for c in up.conns] == [want]


def test_aaaa_records_when_dns_order_asks(st, dns):
    (e,) = echos(st, ["::1"])
    dns.set("six.test", "AAAA", 300, ["::1"])
    dns.set("six.test", "A", 300, ["127.0.0.9"])  # not asked: dns_order has AAAA only
    cp, dp = pool(st, dns, [f"six.test:{e.port}"], conf={"dns_order": "AAAA"})
    for _ in range(3):
        assert pinged(dp.port)
    assert served(e) == 3
    assert set(addresses(dp)[0]) == {("::1", e.port)}
    assert dns.asked("six.test", "A") == 0
