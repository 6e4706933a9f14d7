"""Cascading deletion: namespaces, owners and dependents with each
propagation policy, and finalizers."""

from __future__ import annotations

import pytest

from raftkv.objects import Forbidden, Invalid, NotFound

from .helpers import configmap, namespace, owner_ref, pod


def _exists(store, kind, name, ns=None):
    try:
        return store.get(kind, name, ns)
    except NotFound:
        return None


def _deployment(store, name="web"):
    return store.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                         "spec": {"replicas": 2}})


def _owned(store, name, owner, kind="ReplicaSet", **ref):
    api = "apps/v1" if kind == "ReplicaSet" else "v1"
    obj = {"apiVersion": api, "kind": kind,
           "metadata": {"name": name, "ownerReferences": [owner_ref(owner, **ref)]}}
    if kind == "Pod":
        obj["spec"] = {"containers": [{"name": "c", "image": "x"}]}
    return store.create(obj)


# ---- namespaces -----------------------------------------------------------------------------

def test_deleting_a_namespace_deletes_everything_in_it(store, kv):
    store.create(namespace("team"))
    store.create(namespace("keep"))
    for i in range(3):
        store.create(pod(f"p{i}", "team"))
        store.create(configmap(f"c{i}", "team"))
    store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "team"}})
    store.create(pod("p0", "keep"))
    store.delete("namespaces", "team")
    assert kv.range("/registry/", prefix=True, keys_only=True).kvs  # sanity: the store is not empty
    for kind in ("pods", "configmaps", "secrets"):
        assert store.list(kind, "team").items == []
    assert _exists(store, "namespaces", "team") is None
    assert store.list("pods", "keep").names == ["p0"]
    with pytest.raises(NotFound, match='namespaces "team" not found'):
        store.create(pod("late", "team"))


def test_a_namespace_waits_for_content_with_finalizers(store):
    store.create(namespace("team"))
    store.create(configmap("held", "team", finalizers=["example.com/hold"]))
    store.create(configmap("free", "team"))
    ns = store.delete("namespaces", "team")
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
    assert _exists(store, "cm", "free", "team") is None
    held = store.get("cm", "held", "team")
    assert held["metadata"]["deletionTimestamp"]
    with pytest.raises(Forbidden) as info:
        store.create(pod("new", "team"))
    assert str(info.value) == ('pods "new" is forbidden: unable to create new content in namespace team '
                               "because it is being terminated")
    assert info.value.code == 403
    store.patch("cm", "held", {"metadata": {"finalizers": None}}, "team")
    assert _exists(store, "cm", "held", "team") is None
    assert _exists(store, "namespaces", "team") is None  # finalized once empty


def test_protected_namespaces(store):
    with pytest.raises(Forbidden, match='namespaces "default" is forbidden: this namespace may not be deleted'):
        store.delete("namespaces", "default")
    assert store.get("namespaces", "default")


# ---- owners and dependents ------------------------------------------------------------------

def test_background_deletes_the_owner_first_then_dependents(store):
    deploy = _deployment(store)
    rs = _owned(store, "web-rs", deploy, controller=True)
    pods = [_owned(store, f"web-rs-{i}", rs, kind="Pod", controller=True) for i in range(3)]
    unrelated = store.create(pod("unrelated"))
    rv = store.list("pods").resource_version
    with store.watch("replicasets", resource_version=rv) as rs_watch, \
            store.watch("deployments", resource_version=rv) as d_watch, \
            store.watch("pods", resource_version=rv) as p_watch:
        store.delete("deploy", "web")  # Background is the default
        d_event, rs_event = d_watch.next(timeout=1), rs_watch.next(timeout=1)
        p_events = [p_watch.next(timeout=1) for _ in pods]
    assert _exists(store, "deploy", "web") is None
    assert _exists(store, "rs", "web-rs") is None
    assert store.list("pods").names == ["unrelated"]
    assert d_event.type == rs_event.type == "DELETED"
    assert {e.type for e in p_events} == {"DELETED"}
    # the owner went first, its dependents after it, the grandchildren last
    assert int(d_event.resource_version) < int(rs_event.resource_version) < \
        min(int(e.resource_version) for e in p_events)
    assert unrelated == store.get("pods", "unrelated")


