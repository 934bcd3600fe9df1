"""Issue 7, point 4: a data plane with several control planes (`cluster_control_plane =
host:port, host:port`) fails over between them.

- two CPs on one Postgres database, a DP with both addresses: its CP is killed, the DP
  moves to the other (which lists it, and whose writes it follows) while connections
  through the DP keep working (an open one and a stream of new ones); the first CP comes
  back and the DP stays where it is (no flapping back); the second CP dies and the DP
  moves back to the first;
- a CP that hangs (SIGSTOP) is left after cluster_heartbeat + 15 s;
- with Postgres stopped, the same move (and a new DP's first sync) still works: CPs serve
  DPs from memory, so reconnects cost the database nothing;
- a DP whose first CP is dead at start goes on to the next; a DP starts with the entry
  its id picks (the first 8 hex digits modulo the list's length), so a fleet spreads;
- a DP whose only CP is down retries with a growing pause (logged), then connects when
  the CP comes up;
- a bad list is refused at start with one line naming it.

The fixtures are requested as (pg, st): the processes stop before the database is dropped."""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (DP_BIN, _child_env, echo_once, echoes, holds_for, pg_bootstrap, pg_ctl,
                      recv_exact, scaled, wait_for, write_conf)

# ids whose first 8 hex digits pick entry 0 and entry 1 of a two-entry list
ID_FIRST = "00000000-0000-4000-8000-00000000f001"
ID_SECOND = "00000001-0000-4000-8000-00000000f002"


# ----------------------------------------------------------------------------- helpers


def cp_addr(cp):
    return f"127.0.0.1:{cp.cluster_port}"


def failover_dp(st, cps, dp_id, start=True, **kw):
    """A DP whose cluster_control_plane lists cps (Cp objects or "host:port" strings),
    with the id dp_id (written to its prefix before it starts)."""
    addrs = [c if isinstance(c, str) else cp_addr(c) for c in cps]
    home = next(c for c in cps if not isinstance(c, str))
    dp = st.dp(home, start=False, conf={"cluster_control_plane": ", ".join(addrs)}, **kw)
    with open(os.path.join(dp.prefix, "strait.id"), "w") as f:
        f.write(dp_id + "\n")
    if start:
        dp.start()
    return dp


def listed(cp, dp):
    """The DP talks to cp (its status names it) and cp lists it. (On Postgres every CP
    lists every DP of the database: the registry is shared.)"""
    return dp.status().get("control_plane") == cp_addr(cp) and \
        any(d["id"] == dp.dp_id() for d in cp.data_planes())


def move_line(frm, to, reason):
    return (rf"cluster: control plane {re.escape(frm)} unreachable \({reason}\); "
            rf"trying {re.escape(to)}")


class Traffic:
    """New connections through a DP port, one every 20 ms, on a thread: each must echo."""

    def __init__(self, port):
        self.port = port
        self.ok = 0
        self.failed = []
        self.done = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        i = 0
        while not self.done.is_set():
            payload = f"connection {i}\n".encode()
            try:
                got = echo_once(self.port, payload, timeout=5)
                if got == payload:
                    self.ok += 1
                else:
                    self.failed.append((i, got))
            except (OSError, AssertionError) as e:
                self.failed.append((i, repr(e)))
            i += 1
            time.sleep(0.02)

    def stop(self):
        self.done.set()
        self.t.join(timeout=scaled(20))


# ----------------------------------------------------------------------------- tests


