# Guards issue 14, defect 6: files that hold secrets are for their owner only. strait.db
# and its -wal and -shm (the WAL held a PRIVATE KEY), `config db_export` files, the DP's
# config.cache, strait.id and generated default keys are created 0600, in a prefix the
# binary creates 0700. An existing prefix is left as the operator made it, with a warning,
# and an existing file that holds secrets and is open to other users gets one warn line at
# start.

import os
import shutil
import stat
import subprocess

from conftest import CP_BIN, _child_env, scaled, wait_for, write_conf


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def fresh_prefix(proc):
    """Points proc at a prefix that does not exist yet, so the binary creates it."""
    proc.prefix = os.path.join(proc.dir, "fresh-prefix")
    assert not os.path.exists(proc.prefix)


def exposed_lines(proc):
    return [ln for ln in proc.log_text().splitlines()
            if "[warn]" in ln and "other users can" in ln]


def test_cp_creates_private_files(st, tmp_path):
    cp = st.cp(start=False)
    fresh_prefix(cp)
    cp.start()
    cp.service("s1", 9000)  # a write: the WAL has content
    db = os.path.join(cp.prefix, "strait.db")
    assert mode(cp.prefix) == 0o700
    for f in (db, db + "-wal", db + "-shm"):
        assert os.path.exists(f), f
        assert mode(f) == 0o600, (f, oct(mode(f)))

    out = tmp_path / "export.yml"
    write_conf(cp.conf_path, cp.conf)
    r = subprocess.run([CP_BIN, "config", "db_export", str(out), "-c", cp.conf_path,
                        "-p", cp.prefix], capture_output=True, text=True,
                       timeout=scaled(30), env=_child_env({}))
    assert r.returncode == 0, r
    assert "s1" in out.read_text()
    assert mode(out) == 0o600, oct(mode(out))
    assert exposed_lines(cp) == []


def test_dp_creates_private_files(st):
    cp = st.cp()
    dp = st.dp(cp, start=False, listen_flags=["ssl"])  # ssl: the default keys are made
    fresh_prefix(dp)
    dp.start()
    dp.wait_synced()
    cache = os.path.join(dp.prefix, "config.cache")
    wait_for(lambda: os.path.exists(cache), 10, "config.cache written")
    assert mode(dp.prefix) == 0o700
    assert mode(os.path.join(dp.prefix, "ssl")) == 0o700
    for name in ("config.cache", "strait.id", "ssl/strait-default.key",
                 "ssl/strait-default-ecdsa.key"):
        path = os.path.join(dp.prefix, name)
        assert mode(path) == 0o600, (name, oct(mode(path)))
    assert mode(os.path.join(dp.prefix, "ssl/strait-default.crt")) == 0o644
    assert exposed_lines(dp) == []


def test_warns_about_exposed_files(st, tmp_path):
    # the CP: an operator-made 0755 prefix and a strait.db of an older version, 0644
    cp = st.cp(start=False)
    os.chmod(cp.prefix, 0o755)
    db = os.path.join(cp.prefix, "strait.db")
    open(db, "w").close()  # an empty file is an empty SQLite database
    os.chmod(db, 0o644)
    cp.start()
    lines = exposed_lines(cp)
    assert len([ln for ln in lines if f"{db} holds" in ln]) == 1, lines
    assert any(f"{db} holds" in ln and "(mode 0644)" in ln for ln in lines), lines
    prefix_lines = [ln for ln in lines if f"prefix {cp.prefix}:" in ln]
    assert len(prefix_lines) == 1 and "(mode 0755)" in prefix_lines[0], lines
    assert mode(cp.prefix) == 0o755  # warned about, never changed behind the operator's back
    assert mode(db) == 0o644

    # the DP: a strait.id and a cluster key readable by everyone
    key = str(tmp_path / "cluster-open.key")
    shutil.copyfile(st.certs[1], key)
    os.chmod(key, 0o644)
    dp = st.dp(cp, start=False, conf={"cluster_cert_key": key})
    with open(os.path.join(dp.prefix, "strait.id"), "w") as f:
        f.write("5d6f7f61-2b1a-4c1e-9d7e-0e4f5a6b7c8d\n")
    os.chmod(os.path.join(dp.prefix, "strait.id"), 0o644)
    dp.start()
    lines = exposed_lines(dp)
    assert len([ln for ln in lines if "strait.id holds" in ln]) == 1, lines
    assert len([ln for ln in lines if f"{key} holds" in ln]) == 1, lines
    assert all("(mode 0644)" in ln for ln in lines if " holds " in ln), lines
    assert dp.dp_id() == "5d6f7f61-2b1a-4c1e-9d7e-0e4f5a6b7c8d"
