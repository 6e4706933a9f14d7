"""Optimistic concurrency: no lost update among concurrent writers."""

from __future__ import annotations

import threading
import time

import pytest

from raftkv.objects import Conflict, ObjectStore, retry_on_conflict

from .helpers import configmap


def _count(store: ObjectStore) -> int:
    return int(store.get("cm", "counter")["data"]["n"])


def test_two_interleaved_writers_one_conflicts(store):
    store.create(configmap("counter", data={"n": "0"}))
    a = store.get("cm", "counter")
    b = store.get("cm", "counter")
    a["data"]["n"] = str(int(a["data"]["n"]) + 1)
    b["data"]["n"] = str(int(b["data"]["n"]) + 1)
    store.update(a)
    with pytest.raises(Conflict):
        store.update(b)  # b read before a wrote: its increment would be lost
    assert _count(store) == 1


def test_without_resource_versions_the_last_writer_wins(store):
    # the control experiment: the same interleaving without preconditions loses an update
    store.create(configmap("counter", data={"n": "0"}))
    a = store.get("cm", "counter")
    b = store.get("cm", "counter")
    for obj in (a, b):
        obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
        del obj["metadata"]["resourceVersion"]
    store.update(a)
    store.update(b)
    assert _count(store) == 1


@pytest.mark.timeout(60)
def test_concurrent_increments_with_retry_on_conflict(kv):
    threads_n, increments = 8, 25
    store = ObjectStore(kv)
    store.create(configmap("counter", data={"n": "0"}))
    barrier = threading.Barrier(threads_n)
    lock = threading.Lock()
    successes = 0
    failures = 0
    conflicts = 0
    versions: list[int] = []
    errors: list[BaseException] = []

    def increment(client: ObjectStore) -> dict:
        nonlocal conflicts
        obj = client.get("cm", "counter")
        obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
        time.sleep(0.0005)  # widen the read-modify-write window so writers interleave
        try:
            return client.update(obj)
        except Conflict:
            with lock:
                conflicts += 1
            raise

    def worker() -> None:
        nonlocal successes, failures
        client = ObjectStore(kv)  # each writer its own client, like separate controllers
        try:
            barrier.wait()
            for _ in range(increments):
                try:
                    updated = retry_on_conflict(lambda: increment(client), attempts=6, backoff=0.001)
                except Conflict:
                    with lock:
                        failures += 1
                else:
                    with lock:
                        successes += 1
                        versions.append(int(updated["metadata"]["resourceVersion"]))
        except BaseException as e:  # surface anything unexpected in the main thread
            errors.append(e)

    workers = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors
    assert successes + failures == threads_n * increments
    assert _count(store) == successes  # every successful update counted, none lost
    assert len(set(versions)) == successes  # each success wrote its own revision
    assert conflicts > 0  # the writers really did race


@pytest.mark.timeout(60)
def test_concurrent_patches_retry_by_themselves(kv):
    """A patch without a resourceVersion is re-applied to the latest object on conflict."""
    threads_n, per_thread = 6, 20
    store = ObjectStore(kv)
    store.create(configmap("labels"))
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        client = ObjectStore(kv)
        try:
            for j in range(per_thread):
                client.patch("cm", "labels", {"data": {f"t{i}-{j}": "x"}})
        except BaseException as e:
            errors.append(e)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors
    assert len(store.get("cm", "labels")["data"]) == threads_n * per_thread


@pytest.mark.timeout(60)
def test_concurrent_creates_of_one_name_one_wins(kv):
    from raftkv.objects import AlreadyExists

    store = ObjectStore(kv)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        client = ObjectStore(kv)
        barrier.wait()
        try:
            client.create(configmap("only-one", data={"by": str(i)}))
            result = "created"
        except AlreadyExists:
            result = "exists"
        with lock:
            outcomes.append(result)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert sorted(outcomes) == ["created"] + ["exists"] * 7
    assert store.get("cm", "only-one")["metadata"]["generation"] == 1
