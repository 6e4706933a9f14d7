"""The durable Raft journal: what pysyncobj needs, plus durability rules it lacks."""

from __future__ import annotations

import os

import pytest

from raftkv.raft import storage
from raftkv.raft.journal import DurableJournal


@pytest.fixture
def path(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return str(data_dir / "raft.log")


def entries(journal):
    return [journal[i] for i in range(len(journal))]


def test_entries_survive_reopen_after_sync(path):
    j = DurableJournal(path)
    j.add(b"a", 1, 1)
    j.add(b"bb", 2, 1)
    j.add(b"", 3, 2)
    j.sync()
    j._destroy()
    assert entries(DurableJournal(path)) == [(b"a", 1, 1), (b"bb", 2, 1), (b"", 3, 2)]


def test_add_marks_unsynced_until_sync(path):
    j = DurableJournal(path)
    assert not j.unsynced
    j.add(b"x", 1, 1)
    assert j.unsynced
    j.sync()
    assert not j.unsynced


def test_torn_tail_is_cut_and_later_appends_land_after_it(path):
    j = DurableJournal(path)
    j.add(b"one", 1, 1)
    j.add(b"two", 2, 1)
    j.sync()
    j._destroy()
    size = os.path.getsize(path)
    with open(path, "r+b") as f:  # a crash in the middle of writing the second record
        f.truncate(size - 2)
    j = DurableJournal(path)
    assert entries(j) == [(b"one", 1, 1)]
    j.add(b"three", 2, 2)
    j.sync()
    j._destroy()
    assert entries(DurableJournal(path)) == [(b"one", 1, 1), (b"three", 2, 2)]


def test_corrupt_record_ends_the_log(path):
    j = DurableJournal(path)
    j.add(b"good", 1, 1)
    j.add(b"evil", 2, 1)
    j.sync()
    j._destroy()
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF  # flip a bit in the last command
    open(path, "wb").write(bytes(data))
    assert entries(DurableJournal(path)) == [(b"good", 1, 1)]


def test_delete_entries_from_truncates_the_suffix(path):
    j = DurableJournal(path)
    for i in range(1, 6):
        j.add(b"c%d" % i, i, 1)
    j.deleteEntriesFrom(2)
    j.add(b"new", 3, 2)
    j.sync()
    j._destroy()
    assert entries(DurableJournal(path)) == [(b"c1", 1, 1), (b"c2", 2, 1), (b"new", 3, 2)]


def test_delete_entries_to_keeps_the_tail(path):
    j = DurableJournal(path)
    for i in range(1, 6):
        j.add(b"c%d" % i, i, 1)
    j.deleteEntriesTo(3)
    assert entries(j) == [(b"c4", 4, 1), (b"c5", 5, 1)]
    j.add(b"c6", 6, 1)
    j.sync()
    j._destroy()
    assert entries(DurableJournal(path)) == [(b"c4", 4, 1), (b"c5", 5, 1), (b"c6", 6, 1)]


def test_clear(path):
    j = DurableJournal(path)
    j.add(b"a", 1, 1)
    j.clear()
    j.add(b"b", 7, 3)
    j.sync()
    j._destroy()
    assert entries(DurableJournal(path)) == [(b"b", 7, 3)]


def test_term_and_vote_are_durable_when_set(path, tmp_path, monkeypatch):
    """The vote must be on disk before a vote reply can leave the member:
    with a power-loss shadow, the shadow already has it when the call returns."""
    shadow = tmp_path / "shadow"
    monkeypatch.setenv(storage.SHADOW_ENV, str(shadow))
    j = DurableJournal(path)
    j.setCurrentTerm(7, "127.0.0.1:2380")
    data_dir = os.path.dirname(path)
    storage.restore_shadow(data_dir, str(shadow))
    j2 = DurableJournal(path)
    assert (j2.getCurrentTerm(), j2.getVotedForNodeId()) == (7, "127.0.0.1:2380")


def test_power_loss_drops_unsynced_entries_only(path, tmp_path, monkeypatch):
    shadow = tmp_path / "shadow"
    monkeypatch.setenv(storage.SHADOW_ENV, str(shadow))
    j = DurableJournal(path)
    j.add(b"acked", 1, 1)
    j.sync()
    j.add(b"not-synced", 2, 1)
    storage.restore_shadow(os.path.dirname(path), str(shadow))
    assert entries(DurableJournal(path)) == [(b"acked", 1, 1)]


def test_commit_index_is_saved_lazily(path):
    j = DurableJournal(path)
    j.setRaftCommitIndex(5)
    assert DurableJournal(path).getRaftCommitIndex() == 1
    j.onOneSecondTimer()
    assert DurableJournal(path).getRaftCommitIndex() == 5
