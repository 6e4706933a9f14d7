"""The forked snapshot writer runs as background work."""

from __future__ import annotations

import os
import time

from raftkv.raft.snapshot_writer import SnapshotWriter, WriterState


def test_the_child_runs_at_the_lowest_priority(tmp_path):
    """Members that snapshot at the same index would otherwise stall their
    ticks at once, their children taking the cores."""
    path = str(tmp_path / "niceness")

    def write(p: str) -> None:
        with open(p, "w") as f:
            f.write(str(os.nice(0)))

    writer = SnapshotWriter()
    assert writer.start(path, write)
    deadline = time.monotonic() + 30
    while (state := writer.poll()) is WriterState.WRITING:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert state is WriterState.DONE
    assert int(open(path).read()) == 19
