"""Watch: events by kind, namespace and selectors, selector transitions,
replay from a resourceVersion, Expired after compaction, bookmarks."""

from __future__ import annotations

import threading

import pytest

import raftkv
from raftkv.objects import Expired, ObjectStore

from .helpers import configmap, namespace, pod

T = 2.0  # seconds to wait for an event that must come
QUIET = 0.2  # seconds to wait for an event that must not come


def _drain(watch, timeout=QUIET):
    events = []
    while (event := watch.next(timeout=timeout)) is not None:
        events.append(event)
    return events


def _summary(events):
    return [(e.type, e.object["metadata"]["name"]) for e in events]


def test_events_for_create_update_delete(store):
    rv = store.list("pods").resource_version
    with store.watch("pods", resource_version=rv) as w:
        created = store.create(pod("p"))
        updated = store.patch("pods", "p", {"spec": {"nodeName": "n1"}})
        store.delete("pods", "p")
        events = [w.next(timeout=T) for _ in range(3)]
        assert w.next(timeout=QUIET) is None
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[0].object == created
    assert events[1].object == updated
    assert events[2].object["spec"] == updated["spec"]  # the last state
    assert int(events[2].resource_version) > int(updated["metadata"]["resourceVersion"])


def test_watch_is_scoped_to_kind_and_namespace(store):
    store.create(namespace("other"))
    rv = store.list("pods").resource_version
    with store.watch("pods", "default", resource_version=rv) as w:
        store.create(configmap("not-a-pod"))
        store.create(pod("elsewhere", "other"))
        store.create(pod("here"))
        assert _summary(_drain(w)) == [("ADDED", "here")]


