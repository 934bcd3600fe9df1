# Guards the README's tours (issue 2, point 2; issue 3, "the seed's openssl line works
# against a README example"): the lines between the `tour:begin`/`tour:end` and
# `tls-tour:begin`/`tls-tour:end` markers of README.md are run here, verbatim except for
# the well-known local ports, which are mapped to this test's ports: the curl and openssl
# lines with the real tools (in a scratch folder), and the `printf ... | nc` line as a
# client that must get its bytes back from the echo upstream through the data plane.

import os
import re
import subprocess

from conftest import REPO, _child_env, echo_once, scaled

README = os.path.join(REPO, "README.md")
LOCAL_PORTS = ("8001", "8007", "9000", "5555", "5556", "5557")


def block_lines(marker):
    text = open(README).read()
    m = re.search(rf"<!-- {marker}:begin.*?-->\s*```sh\n(.*?)```\s*<!-- {marker}:end -->", text,
                  re.S)
    assert m, f"README.md has no block between {marker}:begin and {marker}:end"
    return [ln for ln in m.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def start_readme_dp(st, cp):
    """A data plane laid out as run-local.sh lays it out: 5555 ssl, 5556, 5557."""
    dp = st.dp(cp, listeners=3, start=False)
    p = dp.listen_ports
    dp.conf["stream_listen"] = f"127.0.0.1:{p[0]} ssl, 127.0.0.1:{p[1]}, 127.0.0.1:{p[2]}"
    # The DP starts before the configuration exists: the tours' changes must reach it.
    dp.start(wait=False)
    dp.wait_status_up()
    return dp


def mapper(cp, dp, echo):
    ports = {"8001": cp.admin_port, "8007": dp.status_port, "9000": echo.port,
             "5555": dp.listen_ports[0], "5556": dp.listen_ports[1], "5557": dp.listen_ports[2]}

    def local(line):
        line = line.replace("localhost:", "127.0.0.1:")
        return re.sub(r"\b(%s)\b" % "|".join(LOCAL_PORTS), lambda m: str(ports[m.group(1)]), line)

    return local


def run_shell(line, cwd, what_ok):
    r = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=_child_env({}),
                       timeout=scaled(30), cwd=cwd)
    assert r.returncode == 0, (line, r.stdout, r.stderr)
    assert what_ok(r.stdout), (line, r.stdout, r.stderr)
    return r.stdout


def run_curl(line, cwd):
    out = run_shell(line + " -w '\\n%{http_code}'", cwd,
                    lambda o: o.rsplit("\n", 1)[-1] in ("200", "201"))
    return out


def test_readme_tours(st, echo, tmp_path):
    lines = block_lines("tour")
    assert any(ln.startswith("curl ") and "url=tcp://" in ln for ln in lines)
    assert any("protocols=tcp" in ln and "destinations[1].port=" in ln for ln in lines)
    tls_lines = block_lines("tls-tour")
    assert any("protocols=tls" in ln for ln in tls_lines)
    assert any("openssl s_client" in ln and "-servername" in ln for ln in tls_lines)

    cp = st.cp()
    dp = start_readme_dp(st, cp)
    local = mapper(cp, dp, echo)

    echoed = 0
    for line in map(local, lines):
        if line.startswith("curl "):
            run_curl(line, tmp_path)
            continue
        m = re.fullmatch(r"printf '(.*)' \| nc -q1 127\.0\.0\.1 (\d+)", line)
        assert m, f"tour line not understood by the test: {line}"
        payload = m.group(1).encode().decode("unicode_escape").encode()
        port = int(m.group(2))
        dp.wait_synced()
        assert echo_once(port, payload) == payload
        assert payload in echo.received()
        echoed += 1
    assert echoed >= 1

    # what the tour created is what Kong would show
    svc = cp.get("/services/echo").json
    assert (svc["protocol"], svc["host"], svc["port"]) == ("tcp", "127.0.0.1", echo.port)
    routes = cp.get("/services/echo/routes").json["data"]
    assert len(routes) == 1
    assert routes[0]["protocols"] == ["tcp"]
    assert [d["port"] for d in routes[0]["destinations"]] == [dp.listen_ports[2]]
    assert dp.status_hash() == cp.status_hash()

    # the TLS tour: a certificate and a tls route, then the seed's openssl line
    for line in map(local, tls_lines):
        if line.startswith("curl "):
            run_curl(line, tmp_path)
        elif "s_client" in line:
            m = re.search(r"printf '(.*?)'", line)
            assert m, line
            payload = m.group(1).encode().decode("unicode_escape").strip()
            dp.wait_synced()
            out = run_shell(line, tmp_path, lambda o: payload in o)
            assert payload in out
        else:
            run_shell(line, tmp_path, lambda o: True)
    routes = cp.get("/services/echo/routes").json["data"]
    tls_routes = [r for r in routes if r["protocols"] == ["tls"]]
    assert len(tls_routes) == 1 and tls_routes[0]["snis"] == ["demo.test"]
    certs = cp.get("/certificates").json["data"]
    assert [c["snis"] for c in certs] == [["demo.test"]]
    # the DP terminated it: its status counts the handshake
    assert dp.status()["tls"]["handshakes"] >= 1
