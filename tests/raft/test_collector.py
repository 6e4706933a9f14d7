"""The collector policy of a server process: survivors of a full collection
are frozen, slow passes are logged, and forking for a snapshot keeps to it."""

from __future__ import annotations

import gc
import logging

import pytest

from raftkv.raft import collector


@pytest.fixture
def watched():
    collector.stop_watching_collections()
    yield
    collector.stop_watching_collections()


class Survivor:
    """A tracked object that lives on, as the store's are."""


def test_what_survives_a_full_collection_is_frozen(watched):
    collector.watch_collections(freeze_survivors=True)
    kept = [Survivor() for _ in range(1000)]
    before = gc.get_freeze_count()
    gc.collect()
    assert gc.get_freeze_count() >= before + len(kept)
    assert gc.get_objects(2) == []  # the next full pass has nothing old to walk


def test_without_freezing_the_collector_is_left_alone(watched):
    collector.watch_collections(freeze_survivors=False)
    kept = [Survivor() for _ in range(1000)]
    gc.collect()
    assert gc.get_freeze_count() == 0
    assert len(gc.get_objects(2)) >= len(kept)


def test_a_slow_collection_is_logged(watched, monkeypatch, caplog):
    monkeypatch.setattr(collector, "SLOW_COLLECTION", -1.0)
    collector.watch_collections(freeze_survivors=False)
    with caplog.at_level(logging.WARNING, logger="raftkv.raft.collector"):
        gc.collect()
    assert any("slow garbage collection" in r.getMessage() and "generation=2" in r.getMessage()
               for r in caplog.records)


def test_a_fork_thaws_only_when_survivors_are_not_kept_frozen(watched):
    collector.freeze_before_fork()
    assert gc.get_freeze_count() > 0
    collector.thaw_after_fork()
    assert gc.get_freeze_count() == 0

    collector.watch_collections(freeze_survivors=True)
    collector.freeze_before_fork()
    collector.thaw_after_fork()
    assert gc.get_freeze_count() > 0