def test_foreground_deletes_dependents_before_the_owner(store):
    deploy = _deployment(store)
    rs = _owned(store, "web-rs", deploy, controller=True, block=True)
    _owned(store, "web-rs-0", rs, kind="Pod", block=True)
    rv = store.list("pods").resource_version
    with store.watch("deployments", resource_version=rv) as d_watch, \
            store.watch("replicasets", resource_version=rv) as rs_watch:
        store.delete("deploy", "web", propagation_policy="Foreground")
        d_events = [d_watch.next(timeout=1), d_watch.next(timeout=1)]
        rs_events = [rs_watch.next(timeout=1), rs_watch.next(timeout=1)]
    assert [e.type for e in d_events] == ["MODIFIED", "DELETED"]
    marked = d_events[0].object["metadata"]
    assert marked["deletionTimestamp"] and marked["finalizers"] == ["foregroundDeletion"]
    assert rs_events[-1].type == "DELETED"
    # dependents went first, the owner last
    assert int(rs_events[-1].resource_version) < int(d_events[1].resource_version)
    assert _exists(store, "rs", "web-rs") is None
    assert _exists(store, "pods", "web-rs-0") is None


def test_foreground_waits_for_a_blocking_dependent_with_a_finalizer(store):
    deploy = _deployment(store)
    blocker = store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
        "name": "blocker", "finalizers": ["example.com/drain"],
        "ownerReferences": [owner_ref(deploy, block=True)]}})
    store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
        "name": "lingering", "finalizers": ["example.com/drain"],
        "ownerReferences": [owner_ref(deploy)]}})  # not blocking
    owner = store.delete("deploy", "web", propagation_policy="Foreground")
    assert owner["metadata"]["deletionTimestamp"]
    assert store.get("deploy", "web")["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert store.get("rs", "blocker")["metadata"]["deletionTimestamp"]
    store.patch("rs", "lingering", {"metadata": {"finalizers": None}})
    assert _exists(store, "deploy", "web") is not None  # still blocked
    store.patch("rs", "blocker", {"metadata": {"finalizers": None}})
    assert _exists(store, "rs", "blocker") is None
    assert _exists(store, "deploy", "web") is None  # the last blocker went: so did the owner
    assert blocker["metadata"]["uid"]


def test_orphan_keeps_dependents_and_releases_them(store):
    deploy = _deployment(store)
    rs = _owned(store, "web-rs", deploy, controller=True)
    _owned(store, "web-rs-0", rs, kind="Pod")
    store.delete("deploy", "web", propagation_policy="Orphan")
    assert _exists(store, "deploy", "web") is None
    kept = store.get("rs", "web-rs")
    assert "ownerReferences" not in kept["metadata"]
    assert kept["metadata"]["uid"] == rs["metadata"]["uid"]
    assert store.get("pods", "web-rs-0")["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]


def test_a_dependent_with_another_live_owner_survives(store):
    a = store.create(configmap("owner-a"))
    b = store.create(configmap("owner-b"))
    shared = store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "shared", "ownerReferences": [owner_ref(a), owner_ref(b)]}})
    store.delete("cm", "owner-a")
    left = store.get("cm", "shared")
    assert [r["name"] for r in left["metadata"]["ownerReferences"]] == ["owner-b"]
    store.delete("cm", "owner-b")
    assert _exists(store, "cm", "shared") is None
    assert shared["metadata"]["uid"]


def test_a_reference_to_a_recreated_owner_is_dangling(store):
    old = store.create(configmap("owner"))
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "dependent", "ownerReferences": [owner_ref(old)]}})
    store.delete("cm", "owner", propagation_policy="Orphan")
    store.create(configmap("owner"))  # same name, new uid
    store.update(dict(store.get("cm", "dependent"), metadata=dict(
        store.get("cm", "dependent")["metadata"], ownerReferences=[owner_ref(old)])))
    assert store.collect_garbage() == 1
    assert _exists(store, "cm", "dependent") is None
    assert _exists(store, "cm", "owner") is not None


