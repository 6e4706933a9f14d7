"""snapshot save, status and restore; a restored member serves the same keys."""

from __future__ import annotations

import json
import os
import re

import pytest

from cli_helpers import invoke, log_tails

from raftkv.cluster.local import LocalCluster, free_ports


def test_save_and_status(kv, tmp_path):
    kv("put", kv.prefix + "s", "1").ok()
    path = tmp_path / "backup.snap"
    assert kv("snapshot", "save", str(path)).ok().out == f"Snapshot saved at {path}\n"
    assert not (tmp_path / "backup.snap.part").exists()
    line = kv("snapshot", "status", str(path)).ok().out
    assert re.fullmatch(r"[0-9a-f]+, \d+, \d+, \d+(\.\d)? k?B\n", line), line
    data = json.loads(kv("snapshot", "status", str(path), "-w", "json").ok().out)
    assert data["totalSize"] == path.stat().st_size and data["totalKey"] >= 1
    table = kv("snapshot", "status", str(path), "-w", "table").ok().lines
    assert [c.strip() for c in table[1].strip("|").split("|")] == ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"]


def test_status_of_a_damaged_file_is_one_line(kv, tmp_path):
    path = tmp_path / "bad.snap"
    path.write_bytes(b"not a snapshot")
    result = kv("snapshot", "status", str(path))
    assert result.code == 1
    assert result.err.startswith(f"Error: {path}: not a raftkv snapshot")
    assert len(result.err.strip().splitlines()) == 1


def test_restore_refuses_a_used_directory_and_several_members(kv, tmp_path):
    path = tmp_path / "b.snap"
    kv("snapshot", "save", str(path)).ok()
    used = tmp_path / "used"
    used.mkdir()
    (used / "file").write_text("x")
    result = kv("snapshot", "restore", str(path), "--data-dir", str(used))
    assert result.code == 1 and "not empty" in result.err
    result = kv("snapshot", "restore", str(path), "--data-dir", str(tmp_path / "new"), "--name", "a",
                "--initial-cluster", "a=http://127.0.0.1:1,b=http://127.0.0.1:2")
    assert result.code == 2 and "member add" in result.err


@pytest.mark.timeout(120)
def test_restore_gives_a_member_with_the_same_keys_revisions_and_leases(kv, tmp_path):
    p = kv.prefix
    kv("put", p + "a", "1").ok()
    kv("put", p + "a", "2").ok()
    lease = kv("lease", "grant", "600").ok().out.split()[1]
    kv("put", p + "leased", "x", "--lease", lease).ok()
    before = json.loads(kv("get", p, "--prefix", "-w", "json").ok().out)
    path = tmp_path / "backup.snap"
    kv("snapshot", "save", str(path)).ok()
    revision = json.loads(kv("snapshot", "status", str(path), "-w", "json").ok().out)["revision"]

    restored = LocalCluster(1, str(tmp_path / "restored"))
    member = restored.members[0]
    result = invoke(None, "snapshot", "restore", str(path), "--data-dir", member.data_dir,
                    "--name", member.name, "--initial-advertise-peer-urls", member.peer_url).ok()
    assert f"into {member.data_dir} for member {member.name}" in result.out
    assert "raftkv serve --name m0" in result.out
    try:
        restored.start()
        after = json.loads(invoke(member.endpoint, "get", p, "--prefix", "-w", "json").ok().out)
        assert after["kvs"] == before["kvs"]  # values, create/mod revisions, versions, leases
        status = json.loads(invoke(member.endpoint, "endpoint", "status", "-w", "json").ok().out)
        assert status[0]["Status"]["header"]["revision"] == revision
        assert lease in invoke(member.endpoint, "lease", "list").ok().lines
        put = json.loads(invoke(member.endpoint, "put", p + "new", "1", "-w", "json").ok().out)
        assert put["header"]["revision"] == revision + 1
        old = invoke(member.endpoint, "get", p + "a", "--rev", str(revision - 1))
        assert old.code == 1 and "compacted" in old.err
    except AssertionError:
        raise AssertionError(log_tails(restored)) from None
    finally:
        restored.stop()


def test_restore_writes_files_only(kv, tmp_path):
    """Restore starts no member (as etcdctl's): it works while the member's
    peer port is in use, and the directory holds the member's identity,
    a snapshot and a log."""
    import socket

    path = tmp_path / "b.snap"
    kv("snapshot", "save", str(path)).ok()
    (port,) = free_ports(1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        result = invoke(None, "snapshot", "restore", str(path), "--data-dir", str(tmp_path / "d"),
                        "--initial-advertise-peer-urls", f"http://127.0.0.1:{port}")
    assert result.code == 0, result.err
    assert sorted(os.listdir(tmp_path / "d")) == ["member.json", "raft.log.00000000", "raft.log.meta", "snapshot"]