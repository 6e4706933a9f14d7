"""The power-loss shadow itself (raftkv.raft.storage): what it keeps must be
what a real power cut would have kept, whenever the process dies."""

from __future__ import annotations

import pytest

from raftkv.raft import storage


class Crash(BaseException):
    """The process dying at this point (kill -9)."""


def test_a_kill_while_copying_to_the_shadow_keeps_what_was_synced_before(tmp_path, monkeypatch):
    data_dir, shadow_root = tmp_path / "data", tmp_path / "shadow"
    data_dir.mkdir()
    monkeypatch.setenv(storage.SHADOW_ENV, str(shadow_root))
    f = storage.DurableFile(str(data_dir / "raft.log"))
    f.append(b"synced", 0)
    f.sync()
    f.append(b"+more", 6)

    def die(self):  # the first step after the shadow file has been opened for writing
        raise Crash()

    monkeypatch.setattr(storage.DurableFile, "read_all", die)
    with pytest.raises(Crash):
        f.sync()
    monkeypatch.undo()

    storage.restore_shadow(str(data_dir), str(shadow_root))
    with open(data_dir / "raft.log", "rb") as restored:
        assert restored.read() in (b"synced", b"synced+more")


def test_synced_bytes_survive_and_unsynced_ones_do_not(tmp_path, monkeypatch):
    data_dir, shadow_root = tmp_path / "data", tmp_path / "shadow"
    data_dir.mkdir()
    monkeypatch.setenv(storage.SHADOW_ENV, str(shadow_root))
    f = storage.DurableFile(str(data_dir / "raft.log"))
    f.append(b"synced", 0)
    f.sync()
    f.append(b"+lost", 6)
    f.close()
    storage.replace_file(str(data_dir / "meta"), b"m1")
    storage.replace_file(str(data_dir / "meta"), b"m2")
    monkeypatch.delenv(storage.SHADOW_ENV)
    storage.restore_shadow(str(data_dir), str(shadow_root))
    assert (data_dir / "raft.log").read_bytes() == b"synced"
    assert (data_dir / "meta").read_bytes() == b"m2"