def test_dp_moves_to_the_other_cp_when_its_cp_dies(pg, st, echo, tmp_path):
    pg_bootstrap(pg, tmp_path)
    cp1 = st.cp(conf=pg)
    cp2 = st.cp(conf=pg)
    dp = failover_dp(st, [cp1, cp2], ID_FIRST, start=False, listeners=2)
    svc = cp1.service("echo", echo.port)
    cp1.route(svc, name="r1", destinations=[{"port": dp.port}])
    dp.start()
    h = dp.wait_synced()
    dp.wait_log(rf"cluster: 2 control planes; starting with {re.escape(cp_addr(cp1))}")
    wait_for(lambda: listed(cp1, dp), 10, "CP1 to list the DP")
    wait_for(lambda: cp2.status_hash() == h, 20, "CP2 on the same configuration")
    assert not listed(cp2, dp), "one dialer at a time: CP2 has not seen the DP"

    # an open connection, and a stream of new ones, across the move
    held = socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10))
    held.sendall(b"before\n")
    assert recv_exact(held, 7) == b"before\n"
    traffic = Traffic(dp.port)
    try:
        wait_for(lambda: traffic.ok >= 5, 10, "traffic through the DP")
        since = dp.log_size()
        cp1.kill()
        dp.wait_log(move_line(cp_addr(cp1), cp_addr(cp2), "connection lost"), since=since)
        wait_for(lambda: listed(cp2, dp), 20, "CP2 to list the DP")
        dp.wait_log(rf"connected to control plane {re.escape(cp_addr(cp2))}", since=since)

        # the DP follows CP2 now: a write through CP2 reaches it
        cp2.route(svc, name="r2", destinations=[{"port": dp.listen_ports[1]}])
        dp.wait_hash(cp2.status_hash())
        assert echo_once(dp.listen_ports[1], b"via cp2\n") == b"via cp2\n"
        n = traffic.ok
        wait_for(lambda: traffic.ok >= n + 5, 10, "traffic after the move")
    finally:
        traffic.stop()
    assert traffic.failed == [], f"connections failed during the move: {traffic.failed[:5]}"
    held.sendall(b"after\n")
    assert recv_exact(held, 6) == b"after\n"
    held.close()

    # CP1 comes back: the DP stays on CP2 (no flapping back), and still follows writes
    # made through CP1 (they reach CP2 through the database)
    cp1.start()
    holds_for(lambda: not listed(cp1, dp), 3.0, "the DP staying away from CP1")
    cp1.ok("DELETE", "/routes/r2", expect=204)
    dp.wait_hash(cp1.status_hash())
    assert listed(cp2, dp) and not listed(cp1, dp)

    # CP2 dies: the DP moves back to CP1
    since = dp.log_size()
    cp2.kill()
    dp.wait_log(move_line(cp_addr(cp2), cp_addr(cp1), "connection lost"), since=since)
    wait_for(lambda: listed(cp1, dp), 20, "CP1 to list the DP again")
    cp1.route(svc, name="r3", destinations=[{"port": dp.listen_ports[1]}])
    dp.wait_hash(cp1.status_hash())
    assert echoes(dp.port) and echoes(dp.listen_ports[1])


def test_dp_leaves_a_hung_cp(st, echo):
    # A CP that stops answering without closing the connection (SIGSTOP: the kernel keeps
    # the TCP connection up): the DP gives up after cluster_heartbeat + 15 s and moves.
    # Two SQLite CPs, each with a route for the DP's port (different ids: the DP takes
    # CP2's configuration when it moves; both send the traffic to the echo server).
    hb = {"cluster_heartbeat": 1}
    cp1 = st.cp(conf=hb)
    cp2 = st.cp(conf=hb)
    dp = failover_dp(st, [cp1, cp2], ID_FIRST, start=False)
    dp.conf["cluster_heartbeat"] = 1
    for cp in (cp1, cp2):
        svc = cp.service("echo", echo.port)
        cp.route(svc, destinations=[{"port": dp.port}])
    dp.start()
    dp.wait_synced()
    wait_for(lambda: listed(cp1, dp), 10, "CP1 to list the DP")
    since = dp.log_size()
    cp1.p.send_signal(signal.SIGSTOP)
    try:
        dp.wait_log(move_line(cp_addr(cp1), cp_addr(cp2), "no answer within 16 s"), timeout=40,
                    since=since)
        dp.wait_hash(cp2.status_hash())
        wait_for(lambda: listed(cp2, dp), 10, "CP2 to list the DP")
        assert echo_once(dp.port) == b"ping\n"
    finally:
        cp1.p.send_signal(signal.SIGCONT)


def test_failover_needs_no_database(pg, st, echo, tmp_path):
    # A CP serves sync requests from its in-memory snapshot and registry: with Postgres
    # stopped, a DP whose CP dies still moves to the other CP, and a new DP still gets
    # the whole configuration from it. So a fleet failing over costs the database nothing.
    pg_bootstrap(pg, tmp_path)
    cp1 = st.cp(conf=pg)
    cp2 = st.cp(conf=pg)
    dp = failover_dp(st, [cp1, cp2], ID_FIRST, start=False)
    late = failover_dp(st, [cp1, cp2], ID_FIRST, start=False)
    svc = cp1.service("echo", echo.port)
    cp1.route(svc, destinations=[{"port": dp.port}, {"port": late.port}])
    dp.start()
    h = dp.wait_synced()
    wait_for(lambda: cp2.status_hash() == h, 20, "CP2 on the same configuration")
    wait_for(lambda: listed(cp1, dp), 10, "CP1 to list the DP")

    pg_ctl("stop")
    try:
        wait_for(lambda: cp2.get("/status").json["database"]["reachable"] is False, 20,
                 "CP2 to see the database gone")
        since = dp.log_size()
        cp1.kill()
        dp.wait_log(move_line(cp_addr(cp1), cp_addr(cp2), "connection lost"), since=since)
        wait_for(lambda: listed(cp2, dp), 20, "CP2 to list the DP")
        assert echo_once(dp.port) == b"ping\n"
        # a new DP (its first CP dead) gets the whole configuration from CP2
        late.start()
        late.wait_hash(h)
        assert echo_once(late.port) == b"ping\n"
        wait_for(lambda: listed(cp2, late), 10, "CP2 to list the new DP")
    finally:
        pg_ctl("start")


