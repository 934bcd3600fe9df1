"""Instruction counts of strait-dp's worker on a bounded loopback load (callgrind).

Repeatable (about 1% apart between runs) where bench/run.sh's rates are not on a shared
machine: use it to tell whether a change to the data path costs instructions.

usage: STRAIT_BIN_DIR=<build> /usr/bin/python3 bench/callgrind_dp.py OUTDIR KIND [N]
  KIND: idle, ka (20 connections x N 64-byte echoes), conn (N new connections, one echo
  each), tlska / tlsconn (the same through a tls route on an ssl listener, full handshakes)
Starts a CP and a DP (worker_processes = 1, the DP under valgrind --tool=callgrind,
collecting only inside worker_main) with the system tests' harness, one echo upstream and
one route; runs the load, stops the DP and prints the instructions (Ir) collected.
Needs valgrind.
"""
import glob
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "system"))
import conftest as C

out = os.path.abspath(sys.argv[1]); kind = sys.argv[2]; n = int(sys.argv[3]) if len(sys.argv) > 3 else 0
os.makedirs(out, exist_ok=True)
wrap = os.path.join(out, "dpwrap.sh")
with open(wrap, "w") as f:
    f.write(f"#!/bin/sh\nexec valgrind -q --tool=callgrind --collect-atstart=no --toggle-collect=worker_main "
            f"--callgrind-out-file={out}/cg.{kind}.%p {C.DP_BIN} \"$@\"\n")
os.chmod(wrap, 0o755)
C.Dp.binary = wrap
C.MULT = 10
tmp = tempfile.mkdtemp(prefix="dpseams-cg-")
certs = C.gen_cert(tmp, "cluster")
h = C.Harness(tmp, C.PortAllocator(), certs)
try:
    cp = h.cp()
    echo = h.echo()
    svc = cp.service("s", echo.port)
    tls = kind.startswith("tls")
    dp = h.dp(cp, conf={"worker_processes": 1, "log_level": "notice"},
              listen_flags=["ssl"] if tls else None)
    if tls:
        cp.route(svc, name="r", protocols=["tls"], snis=["bench.test"])
    else:
        cp.route(svc, name="r", destinations=[{"port": dp.port}])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    def conn():
        c = socket.create_connection(("127.0.0.1", dp.port))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return ctx.wrap_socket(c, server_hostname="bench.test") if tls else c
    dp.wait_synced(60)
    msg = b"x" * 64
    if kind in ("ka", "tlska"):
        conns = [conn() for _ in range(20)]
        for i in range(n):
            for c in conns:
                c.sendall(msg)
            for c in conns:
                C.recv_exact(c, 64)
        for c in conns:
            c.close()
    elif kind in ("conn", "tlsconn"):
        for i in range(n):
            c = conn()
            c.sendall(msg)
            C.recv_exact(c, 64)
            c.close()
    dp.stop(timeout=60)
finally:
    h.teardown()
    subprocess.run(["rm", "-rf", tmp])
files = glob.glob(f"{out}/cg.{kind}.*")
f = max(files, key=os.path.getmtime)
tot = subprocess.run(["callgrind_annotate", f], capture_output=True, text=True).stdout
m = re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", tot) or re.search(r"([\d,]+)\s+PROGRAM TOTALS", tot)
print(kind, n, m.group(1) if m else tot[:2000])
