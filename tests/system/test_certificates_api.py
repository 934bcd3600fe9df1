# Guards issue 3, point 1 (admin side): Kong's /certificates, /snis and /ca_certificates
# on the control plane. A certificate (EC or RSA, made here with the openssl command line)
# is written with its `snis` shorthand (JSON and multipart), read back with its names
# sorted and by one of its names; Kong's refusals (a duplicated name, a name another
# certificate owns, a key that does not match, garbage PEM, a CA certificate that is not
# a CA) leave nothing behind; DELETE takes the certificate's snis with it. A tls service
# with tls_verify, ca_certificates and client_certificate is accepted.

import subprocess

import pytest

from conftest import scaled


@pytest.fixture
def cp(st):
    return st.cp()


def openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=scaled(60))
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"


def make_cert(tmp_path, stem, kind="ec", cn="strait.test", ca=False):
    """A key and a self-signed certificate in PEM files; returns (cert_path, key_path)."""
    cert = str(tmp_path / f"{stem}.crt")
    key = str(tmp_path / f"{stem}.key")
    newkey = "ec" if kind == "ec" else "rsa:2048"
    args = ["req", "-x509", "-newkey", newkey, "-nodes", "-keyout", key, "-out", cert,
            "-days", "30", "-subj", f"/CN={cn}"]
    if kind == "ec":
        args[4:4] = ["-pkeyopt", "ec_paramgen_curve:prime256v1"]
    if ca:
        args += ["-addext", "basicConstraints=critical,CA:TRUE"]
    else:
        args += ["-addext", "basicConstraints=critical,CA:FALSE"]
    openssl(*args)
    return cert, key


def read(path):
    with open(path) as f:
        return f.read()


def count(cp, path):
    r = cp.get(path + "?size=1000")
    assert r.status == 200, r
    return len(r.json["data"])


def assert_400(r, message_contains):
    assert r.status == 400, r
    assert message_contains in r.json["message"], r.json


def test_certificate_with_snis_json(cp, tmp_path):
    ec_cert, ec_key = make_cert(tmp_path, "ec", "ec")
    rsa_cert, rsa_key = make_cert(tmp_path, "rsa", "rsa")
    c = cp.ok("POST", "/certificates", json_body={
        "cert": read(ec_cert), "key": read(ec_key),
        "snis": ["a.example.com", "*.wild.example"]}, expect=201)
    assert c["snis"] == sorted(["a.example.com", "*.wild.example"]), c
    r = cp.get(f"/certificates/{c['id']}")
    assert r.status == 200, r
    assert r.json["snis"] == sorted(["a.example.com", "*.wild.example"]), r.json
    r = cp.get("/certificates/a.example.com")
    assert r.status == 200, r
    assert r.json["id"] == c["id"]
    snis = cp.get("/snis").json["data"]
    assert sorted(s["name"] for s in snis) == sorted(["a.example.com", "*.wild.example"])
    assert all(s["certificate"]["id"] == c["id"] for s in snis), snis

    # an RSA certificate is accepted too
    r2 = cp.ok("POST", "/certificates", json_body={
        "cert": read(rsa_cert), "key": read(rsa_key), "snis": ["r.example.com"]}, expect=201)
    assert r2["snis"] == ["r.example.com"]
    assert count(cp, "/certificates") == 2
    assert count(cp, "/snis") == 3