def test_cluster_scoped_owner_with_namespaced_dependents(store):
    store.create(namespace("a"))
    node = store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    for ns in ("default", "a"):
        store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "on-n1", "namespace": ns, "ownerReferences": [owner_ref(node)]}})
    store.delete("nodes", "n1")
    assert store.list("pods").items == []


def test_collect_garbage_finishes_interrupted_cascades(store, kv):
    owner = store.create(configmap("owner"))
    for i in range(3):
        store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": f"dep-{i}", "ownerReferences": [owner_ref(owner)]}})
    kv.delete("/registry/configmaps/default/owner")  # as if the deleting client died right after
    assert len(store.list("cm").items) == 3
    assert store.collect_garbage() == 3
    assert store.list("cm").items == []
    assert store.collect_garbage() == 0


# ---- finalizers -----------------------------------------------------------------------------

def test_finalizers_hold_the_object_until_removed(store, kv, clock):
    store.create(configmap("c", finalizers=["example.com/a", "example.com/b"]))
    clock.now += 60
    pending = store.delete("cm", "c")
    assert pending["metadata"]["deletionTimestamp"] == "2023-11-14T22:14:20Z"
    assert pending["metadata"]["deletionGracePeriodSeconds"] == 0
    current = store.get("cm", "c")
    assert current["metadata"]["deletionTimestamp"] == pending["metadata"]["deletionTimestamp"]
    again = store.delete("cm", "c")  # deleting again changes nothing
    assert again["metadata"]["deletionTimestamp"] == pending["metadata"]["deletionTimestamp"]
    current["metadata"]["finalizers"] = ["example.com/b"]
    current = store.update(current)
    assert _exists(store, "cm", "c") is not None
    current["metadata"]["finalizers"].append("example.com/new")
    with pytest.raises(Invalid, match="no new finalizers can be added if the object is being deleted"):
        store.update(current)
    rv = current["metadata"]["resourceVersion"]
    with store.watch("cm", resource_version=rv) as w:
        store.patch("cm", "c", [{"op": "remove", "path": "/metadata/finalizers/0"}], patch_type="json")
        event = w.next(timeout=1)
    assert event.type == "DELETED"
    assert kv.get("/registry/configmaps/default/c") is None


def test_finalizers_do_nothing_until_deletion(store):
    obj = store.create(configmap("c", finalizers=["example.com/a"]))
    obj["metadata"]["finalizers"] = []
    updated = store.update(obj)
    assert updated["metadata"]["finalizers"] == []
    assert store.get("cm", "c")


def test_background_cascade_waits_for_an_owner_with_finalizers(store):
    owner = store.create(configmap("owner", finalizers=["example.com/x"]))
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "dep", "ownerReferences": [owner_ref(owner)]}})
    store.delete("cm", "owner")
    assert store.get("cm", "dep")  # the owner still exists: its dependents stay
    store.patch("cm", "owner", {"metadata": {"finalizers": None}})
    assert _exists(store, "cm", "owner") is None
    assert _exists(store, "cm", "dep") is None


def test_the_owner_index_follows_every_write(store, kv):
    a = store.create(configmap("a"))
    b = store.create(configmap("b"))

    def indexed(owner):
        prefix = f"/registry-index/owners/{owner['metadata']['uid']}/"
        return [k.key.decode()[len(prefix):] for k in kv.range(prefix, prefix=True, keys_only=True).kvs]

    dep = store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "dep", "ownerReferences": [owner_ref(a)]}})
    assert indexed(a) == ["/registry/configmaps/default/dep"] and indexed(b) == []
    # the index is written in the object's own revision
    entry = kv.get(f"/registry-index/owners/{a['metadata']['uid']}//registry/configmaps/default/dep")
    assert entry.mod_revision == int(dep["metadata"]["resourceVersion"])
    store.patch("cm", "dep", {"metadata": {"ownerReferences": [owner_ref(b)]}})
    assert indexed(a) == [] and indexed(b) == ["/registry/configmaps/default/dep"]
    store.delete("cm", "dep")
    assert indexed(b) == []
    # the index lives outside /registry/: a prefix read there shows only objects
    assert all(not k.key.startswith(b"/registry-index/")
               for k in kv.range("/registry/", prefix=True, keys_only=True).kvs)