def test_dp_started_with_its_first_cp_dead_uses_the_next(st, echo, ports):
    cp = st.cp()
    dead = f"127.0.0.1:{ports.get()}"  # nothing listens there
    svc = cp.service("echo", echo.port)
    dp = failover_dp(st, [dead, cp], ID_FIRST, start=False)
    cp.route(svc, destinations=[{"port": dp.port}])
    dp.start()
    dp.wait_synced()
    assert echo_once(dp.port) == b"ping\n"
    dp.wait_log(rf"cluster: 2 control planes; starting with {re.escape(dead)}")
    dp.wait_log(move_line(dead, cp_addr(cp),
                          r"no connection within \d+ ms; connection refused \d+ times?"))
    wait_for(lambda: listed(cp, dp), 10, "the CP to list the DP")

    # a DP whose id picks the second entry starts there and never tries the dead one
    dp2 = failover_dp(st, [dead, cp], ID_SECOND)
    dp2.wait_synced()
    dp2.wait_log(rf"cluster: 2 control planes; starting with {re.escape(cp_addr(cp))}")
    assert "unreachable" not in dp2.log_text()
    wait_for(lambda: listed(cp, dp2), 10, "the CP to list the second DP")


def pauses(dp):
    """The pauses the DP logged after each failed round; every failure must be the CP not
    accepting a connection."""
    found = re.findall(r"unreachable \((.*?)\); trying it again in (\d+) ms", dp.log_text())
    for why, _ in found:
        # nothing listens: nng counted refused connections
        assert re.fullmatch(r"no connection within \d+ ms; connection refused \d+ times?", why), \
            found
    return [int(ms) for _, ms in found]


def test_dp_backs_off_until_its_cp_comes_up(st, echo):
    cp = st.cp(start=False)  # its ports are reserved; nothing listens yet
    dp = st.dp(cp, wait=False)
    dp.wait_status_up()
    # each failed round is followed by a pause drawn from [base/2, base], the base
    # doubling from 100 ms up to 5 s
    wait_for(lambda: len(pauses(dp)) >= 4, 60, "four rounds of failures")
    ps = pauses(dp)
    assert all(50 <= p <= 5000 for p in ps), ps
    assert ps[0] <= 100 and ps[3] >= 400, ps
    dp.wait_log(rf"\[warn\].*cluster: control plane {re.escape(cp_addr(cp))} unreachable "
                rf"\(no connection within 3000 ms; connection refused \d+ times?\); "
                rf"trying it again in \d+ ms")
    assert not dp.is_ready()

    cp.start()
    svc = cp.service("echo", echo.port)
    cp.route(svc, destinations=[{"port": dp.port}])
    wait_for(dp.is_ready, 30, "the DP to get its configuration")
    dp.wait_synced()
    assert echo_once(dp.port) == b"ping\n"
    assert listed(cp, dp)


@pytest.mark.parametrize("value, message", [
    ("127.0.0.1:8005,,127.0.0.1:8006",
     "cluster_control_plane: entry 2 of the list is empty (host:port[,host:port...])"),
    ("127.0.0.1:8005, 127.0.0.1:8006,",
     "cluster_control_plane: entry 3 of the list is empty"),
    ("127.0.0.1:8005, cp2.example",
     "cluster_control_plane: 'cp2.example' is not host:port (port 1-65535)"),
    ("127.0.0.1:8005 127.0.0.1:8006",
     "cluster_control_plane: '127.0.0.1:8005 127.0.0.1:8006' is not host:port"),
    ("127.0.0.1:8005, 127.0.0.1:8005",
     "cluster_control_plane: '127.0.0.1:8005' is listed twice"),
])
def test_bad_list_refused(tmp_path, ports, cluster_certs, value, message):
    conf = tmp_path / "strait.conf"
    write_conf(str(conf), {
        "stream_listen": f"127.0.0.1:{ports.get()}",
        "status_listen": f"127.0.0.1:{ports.get()}",
        "cluster_cert": cluster_certs[0],
        "cluster_cert_key": cluster_certs[1],
        "cluster_control_plane": value,
    })
    r = subprocess.run([DP_BIN, "start", "-c", str(conf), "-p", str(tmp_path / "prefix")],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       env=_child_env({}), timeout=scaled(20))
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    # write_conf puts a comment on line 1: the key is on line 6
    assert "strait.conf:6: " + message in lines[0], lines[0]
