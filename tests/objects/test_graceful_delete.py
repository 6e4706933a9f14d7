"""A pod on a node is deleted gracefully when asked: Terminating until its
node's delete with grace 0; everything else goes at once."""

from __future__ import annotations

import pytest

from raftkv.objects import BadRequest, NotFound

from .helpers import configmap, pod


def placed(name: str, **spec) -> dict:
    obj = pod(name)
    obj["spec"].update(nodeName="n1", **spec)
    return obj


def test_a_placed_pod_waits_for_its_node(store, clock):
    store.create(placed("web"))
    terminating = store.delete("pods", "web", graceful=True)
    m = terminating["metadata"]
    assert m["deletionGracePeriodSeconds"] == 30
    assert m["deletionTimestamp"] == "2023-11-14T22:13:50Z"  # the clock's 1_700_000_000, plus 30 s
    store.patch("pods", "web", {"status": {"phase": "Running"}})  # the node still reports on it
    assert store.get("pods", "web")["metadata"]["deletionTimestamp"] == m["deletionTimestamp"]
    store.delete("pods", "web", grace_period_seconds=0)  # the node stopped its containers
    with pytest.raises(NotFound):
        store.get("pods", "web")


def test_the_grace_comes_from_the_request_or_the_pod(store):
    store.create(placed("short", terminationGracePeriodSeconds=5))
    assert store.delete("pods", "short", graceful=True)["metadata"]["deletionGracePeriodSeconds"] == 5
    store.create(placed("asked"))
    assert store.delete("pods", "asked", grace_period_seconds=7)["metadata"]["deletionGracePeriodSeconds"] == 7
    store.create(placed("odd"))
    with pytest.raises(BadRequest):
        store.delete("pods", "odd", grace_period_seconds=-1)


def test_unplaced_pods_other_kinds_and_raftkvs_own_deletes_go_at_once(store):
    store.create(pod("pending"))
    store.delete("pods", "pending", graceful=True)
    store.create(configmap("settings"))
    store.delete("configmaps", "settings", grace_period_seconds=30)
    store.create(placed("plain"))
    store.delete("pods", "plain")  # the object layer's own API: no node to wait for
    for kind, name in (("pods", "pending"), ("configmaps", "settings"), ("pods", "plain")):
        with pytest.raises(NotFound):
            store.get(kind, name)


def test_a_pod_with_a_finalizer_stays_after_its_grace_until_the_finalizer_goes(store):
    held = placed("held")
    held["metadata"]["finalizers"] = ["example.com/keep"]
    store.create(held)
    store.delete("pods", "held", graceful=True)
    ended = store.delete("pods", "held", grace_period_seconds=0)
    assert ended["metadata"]["deletionGracePeriodSeconds"] == 0
    store.patch("pods", "held", {"metadata": {"finalizers": None}})
    with pytest.raises(NotFound):
        store.get("pods", "held")
