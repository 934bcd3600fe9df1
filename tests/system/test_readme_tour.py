# Guards issue 2, point 2: the README's tour works as written. The lines between the
# `tour:begin` and `tour:end` markers of README.md are run here, verbatim except for the
# well-known local ports, which are mapped to this test's ports: the curl lines with the
# real curl against the control plane, and the `printf ... | nc` line as a client that
# must get its bytes back from the echo upstream through the data plane.

import os
import re
import subprocess

from conftest import REPO, _child_env, echo_once, scaled

README = os.path.join(REPO, "README.md")


def tour_lines():
    text = open(README).read()
    m = re.search(r"<!-- tour:begin.*?-->\s*```sh\n(.*?)```\s*<!-- tour:end -->", text, re.S)
    assert m, "README.md has no tour block between tour:begin and tour:end"
    return [ln for ln in m.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_tour(st, echo):
    lines = tour_lines()
    assert any(ln.startswith("curl ") and "url=tcp://" in ln for ln in lines)
    assert any("protocols=tcp" in ln and "destinations[1].port=" in ln for ln in lines)

    cp = st.cp()
    dp = st.dp(cp, listeners=2, start=False)
    ports = {"8001": cp.admin_port, "8007": dp.status_port, "9000": echo.port,
             "5555": dp.listen_ports[0], "5556": dp.listen_ports[1]}

    def local(line):
        line = line.replace("localhost:", "127.0.0.1:")
        return re.sub(r"\b(8001|8007|9000|5555|5556)\b", lambda m: str(ports[m.group(1)]), line)

    # The DP starts before the configuration exists: the tour's changes must reach it.
    dp.start(wait=False)
    dp.wait_status_up()

    echoed = 0
    for line in lines:
        line = local(line)
        if line.startswith("curl "):
            r = subprocess.run(["bash", "-c", line + " -w '\\n%{http_code}'"],
                               capture_output=True, text=True, env=_child_env({}),
                               timeout=scaled(20))
            assert r.returncode == 0, (line, r.stderr)
            code = r.stdout.rsplit("\n", 1)[-1]
            assert code in ("200", "201"), (line, r.stdout)
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
    assert [d["port"] for d in routes[0]["destinations"]] == [dp.listen_ports[1]]
    assert dp.status_hash() == cp.status_hash()