def test_relabelled_out_of_and_back_into_a_selector(store):
    rv = store.list("pods").resource_version
    w = store.watch("pods", label_selector="app=web", resource_version=rv)
    try:
        store.create(pod("p", labels={"app": "web"}))
        store.create(pod("other", labels={"app": "db"}))  # never matches: never seen
        store.patch("pods", "p", {"spec": {"nodeName": "n1"}})
        out = store.patch("pods", "p", {"metadata": {"labels": {"app": "db"}}})
        store.patch("pods", "p", {"spec": {"nodeName": "n2"}})  # changes while out: not seen
        back = store.patch("pods", "p", {"metadata": {"labels": {"app": "web"}}})
        store.patch("pods", "other", {"metadata": {"labels": {"app": "web"}}})  # starts matching
        store.delete("pods", "p")
        events = _drain(w)
    finally:
        w.stop()
    assert _summary(events) == [
        ("ADDED", "p"), ("MODIFIED", "p"), ("DELETED", "p"), ("ADDED", "p"), ("ADDED", "other"), ("DELETED", "p"),
    ]
    left = events[2].object
    assert left["metadata"]["labels"] == {"app": "web"}  # the last state that matched...
    assert left["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]  # ...at the change's revision
    assert events[3].object == back
    assert events[3].object["spec"]["nodeName"] == "n2"


def test_field_selector_transitions(store):
    store.create(pod("p", status={"phase": "Pending"}))
    rv = store.list("pods").resource_version
    with store.watch("pods", field_selector="status.phase=Running", resource_version=rv) as w:
        store.patch("pods", "p", {"status": {"phase": "Running"}})
        store.patch("pods", "p", {"metadata": {"labels": {"x": "y"}}})
        store.patch("pods", "p", {"status": {"phase": "Succeeded"}})
        assert _summary(_drain(w)) == [("ADDED", "p"), ("MODIFIED", "p"), ("DELETED", "p")]
    with store.watch("pods", field_selector="metadata.name=q", resource_version=rv) as w:
        store.create(pod("q"))
        store.create(pod("r"))
        assert _summary(_drain(w)) == [("ADDED", "q")]


def test_replay_from_a_resource_version(store):
    a = store.create(configmap("a"))
    store.create(configmap("b"))
    store.patch("cm", "a", {"data": {"k": "v"}})
    store.delete("cm", "b")
    with store.watch("cm", resource_version=a["metadata"]["resourceVersion"]) as w:
        # strictly after a's creation
        assert _summary(_drain(w)) == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    with store.watch("cm", label_selector="missing", resource_version=a["metadata"]["resourceVersion"]) as w:
        assert _drain(w) == []


def test_without_a_resource_version_the_current_state_comes_first(store):
    store.create(pod("a", labels={"app": "web"}))
    store.create(pod("b", labels={"app": "db"}))
    with store.watch("pods", label_selector="app=web") as w:
        first = w.next(timeout=T)
        assert (first.type, first.name) == ("ADDED", "a")
        store.create(pod("c", labels={"app": "web"}))
        assert _summary(_drain(w)) == [("ADDED", "c")]


def test_a_compacted_resource_version_is_expired(store, kv):
    old = store.create(configmap("a"))["metadata"]["resourceVersion"]
    store.create(configmap("b"))
    store.create(configmap("c"))
    kv.compact(kv.status().revision)
    with pytest.raises(Expired) as info:
        store.watch("cm", resource_version=old)
    assert info.value.code == 410
    assert str(info.value).startswith(f"too old resource version: {old} (")
    # the Kubernetes recipe: list again, watch from the list's resourceVersion
    listed = store.list("cm")
    with store.watch("cm", resource_version=listed.resource_version) as w:
        store.create(configmap("d"))
        assert _summary(_drain(w)) == [("ADDED", "d")]


def test_expired_while_falling_behind():
    kv = raftkv.open(max_pending_events=2)
    try:
        store = ObjectStore(kv)
        rv = store.list("cm").resource_version
        w = store.watch("cm", resource_version=rv)
        for i in range(6):  # more than the watcher buffers: it falls behind
            store.create(configmap(f"c{i}"))
        kv.compact(kv.status().revision)
        with pytest.raises(Expired):
            for _ in range(10):
                w.next(timeout=T)
    finally:
        kv.close()


def test_bookmarks_from_progress_notifications():
    kv = raftkv.open(progress_interval=0.1)
    try:
        store = ObjectStore(kv)
        created = store.create(configmap("a"))
        with store.watch("cm", resource_version=created["metadata"]["resourceVersion"],
                         allow_bookmarks=True) as w:
            event = w.next(timeout=T)
            assert event is not None and event.type == "BOOKMARK"
            assert event.object["kind"] == "ConfigMap"
            assert event.resource_version == str(kv.status().revision)
        with store.watch("cm", resource_version=created["metadata"]["resourceVersion"]) as w:
            assert w.next(timeout=0.5) is None  # no bookmarks unless asked for
    finally:
        kv.close()


def test_bookmark_on_request(store, kv):
    rv = store.list("cm").resource_version
    with store.watch("cm", resource_version=rv, allow_bookmarks=True) as w:
        store.create(pod("a-pod"))  # another kind moves the revision on
        kv.request_progress()
        event = w.next(timeout=T)
        assert event.type == "BOOKMARK"
        assert int(event.resource_version) == kv.status().revision > int(rv)


def test_secrets_arrive_decrypted(kv):
    from raftkv.objects import Encryptor

    store = ObjectStore(kv, encryption_key=Encryptor.generate())
    rv = store.list("secrets").resource_version
    with store.watch("secrets", resource_version=rv) as w:
        store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                      "stringData": {"password": "hunter2"}})
        event = w.next(timeout=T)
    assert event.type == "ADDED" and event.object["data"] == {"password": "aHVudGVyMg=="}


@pytest.mark.timeout(30)
def test_iterating_in_a_thread_until_stopped(store):
    rv = store.list("cm").resource_version
    w = store.watch("cm", resource_version=rv)
    seen = []
    got_two = threading.Event()

    def consume():
        for event in w:
            seen.append(event.type)
            if len(seen) == 2:
                got_two.set()

    t = threading.Thread(target=consume)
    t.start()
    store.create(configmap("a"))
    store.delete("cm", "a")
    assert got_two.wait(T)
    w.stop()
    t.join()
    assert seen == ["ADDED", "DELETED"]
