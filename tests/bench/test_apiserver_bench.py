"""bench.apiserver at a small size: both paths list every pod and deliver every event."""

from __future__ import annotations

import pytest

from bench.apiserver import measure, table


@pytest.mark.timeout(240)
def test_lists_and_watches_through_the_apiserver_and_the_object_layer():
    result = measure(pods=120, watchers=4, updates=5, page=50)
    for figures in (result.list_rest, result.list_objects):
        assert figures.items == 120
        assert 0 < figures.selected_ms and 0 < figures.all_ms
    for watch in (result.watch_rest, result.watch_objects):
        assert (watch.watchers, watch.updates, watch.delivered) == (4, 5, 20)
        assert watch.p99_ms is not None and watch.max_ms >= watch.p99_ms >= watch.p50_ms
    assert "| LIST 120 pods, ms |" in table(result)
