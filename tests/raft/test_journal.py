"""The durable Raft journal: what pysyncobj needs, plus durability rules it lacks."""

from __future__ import annotations

import os

import pytest

from raftkv.raft import storage
from raftkv.raft.journal import CorruptLog, DurableJournal
from raftkv.raft.log_segments import segment_path, segment_paths


@pytest.fixture
def path(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return str(data_dir / "raft.log")


def last_segment(path):
    return segment_paths(path)[-1]


def entries(journal):
    return [journal[i] for i in range(len(journal))]


def new_journal(path):
    """A journal as a member has one: its term is recorded before it holds entries of that term."""
    j = DurableJournal(path)
    j.setCurrentTerm(9, None)
    return j


def test_entries_survive_reopen_after_sync(path):
    j = new_journal(path)
    j.add(b"a", 1, 1)
    j.add(b"bb", 2, 1)
    j.add(b"", 3, 2)
    j.sync()
    j.close()
    assert entries(DurableJournal(path)) == [(b"a", 1, 1), (b"bb", 2, 1), (b"", 3, 2)]


def test_add_marks_unsynced_until_sync(path):
    j = new_journal(path)
    assert not j.unsynced
    j.add(b"x", 1, 1)
    assert j.unsynced
    j.sync()
    assert not j.unsynced


def test_torn_tail_is_cut_and_later_appends_land_after_it(path):
    j = new_journal(path)
    j.add(b"one", 1, 1)
    j.add(b"two", 2, 1)
    j.sync()
    j.close()
    size = os.path.getsize(last_segment(path))
    with open(last_segment(path), "r+b") as f:  # a crash in the middle of writing the second record
        f.truncate(size - 2)
    j = DurableJournal(path)
    assert entries(j) == [(b"one", 1, 1)]
    j.add(b"three", 2, 2)
    j.sync()
    j.close()
    assert entries(DurableJournal(path)) == [(b"one", 1, 1), (b"three", 2, 2)]


def test_a_damaged_last_record_is_a_torn_tail(path):
    j = new_journal(path)
    j.add(b"good", 1, 1)
    j.add(b"evil", 2, 1)
    j.sync()
    j.close()
    data = bytearray(open(last_segment(path), "rb").read())
    data[-1] ^= 0xFF  # flip a bit in the last command
    open(last_segment(path), "wb").write(bytes(data))
    assert entries(DurableJournal(path)) == [(b"good", 1, 1)]


def test_delete_entries_from_truncates_the_suffix(path):
    j = new_journal(path)
    for i in range(1, 6):
        j.add(b"c%d" % i, i, 1)
    j.deleteEntriesFrom(2)
    j.add(b"new", 3, 2)
    j.sync()
    j.close()
    assert entries(DurableJournal(path)) == [(b"c1", 1, 1), (b"c2", 2, 1), (b"new", 3, 2)]


def small_segments(path, size=20):
    """A journal whose segments hold a record or two each."""
    j = DurableJournal(path, segment_bytes=size)
    j.setCurrentTerm(9, None)
    return j


def add_synced(j, first, last):
    for i in range(first, last + 1):  # one sync per entry: a group of one per segment
        j.add(b"c%d" % i, i, 1)
        j.sync()


def test_delete_entries_to_keeps_the_tail(path):
    j = new_journal(path)
    for i in range(1, 6):
        j.add(b"c%d" % i, i, 1)
    j.deleteEntriesTo(3)
    assert entries(j) == [(b"c4", 4, 1), (b"c5", 5, 1)]
    j.add(b"c6", 6, 1)
    j.sync()
    j.close()
    # the segment keeps what came before the entries kept; reopening reads them back
    assert entries(DurableJournal(path)) == [(b"c%d" % i, i, 1) for i in range(1, 7)]


def test_a_full_segment_is_followed_by_a_new_one(path):
    j = small_segments(path)
    add_synced(j, 1, 6)
    assert len(segment_paths(path)) == 6
    j.close()
    assert entries(DurableJournal(path, segment_bytes=20)) == [(b"c%d" % i, i, 1) for i in range(1, 7)]


def test_delete_entries_to_removes_whole_segments_and_rewrites_nothing(path):
    j = small_segments(path)
    add_synced(j, 1, 6)
    kept = segment_paths(path)[3:]
    inodes = [os.stat(p).st_ino for p in kept]
    j.deleteEntriesTo(3)  # entries 1-3 are in a snapshot now
    j.wait_for_removals()  # they go in the background
    assert segment_paths(path) == kept
    assert [os.stat(p).st_ino for p in kept] == inodes
    assert entries(j) == [(b"c4", 4, 1), (b"c5", 5, 1), (b"c6", 6, 1)]
    j.close()
    assert entries(DurableJournal(path))[0] == (b"c4", 4, 1)


def test_delete_entries_from_removes_later_segments_and_cuts_the_one_it_starts_in(path):
    j = small_segments(path)
    add_synced(j, 1, 6)
    j.deleteEntriesFrom(2)  # a new leader's log differs from entry 3 on
    assert len(segment_paths(path)) == 3  # entry 3's segment is kept, cut to its header
    j.add(b"new", 3, 2)
    j.sync()
    j.close()
    assert entries(DurableJournal(path)) == [(b"c1", 1, 1), (b"c2", 2, 1), (b"new", 3, 2)]


def test_damage_in_a_segment_that_others_follow_is_refused(path):
    """Only the last segment can end in a torn write: a bad record at the
    end of an earlier one is damage, and cutting there would open a gap."""
    j = small_segments(path)
    add_synced(j, 1, 3)
    j.close()
    first = segment_paths(path)[0]
    data = bytearray(open(first, "rb").read())
    data[-1] ^= 0x01
    open(first, "wb").write(bytes(data))
    with pytest.raises(CorruptLog) as e:
        DurableJournal(path)
    assert first in str(e.value) and "later segments" in str(e.value)


def test_a_segment_whose_start_a_crash_interrupted_is_started_again(path):
    j = small_segments(path)
    add_synced(j, 1, 2)
    j.close()
    with open(segment_path(path, 99), "wb") as f:
        f.write(b"RAFTKV-")  # part of the header
    j = DurableJournal(path)
    j.add(b"c3", 3, 1)
    j.sync()
    j.close()
    assert entries(DurableJournal(path)) == [(b"c1", 1, 1), (b"c2", 2, 1), (b"c3", 3, 1)]


def test_a_log_from_before_segments_becomes_the_first_segment(path):
    j = new_journal(path)
    j.add(b"old", 1, 1)
    j.sync()
    j.close()
    os.rename(last_segment(path), path)  # the one-file layout of earlier versions
    assert entries(DurableJournal(path)) == [(b"old", 1, 1)]
    assert not os.path.exists(path) and len(segment_paths(path)) == 1


def test_after_a_power_loss_removed_segments_stay_removed(path, tmp_path, monkeypatch):
    """clear() starts a new segment and removes the old ones durably: if an
    old one came back, the log would hold entries the next ones do not follow."""
    shadow = tmp_path / "shadow"
    monkeypatch.setenv(storage.SHADOW_ENV, str(shadow))
    j = small_segments(path)
    add_synced(j, 1, 4)
    j.clear()
    j.add(b"b", 9, 3)
    j.sync()
    storage.restore_shadow(os.path.dirname(path), str(shadow))
    assert entries(DurableJournal(path)) == [(b"b", 9, 3)]


def test_clear(path):
    j = new_journal(path)
    j.add(b"a", 1, 1)
    j.clear()
    j.add(b"b", 7, 3)
    j.sync()
    j.close()
    assert entries(DurableJournal(path)) == [(b"b", 7, 3)]


def test_term_and_vote_are_durable_when_set(path, tmp_path, monkeypatch):
    """The vote must be on disk before a vote reply can leave the member:
    with a power-loss shadow, the shadow already has it when the call returns."""
    shadow = tmp_path / "shadow"
    monkeypatch.setenv(storage.SHADOW_ENV, str(shadow))
    j = new_journal(path)
    j.setCurrentTerm(7, "127.0.0.1:2380")
    data_dir = os.path.dirname(path)
    storage.restore_shadow(data_dir, str(shadow))
    j2 = DurableJournal(path)
    assert (j2.getCurrentTerm(), j2.getVotedForNodeId()) == (7, "127.0.0.1:2380")


def test_power_loss_drops_unsynced_entries_only(path, tmp_path, monkeypatch):
    shadow = tmp_path / "shadow"
    monkeypatch.setenv(storage.SHADOW_ENV, str(shadow))
    j = new_journal(path)
    j.add(b"acked", 1, 1)
    j.sync()
    j.add(b"not-synced", 2, 1)
    storage.restore_shadow(os.path.dirname(path), str(shadow))
    assert entries(DurableJournal(path)) == [(b"acked", 1, 1)]


def test_commit_index_is_saved_lazily(path):
    j = new_journal(path)
    j.setRaftCommitIndex(5)
    assert DurableJournal(path).getRaftCommitIndex() == 1
    j.onOneSecondTimer()
    assert DurableJournal(path).getRaftCommitIndex() == 5


def _written(path, commands):
    j = new_journal(path)
    for i, command in enumerate(commands, start=1):
        j.add(command, i, 1)
    j.sync()
    j.close()
    return bytearray(open(last_segment(path), "rb").read())


def test_damage_with_valid_records_after_it_is_refused(path):
    """Bit rot in the middle is not a crash: cutting there would drop
    acknowledged entries, so the journal refuses, naming file and offset."""
    data = _written(path, [b"one" * 10, b"two" * 10, b"three" * 10])
    second = data.index(b"two")
    data[second + 3] ^= 0x01
    open(last_segment(path), "wb").write(bytes(data))
    with pytest.raises(CorruptLog) as e:
        DurableJournal(path)
    assert last_segment(path) in str(e.value) and "byte" in str(e.value) and "member remove" in str(e.value)
    assert os.path.getsize(last_segment(path)) == len(data)  # nothing cut


def test_a_damaged_length_with_records_after_it_is_refused(path):
    data = _written(path, [b"a" * 50, b"b" * 50, b"c" * 50])
    first = data.index(b"a" * 50) - 24  # the first record's header
    data[first] ^= 0x40  # its length
    open(last_segment(path), "wb").write(bytes(data))
    with pytest.raises(CorruptLog):
        DurableJournal(path)


def test_a_damaged_term_record_is_refused(path):
    _written(path, [b"x"])
    meta = path + ".meta"
    text = open(meta).read()
    open(meta, "w").write(text.replace('"term": 9', '"term": 8'))
    with pytest.raises(CorruptLog) as e:
        DurableJournal(path)
    assert meta in str(e.value)


def test_a_missing_term_record_is_refused_when_the_log_has_terms(path):
    _written(path, [b"x"])
    os.remove(path + ".meta")
    with pytest.raises(CorruptLog) as e:
        DurableJournal(path)
    assert "vote" in str(e.value)


def test_restart_from_keeps_what_follows_the_snapshot(path):
    j = new_journal(path)
    for i in range(1, 8):
        j.add(b"c%d" % i, i, 1)
    j.restart_from([(b"c4", 4, 1), (b"c5", 5, 1)])
    assert entries(j) == [(b"c4", 4, 1), (b"c5", 5, 1), (b"c6", 6, 1), (b"c7", 7, 1)]
    j.close()
    j = DurableJournal(path)  # reopened: as a member starts, from its snapshot
    j.restart_from([(b"c4", 4, 1), (b"c5", 5, 1)])
    assert entries(j)[0] == (b"c4", 4, 1)


def test_restart_from_replaces_a_log_that_does_not_hold_the_snapshot(path):
    j = new_journal(path)
    for i in range(1, 4):
        j.add(b"c%d" % i, i, 1)
    j.restart_from([(b"x", 6, 2), (b"y", 7, 2)])  # the log ends before the snapshot
    assert entries(j) == [(b"x", 6, 2), (b"y", 7, 2)]
    j2 = new_journal(path + "2")
    for i in range(1, 6):
        j2.add(b"c%d" % i, i, 1)
    j2.restart_from([(b"other", 3, 2), (b"c4", 4, 1)])  # a different entry at the snapshot's place
    assert entries(j2) == [(b"other", 3, 2), (b"c4", 4, 1)]


def test_restart_from_refuses_a_log_that_starts_after_the_snapshot(path):
    j = new_journal(path)
    j.add(b"c1", 1, 1)
    j.add(b"c2", 2, 1)
    j.add(b"c3", 3, 1)
    j.deleteEntriesTo(2)  # the log now starts at entry 3
    with pytest.raises(CorruptLog):
        j.restart_from([(b"c1", 1, 1), (b"c2", 2, 1)])


def test_the_size_counts_the_entries_held_not_the_files(path):
    j = small_segments(path)
    add_synced(j, 1, 6)
    record = 24 + 2  # header and b"cN"
    assert j.size_bytes == 6 * record
    j.deleteEntriesTo(4)
    assert j.size_bytes == 2 * record
    j.deleteEntriesFrom(1)
    assert j.size_bytes == record
