"""Paging with limit and continue: every page from one snapshot, while writes go on."""

from __future__ import annotations

import threading
import time

import pytest

from raftkv.objects import BadRequest, Expired, ObjectStore
from raftkv.objects.store import decode_continue, encode_continue

from .helpers import configmap, namespace


def _page_all(store, *args, limit, **kwargs):
    pages = []
    token = None
    while True:
        page = store.list(*args, limit=limit, continue_token=token, **kwargs)
        pages.append(page)
        token = page.continue_token
        if token is None:
            return pages


def test_pages_cover_the_list_exactly_once(store):
    for i in range(23):
        store.create(configmap(f"c{i:02d}"))
    pages = _page_all(store, "cm", "default", limit=5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [p.remaining_item_count for p in pages] == [18, 13, 8, 3, None]
    names = [n for p in pages for n in p.names]
    assert names == [f"c{i:02d}" for i in range(23)]
    assert len({p.resource_version for p in pages}) == 1


def test_an_exact_multiple_of_the_limit_ends_without_a_token(store):
    for i in range(10):
        store.create(configmap(f"c{i}"))
    pages = _page_all(store, "cm", "default", limit=5)
    assert [len(p) for p in pages] == [5, 5]
    assert pages[-1].continue_token is None


def test_paging_with_selectors_fills_pages_with_matches(store):
    for i in range(30):
        store.create(configmap(f"c{i:02d}", labels={"parity": "even" if i % 2 == 0 else "odd"}))
    pages = _page_all(store, "cm", "default", limit=4, label_selector="parity=odd")
    names = [n for p in pages for n in p.names]
    assert names == [f"c{i:02d}" for i in range(1, 30, 2)]
    assert all(len(p) == 4 for p in pages[:-1])
    assert all(p.remaining_item_count is None for p in pages)  # unknown with a selector
    field_pages = _page_all(store, "cm", "default", limit=3, field_selector="metadata.name!=c00")
    assert [n for p in field_pages for n in p.names] == [f"c{i:02d}" for i in range(1, 30)]


def test_paging_across_namespaces(store):
    for ns in ("a", "b", "c"):
        store.create(namespace(ns))
        for i in range(3):
            store.create(configmap(f"x{i}", ns))
    pages = _page_all(store, "cm", None, limit=2)
    seen = [(o["metadata"]["namespace"], o["metadata"]["name"]) for p in pages for o in p.items]
    assert seen == [(ns, f"x{i}") for ns in ("a", "b", "c") for i in range(3)]


@pytest.mark.timeout(60)
def test_pages_read_one_snapshot_while_writers_write(kv):
    store = ObjectStore(kv)
    for i in range(40):
        store.create(configmap(f"base-{i:03d}", data={"v": "0"}))
    for i in range(10):
        store.create(configmap(f"doomed-{i:03d}"))
    stop = threading.Event()
    writes = 0
    progress = threading.Condition()
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        nonlocal writes
        client = ObjectStore(kv)
        i = 0
        try:
            # bounded and paced: the writers must keep writing during the listing,
            # not grow the key space faster than a loaded machine can page it
            while not stop.is_set() and i < 400:
                time.sleep(0.001)
                client.create(configmap(f"new-{w}-{i:04d}"))  # keys that sort between and after pages
                client.patch("cm", f"base-{(i * 7 + w) % 40:03d}", {"data": {"v": f"{w}-{i}"}})
                if i < 5:
                    client.delete("cm", f"doomed-{w * 5 + i:03d}")
                i += 1
                with progress:
                    writes += 1
                    progress.notify_all()
        except BaseException as e:
            errors.append(e)

    def wait_for_writes(n: int) -> None:
        with progress:
            target = writes + n
            assert progress.wait_for(lambda: writes >= target or errors, timeout=20)

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    for t in writers:
        t.start()
    try:
        wait_for_writes(3)
        pages = []
        token = None
        while True:
            page = store.list("cm", "default", limit=7, continue_token=token)
            pages.append(page)
            token = page.continue_token
            if token is None:
                break
            wait_for_writes(3)  # the store moves on between every two pages
    finally:
        stop.set()
        for t in writers:
            t.join()
    assert not errors
    snapshot = int(pages[0].resource_version)
    assert all(p.resource_version == pages[0].resource_version for p in pages)
    assert kv.status().revision > snapshot + 3 * (len(pages) - 1)
    items = [o for p in pages for o in p.items]
    names = [o["metadata"]["name"] for o in items]
    assert len(names) == len(set(names))  # nothing twice
    assert names == sorted(names)
    # exactly the objects of the snapshot, each as it was then
    raw = kv.range("/registry/configmaps/default/", prefix=True, revision=snapshot).kvs
    assert names == [kv_.key.decode().rsplit("/", 1)[1] for kv_ in raw]
    for obj, kv_ in zip(items, raw, strict=True):
        assert obj["metadata"]["resourceVersion"] == str(kv_.mod_revision)
        assert int(obj["metadata"]["resourceVersion"]) <= snapshot
    current = store.list("cm", "default")
    assert current.names != names  # the writers did change the list meanwhile


def test_a_token_older_than_the_compaction_is_expired(store, kv):
    for i in range(6):
        store.create(configmap(f"c{i}"))
    first = store.list("cm", "default", limit=2)
    store.create(configmap("later"))
    kv.compact(kv.status().revision)
    with pytest.raises(Expired) as info:
        store.list("cm", "default", limit=2, continue_token=first.continue_token)
    assert info.value.code == 410 and info.value.reason == "Expired"
    assert "The provided continue parameter is too old to display a consistent list result" in str(info.value)
    fresh = _page_all(store, "cm", "default", limit=2)  # a new list works
    assert sum(len(p) for p in fresh) == 7


def test_a_compacted_resource_version_is_expired(store, kv):
    store.create(configmap("a"))
    old = store.list("cm", "default").resource_version
    store.create(configmap("b"))
    kv.compact(kv.status().revision)
    with pytest.raises(Expired, match=f"too old resource version: {old}"):
        store.list("cm", "default", resource_version=old)


def test_bad_tokens(store):
    store.create(configmap("a"))
    with pytest.raises(BadRequest, match="continue key is not valid"):
        store.list("cm", continue_token="garbage!")
    with pytest.raises(BadRequest, match="continue key is not valid"):
        store.list("cm", continue_token=encode_continue(0, "x"))
    token = store.list("cm", "default", limit=1)
    with pytest.raises(BadRequest, match="not allowed when using continue"):
        store.list("cm", "default", limit=1, continue_token=token.continue_token or encode_continue(2, "a"),
                   resource_version="2")
    with pytest.raises(BadRequest):
        store.list("cm", limit=-1)


def test_token_round_trip():
    token = encode_continue(42, "ns/name\x00")
    decoded = decode_continue(token)
    assert (decoded.revision, decoded.start) == (42, "ns/name\x00")
