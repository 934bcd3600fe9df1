# Guards issue 14, defect 7: the data plane caps its sessions (stream_max_sessions), for
# all its workers together. At the cap the listeners stop accepting: the next client waits
# in the backlog, unserved, while /status/ready keeps answering; when a session ends the
# waiting client is served. The cap is logged once when reached and once when it clears
# (not per connection), and shown in /status and /metrics. `auto` derives the cap from the
# descriptor limit: (nofile - reserve) / 2, each plain session holding two descriptors.

import os
import select
import socket
import stat

from conftest import DP_BIN, holds_for, recv_exact, scaled, wait_for

CAP = 20


def nothing_to_read(sock):
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def log_lines(proc, text):
    return [ln for ln in proc.log_text().splitlines() if text in ln]


def test_sessions_capped_then_served(st, echo):
    cp = st.cp()
    dp = st.dp(cp, start=False, conf={"stream_max_sessions": CAP, "worker_processes": 2})
    svc = cp.service("echo", echo.port)
    cp.route(svc, destinations=[{"port": dp.port}])
    dp.start()
    dp.wait_synced()
    assert dp.status()["server"]["connections_max"] == CAP

    held = []
    extra = None
    try:
        for i in range(CAP):
            s = socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10))
            held.append(s)
            msg = f"held-{i:02d}\n".encode()
            s.sendall(msg)
            assert recv_exact(s, len(msg)) == msg
        wait_for(lambda: dp.status()["server"]["connections_active"] == CAP, 10,
                 f"{CAP} sessions open")
        dp.wait_log(rf"\[warn\].*stream_max_sessions: {CAP} sessions reached", since=dp.log_mark)

        # one more client: the kernel completes its handshake, the DP does not take it
        extra = socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10))
        extra.sendall(b"extra\n")
        holds_for(lambda: nothing_to_read(extra) and len(echo.conns) == CAP, 1.0,
                  "the client past the cap waiting, with no upstream connection")
        # the status listener is not behind the cap
        assert dp.status_get("/status/ready").status == 200
        server = dp.status()["server"]
        assert server["connections_active"] == CAP and server["connections_max"] == CAP
        assert server["connections_max_reached"] >= 1
        metrics = dp.status_get("/metrics").raw.decode()
        assert f"strait_connections_max {CAP}\n" in metrics
        assert "strait_connections_max_reached_total " in metrics

        # a session ends: the waiting client is served
        held.pop(0).close()
        assert recv_exact(extra, 6) == b"extra\n"
        dp.wait_log(rf"\[warn\].*stream_max_sessions: below {CAP} sessions again",
                    since=dp.log_mark)
        # the held sessions were never disturbed
        for i, s in enumerate(held):
            s.sendall(b"still\n")
            assert recv_exact(s, 6) == b"still\n"
    finally:
        for s in held:
            s.close()
        if extra is not None:
            extra.close()
    wait_for(lambda: dp.status()["server"]["connections_active"] == 0, 10, "every session to end")
    # once when reached, once when cleared: not a line per connection (a second pair only
    # when the episodes are more than 10 s apart)
    assert 1 <= len(log_lines(dp, "sessions reached, not accepting")) <= 2, dp.log_tail()
    assert 1 <= len(log_lines(dp, "sessions again, accepting")) <= 2, dp.log_tail()
    # below the cap again: new clients are served at once
    with socket.create_connection(("127.0.0.1", dp.port), timeout=scaled(10)) as s:
        s.sendall(b"after\n")
        assert recv_exact(s, 6) == b"after\n"


def test_auto_derived_from_descriptor_limit(st, tmp_path):
    # the DP raises its soft limit to the hard one: pin both at 2048 for it
    wrapper = tmp_path / "strait-dp-nofile-2048"
    wrapper.write_text("#!/bin/sh\n"
                       "ulimit -S -n 2048 && ulimit -H -n 2048 || exit 99\n"
                       f'exec "{DP_BIN}" "$@"\n')
    os.chmod(wrapper, stat.S_IRWXU)
    cp = st.cp()
    dp = st.dp(cp, start=False, conf={"worker_processes": 1})
    dp.binary = str(wrapper)
    dp.start()
    # reserve: 64 (stdio, logs, cluster link, cache, TLS/DNS) + status_max_connections (64)
    # + 3 for the status listener + 1 worker x (epoll, eventfd, 1 listening socket)
    want = (2048 - (64 + 64 + 3 + 1 * 3)) // 2
    assert want == 957
    assert dp.status()["server"]["connections_max"] == want
    assert f"strait_connections_max {want}\n" in dp.status_get("/metrics").raw.decode()
    dp.wait_log(rf"stream_max_sessions = auto: {want} sessions \(descriptor limit 2048,",
                since=dp.log_mark)
