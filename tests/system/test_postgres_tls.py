"""Issue 6, point 1: TLS between the CP and Postgres (pg_ssl, pg_ssl_verify, pg_ssl_ca)
against the test command's throwaway server, which accepts TLS with a certificate for
localhost and 127.0.0.1 signed by its own CA (STRAIT_TEST_PG_CA)."""
import os
import subprocess

import pytest

from conftest import CP_BIN, openssl_cli, pg_psql, scaled, wait_for


def pg_test_ca():
    ca = os.environ.get("STRAIT_TEST_PG_CA")
    if not ca:
        pytest.fail("STRAIT_TEST_PG_CA is unset: run through scripts/test.sh", pytrace=False)
    return ca


def bootstrap(conf_keys, tmp):
    path = os.path.join(tmp, "migrate.conf")
    with open(path, "w") as f:
        for k, v in dict(conf_keys, cluster_mtls="off").items():
            f.write(f"{k} = {v}\n")
    r = subprocess.run([CP_BIN, "migrations", "bootstrap", "-c", path, "-p", tmp],
                       capture_output=True, text=True, timeout=scaled(60))
    assert r.returncode == 0, r.stderr


def ssl_connections(db):
    """How many of strait-cp's connections to db use TLS, and how many do not."""
    out = pg_psql("strait", "SELECT s.ssl, count(*) FROM pg_stat_activity a"
                            " JOIN pg_stat_ssl s USING (pid)"
                            f" WHERE a.datname = '{db}' AND a.application_name = 'strait-cp'"
                            " GROUP BY s.ssl")
    counts = {"t": 0, "f": 0}
    for line in out.split():
        flag, n = line.split("|")
        counts[flag] = int(n)
    return counts


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_verified_tls_to_postgres(st, pg, tmp_path, host):
    """pg_ssl + pg_ssl_verify with the right CA: the CP starts, serves writes, and every
    one of its connections to the database is encrypted."""
    bootstrap(pg, str(tmp_path))
    cp = st.cp(conf=dict(pg, pg_host=host, pg_ssl=True, pg_ssl_verify=True,
                         pg_ssl_ca=pg_test_ca()))
    cp.ok("POST", "/services", {"name": "over-tls", "url": "tcp://127.0.0.1:9"})
    assert cp.get("/services/over-tls").status == 200
    counts = ssl_connections(pg["pg_database"])
    assert counts["t"] >= 2 and counts["f"] == 0, counts


def test_tls_without_verification(st, pg, tmp_path):
    """pg_ssl alone encrypts (sslmode=require) without checking the server."""
    bootstrap(pg, str(tmp_path))
    cp = st.cp(conf=dict(pg, pg_ssl=True))
    cp.ok("POST", "/services", {"name": "encrypted", "url": "tcp://127.0.0.1:9"})
    counts = ssl_connections(pg["pg_database"])
    assert counts["t"] >= 2 and counts["f"] == 0, counts


def test_plain_by_default(st, pg, tmp_path):
    """Without pg_ssl, the connections are not encrypted (the opposite check, so the
    counting above can fail)."""
    bootstrap(pg, str(tmp_path))
    st.cp(conf=pg)
    counts = ssl_connections(pg["pg_database"])
    assert counts["t"] == 0 and counts["f"] >= 2, counts


def test_wrong_ca_refused(st, pg, tmp_path):
    """A server whose certificate the configured CA did not sign: the CP refuses to
    start, and says why."""
    bootstrap(pg, str(tmp_path))
    other = str(tmp_path / "other-ca.pem")
    openssl_cli("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-days", "1", "-subj", "/CN=not-the-pg-ca",
                "-keyout", str(tmp_path / "other-ca.key"), "-out", other)
    cp = st.cp(conf=dict(pg, pg_ssl=True, pg_ssl_verify=True, pg_ssl_ca=other), start=False)
    cp.start(wait=False)
    wait_for(lambda: not cp.alive(), 30, "the CP to exit")
    cp.expect_dead = True
    assert cp.p.returncode == 1, cp.log_tail()
    assert "certificate verify failed" in cp.log_text(), cp.log_tail()