def test_certificate_refusals_leave_nothing(cp, tmp_path):
    ec_cert, ec_key = make_cert(tmp_path, "ec", "ec")
    rsa_cert, rsa_key = make_cert(tmp_path, "rsa", "rsa")
    h0 = cp.status_hash()

    r = cp.api("POST", "/certificates", json_body={
        "cert": read(ec_cert), "key": read(ec_key), "snis": ["x", "x"]})
    assert r.status == 400, r
    assert r.json["message"] == "schema violation (snis: x is duplicated)", r.json
    assert count(cp, "/certificates") == 0 and count(cp, "/snis") == 0

    owner = cp.ok("POST", "/certificates", json_body={
        "cert": read(ec_cert), "key": read(ec_key), "snis": ["owned.example.com"]}, expect=201)
    h1 = cp.status_hash()
    assert h1 != h0
    r = cp.api("POST", "/certificates", json_body={
        "cert": read(rsa_cert), "key": read(rsa_key), "snis": ["owned.example.com"]})
    assert_400(r, "already associated with existing certificate")
    assert count(cp, "/certificates") == 1 and count(cp, "/snis") == 1

    r = cp.api("POST", "/certificates", json_body={"cert": read(ec_cert), "key": read(rsa_key)})
    assert_400(r, "certificate does not match key")

    r = cp.api("POST", "/certificates", json_body={
        "cert": "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
        "key": read(ec_key)})
    assert r.status == 400, r
    assert r.json["message"].startswith("schema violation (cert: invalid certificate"), r.json

    assert count(cp, "/certificates") == 1 and count(cp, "/snis") == 1
    assert cp.status_hash() == h1
    assert cp.get(f"/certificates/{owner['id']}").json["snis"] == ["owned.example.com"]


def test_certificate_multipart_and_delete(cp, tmp_path):
    cert, key = make_cert(tmp_path, "mp", "ec")
    r = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "-o", str(tmp_path / "body"), "-w", "%{http_code}",
         "-F", f"cert=@{cert}", "-F", f"key=@{key}", "-F", "snis[]=m.example.com",
         f"{cp.base}/certificates"],
        capture_output=True, text=True, timeout=scaled(20))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "201", (r.stdout, read(tmp_path / "body"))
    got = cp.get("/certificates/m.example.com")
    assert got.status == 200, got
    assert got.json["cert"] == read(cert)
    assert got.json["key"] == read(key)
    assert got.json["snis"] == ["m.example.com"]

    h = cp.status_hash()
    r = cp.api("DELETE", f"/certificates/{got.json['id']}")
    assert r.status == 204, r
    assert cp.get(f"/certificates/{got.json['id']}").status == 404
    assert cp.get("/snis/m.example.com").status == 404
    assert count(cp, "/snis") == 0
    assert cp.status_hash() != h


def test_ca_certificates(cp, tmp_path):
    ca_cert, _ = make_cert(tmp_path, "ca", "ec", cn="Strait Test CA", ca=True)
    leaf_cert, _ = make_cert(tmp_path, "leaf", "ec")
    c = cp.ok("POST", "/ca_certificates", json_body={"cert": read(ca_cert)}, expect=201)
    assert isinstance(c.get("cert_digest"), str) and len(c["cert_digest"]) == 64, c
    r = cp.api("POST", "/ca_certificates", json_body={"cert": read(leaf_cert)})
    assert_400(r, 'missing the "CA" basic constraint')
    assert count(cp, "/ca_certificates") == 1


def test_service_tls_fields_accepted(cp, tmp_path):
    # issue 3: a tls service with verification, CA certificates and a client certificate
    # is accepted and published; the CA certificate it references cannot be deleted.
    ca_cert, _ = make_cert(tmp_path, "ca", "ec", cn="Strait Test CA", ca=True)
    cl_cert, cl_key = make_cert(tmp_path, "client", "ec", cn="client")
    ca = cp.ok("POST", "/ca_certificates", json_body={"cert": read(ca_cert)}, expect=201)
    cc = cp.ok("POST", "/certificates", json_body={"cert": read(cl_cert), "key": read(cl_key)},
               expect=201)
    h = cp.status_hash()
    s = cp.ok("POST", "/services", json_body={
        "name": "t", "protocol": "tls", "host": "upstream.test", "port": 443,
        "tls_verify": True, "tls_verify_depth": 3, "ca_certificates": [ca["id"]],
        "client_certificate": {"id": cc["id"]}}, expect=201)
    assert s["protocol"] == "tls" and s["tls_verify"] is True, s
    assert s["tls_verify_depth"] == 3 and s["ca_certificates"] == [ca["id"]], s
    assert s["client_certificate"] == {"id": cc["id"]}, s
    assert cp.status_hash() != h
    got = cp.get("/services/t").json
    assert got["ca_certificates"] == [ca["id"]] and got["client_certificate"]["id"] == cc["id"]
    # still referenced: refused
    r = cp.api("DELETE", f"/ca_certificates/{ca['id']}")
    assert r.status == 400, r
    assert count(cp, "/ca_certificates") == 1
