"""create, get, list, update, patch, delete: the object's life in the store."""

from __future__ import annotations

import json

import pytest

from raftkv.objects import AlreadyExists, BadRequest, Conflict, Invalid, NotFound, ObjectStore

from .helpers import configmap, namespace, pod


def test_create_fills_in_system_fields(store, kv, clock):
    created = store.create(pod("web-1", labels={"app": "web"}))
    m = created["metadata"]
    assert m["namespace"] == "default"
    assert len(m["uid"]) == 36 and m["uid"].count("-") == 4
    assert m["creationTimestamp"] == "2023-11-14T22:13:20Z"  # the clock's 1_700_000_000
    assert m["generation"] == 1
    raw = kv.get("/registry/pods/default/web-1")
    assert m["resourceVersion"] == str(raw.mod_revision)
    stored = json.loads(raw.value)  # what etcdctl shows: the JSON document
    assert stored["metadata"]["uid"] == m["uid"]
    assert "resourceVersion" not in stored["metadata"]  # it is the key's revision, not stored
    assert stored["spec"] == created["spec"]
    assert store.get("pods", "web-1") == created


def test_create_ignores_client_set_uid_and_rejects_a_resource_version(store):
    created = store.create(configmap("c", uid="mine", creationTimestamp="2000-01-01T00:00:00Z"))
    assert created["metadata"]["uid"] != "mine"
    assert created["metadata"]["creationTimestamp"] != "2000-01-01T00:00:00Z"
    with pytest.raises(BadRequest, match="resourceVersion should not be set on objects to be created"):
        store.create(configmap("d", resourceVersion="5"))


def test_uids_are_unique(store):
    uids = {store.create(configmap(f"c{i}"))["metadata"]["uid"] for i in range(20)}
    assert len(uids) == 20


def test_generate_name(store):
    a = store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"}})
    b = store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"}})
    for obj in (a, b):
        name = obj["metadata"]["name"]
        assert name.startswith("web-") and len(name) == len("web-") + 5
        assert store.get("pods", name)["metadata"]["generateName"] == "web-"
    assert a["metadata"]["name"] != b["metadata"]["name"]
    long = store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"generateName": "n" * 70}})
    assert len(long["metadata"]["name"]) == 63  # truncated to fit a DNS label


def test_an_explicit_name_wins_over_generate_name(store):
    obj = store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fixed", "generateName": "x-"}})
    assert obj["metadata"]["name"] == "fixed"


def test_already_exists(store):
    store.create(pod("p"))
    with pytest.raises(AlreadyExists) as info:
        store.create(pod("p"))
    assert str(info.value) == 'pods "p" already exists'
    assert info.value.code == 409 and info.value.reason == "AlreadyExists"
    store.create(namespace("other"))
    store.create(pod("p", namespace="other"))  # names are per namespace


def test_namespace_argument_and_object_must_agree(store):
    store.create(namespace("team-a"))
    assert store.create(pod("p"), "team-a")["metadata"]["namespace"] == "team-a"
    with pytest.raises(BadRequest, match="does not match the namespace sent on the request"):
        store.create(pod("q", namespace="default"), "team-a")


def test_cluster_scoped_objects_have_no_namespace(store, kv):
    node = store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "namespace": "x"}})
    assert "namespace" not in node["metadata"]
    assert kv.get("/registry/nodes/n1") is not None
    assert store.get("nodes", "n1", "ignored")["metadata"]["name"] == "n1"


def test_get_not_found(store):
    with pytest.raises(NotFound) as info:
        store.get("deploy", "missing")
    assert str(info.value) == 'deployments.apps "missing" not found'
    assert info.value.status()["details"] == {"name": "missing", "group": "apps", "kind": "deployments"}
    with pytest.raises(NotFound, match='pods "p" not found'):
        store.get("pods", "p", "other-namespace")


def test_default_namespace_exists_from_the_start(kv):
    store = ObjectStore(kv)
    ns = store.get("namespaces", "default")
    assert ns["status"]["phase"] == "Active"
    ObjectStore(kv)  # a second client does not recreate it
    assert store.get("namespaces", "default")["metadata"]["uid"] == ns["metadata"]["uid"]


# ---- list ---------------------------------------------------------------------------------

@pytest.fixture
def pods(store):
    store.create(namespace("prod"))
    made = [
        store.create(pod("web-1", "default", {"app": "web", "tier": "frontend"}, status={"phase": "Running"})),
        store.create(pod("web-2", "default", {"app": "web", "tier": "frontend"}, status={"phase": "Pending"})),
        store.create(pod("db-1", "default", {"app": "db"}, status={"phase": "Running"})),
        store.create(pod("web-1", "prod", {"app": "web"}, status={"phase": "Running"})),
        store.create(pod("cache", "prod")),
    ]
    return made


def _names(result):
    return [f'{o["metadata"]["namespace"]}/{o["metadata"]["name"]}' for o in result.items]


def test_list_one_namespace_or_all(store, kv, pods):
    assert _names(store.list("pods", "default")) == ["default/db-1", "default/web-1", "default/web-2"]
    assert _names(store.list("pods", "prod")) == ["prod/cache", "prod/web-1"]
    everything = store.list("pods")
    assert len(everything) == 5
    assert everything.resource_version == str(kv.status().revision)
    assert everything.kind == "PodList" and everything.api_version == "v1"
    assert everything.continue_token is None
    assert store.list("pods", "empty-or-missing").items == []


@pytest.mark.parametrize("selector, expected", [
    ("app=web", ["default/web-1", "default/web-2", "prod/web-1"]),
    ("app=web,tier=frontend", ["default/web-1", "default/web-2"]),
    ("app!=web", ["default/db-1", "prod/cache"]),  # cache has no app label and matches !=
    ("tier notin (frontend)", ["default/db-1", "prod/cache", "prod/web-1"]),
    ("!app", ["prod/cache"]),
    ("app in (db, cache)", ["default/db-1"]),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]},
     ["default/db-1", "default/web-1", "default/web-2", "prod/web-1"]),
])
def test_list_by_label_selector(store, pods, selector, expected):
    assert _names(store.list("pods", label_selector=selector)) == expected


@pytest.mark.parametrize("selector, expected", [
    ("metadata.name=web-1", ["default/web-1", "prod/web-1"]),
    ("metadata.name==web-1", ["default/web-1", "prod/web-1"]),
    ("metadata.name!=web-1", ["default/db-1", "default/web-2", "prod/cache"]),
    ("metadata.namespace=prod", ["prod/cache", "prod/web-1"]),
    ("metadata.namespace!=prod", ["default/db-1", "default/web-1", "default/web-2"]),
    ("status.phase=Running", ["default/db-1", "default/web-1", "prod/web-1"]),
    ("status.phase!=Running", ["default/web-2", "prod/cache"]),  # no status reads as ""
    ("status.phase=", ["prod/cache"]),
    ("status.phase=Running,metadata.namespace=default", ["default/db-1", "default/web-1"]),
    ("spec.containers=x", []),  # a list is not selectable
])
def test_list_by_field_selector(store, pods, selector, expected):
    assert _names(store.list("pods", field_selector=selector)) == expected


def test_list_by_both_selectors(store, pods):
    result = store.list("pods", label_selector="app=web", field_selector="status.phase=Running")
    assert _names(result) == ["default/web-1", "prod/web-1"]


def test_list_at_a_past_resource_version(store, pods):
    before = store.list("pods", "default")
    store.delete("pods", "web-1")
    store.create(pod("web-3"))
    assert _names(store.list("pods", "default")) == ["default/db-1", "default/web-2", "default/web-3"]
    past = store.list("pods", "default", resource_version=before.resource_version)
    assert past.items == before.items
    assert past.resource_version == before.resource_version


def test_list_result_renders_as_a_kubernetes_list(store, pods):
    page = store.list("pods", "default", limit=2).to_dict()
    assert page["kind"] == "PodList"
    assert page["metadata"]["continue"] and page["metadata"]["remainingItemCount"] == 1
    assert [i["metadata"]["name"] for i in page["items"]] == ["db-1", "web-1"]


# ---- update -----------------------------------------------------------------------------

def test_update_replaces_and_bumps_generation_on_spec_changes_only(store, kv):
    obj = store.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                        "spec": {"replicas": 1}})
    obj["spec"]["replicas"] = 3
    v2 = store.update(obj)
    assert v2["spec"]["replicas"] == 3 and v2["metadata"]["generation"] == 2
    assert int(v2["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])
    assert v2["metadata"]["resourceVersion"] == str(kv.get("/registry/deployments/default/d").mod_revision)
    v2["metadata"]["labels"] = {"app": "web"}
    v3 = store.update(v2)
    assert v3["metadata"]["generation"] == 2  # metadata change
    v3["status"] = {"readyReplicas": 3}
    v4 = store.update(v3)
    assert v4["metadata"]["generation"] == 2  # status change
    assert v4["metadata"]["uid"] == obj["metadata"]["uid"]
    assert v4["metadata"]["creationTimestamp"] == obj["metadata"]["creationTimestamp"]
    assert store.get("deploy", "d") == v4


def test_stale_resource_version_conflicts(store):
    first = store.create(configmap("c", data={"k": "1"}))
    second = dict(first, data={"k": "2"})
    store.update(second)
    stale = dict(first, data={"k": "3"})
    with pytest.raises(Conflict) as info:
        store.update(stale)
    assert str(info.value) == ('Operation cannot be fulfilled on configmaps "c": the object has been modified; '
                               "please apply your changes to the latest version and try again")
    assert info.value.code == 409
    assert store.get("cm", "c")["data"] == {"k": "2"}


def test_an_update_without_resource_version_is_unconditional(store):
    store.create(configmap("c", data={"k": "1"}))
    store.update(configmap("c", data={"k": "2"}))
    assert store.get("cm", "c")["data"] == {"k": "2"}


def test_a_no_op_update_writes_nothing(store, kv):
    obj = store.create(configmap("c", data={"k": "1"}))
    revision = kv.status().revision
    again = store.update(obj)
    assert again == obj
    assert kv.status().revision == revision


def test_update_errors(store):
    with pytest.raises(NotFound):
        store.update(configmap("missing"))
    obj = store.create(configmap("c"))
    obj["metadata"]["uid"] = "another"
    with pytest.raises(Invalid, match="metadata.uid: Invalid value: \"another\": field is immutable"):
        store.update(obj)
    with pytest.raises(BadRequest, match="invalid resourceVersion"):
        store.update(configmap("c", resourceVersion="abc"))


def test_dry_run_writes_nothing(store, kv):
    revision = kv.status().revision
    made = store.create(configmap("c"), dry_run=True)
    assert made["metadata"]["uid"]
    assert kv.status().revision == revision
    with pytest.raises(NotFound):
        store.get("cm", "c")
    with pytest.raises(NotFound, match='namespaces "nope" not found'):
        store.create(configmap("c", "nope"), dry_run=True)
    store.create(configmap("c"))
    with pytest.raises(AlreadyExists):
        store.create(configmap("c"), dry_run=True)
    obj = store.get("cm", "c")
    changed = store.update(dict(obj, data={"k": "v"}), dry_run=True)
    assert changed["data"] == {"k": "v"}
    assert store.get("cm", "c") == obj
    assert kv.status().revision == revision + 1


# ---- patch ------------------------------------------------------------------------------

def test_merge_patch(store):
    store.create(pod("p", labels={"app": "web", "tier": "frontend"}))
    patched = store.patch("pods", "p", {"metadata": {"labels": {"tier": None, "track": "stable"}}})
    assert patched["metadata"]["labels"] == {"app": "web", "track": "stable"}
    assert store.get("pods", "p")["metadata"]["labels"] == {"app": "web", "track": "stable"}
    assert patched["metadata"]["generation"] == 1
    patched = store.patch("pods", "p", '{"spec": {"nodeName": "n1"}}')  # JSON text works too
    assert patched["spec"]["nodeName"] == "n1" and patched["metadata"]["generation"] == 2


def test_json_patch(store):
    store.create(configmap("c", data={"a": "1", "b": "2"}))
    patched = store.patch("cm", "c", [
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "replace", "path": "/data/a", "value": "10"},
        {"op": "remove", "path": "/data/b"},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
    ], patch_type="json")
    assert patched["data"] == {"a": "10"} and patched["metadata"]["labels"] == {"x": "y"}
    with pytest.raises(Invalid) as info:
        store.patch("cm", "c", [{"op": "test", "path": "/data/a", "value": "1"}], patch_type="json")
    assert info.value.code == 422
    with pytest.raises(Invalid):
        store.patch("cm", "c", [{"op": "remove", "path": "/data/nope"}], patch_type="json")
    with pytest.raises(BadRequest):
        store.patch("cm", "c", [{"op": "frobnicate", "path": "/data"}], patch_type="json")
    with pytest.raises(BadRequest):
        store.patch("cm", "c", "{not json")
    with pytest.raises(BadRequest, match="unsupported patch type"):
        store.patch("cm", "c", {}, patch_type="apply")
    assert store.get("cm", "c")["data"] == {"a": "10"}


def test_patch_with_a_resource_version_is_a_precondition(store):
    obj = store.create(configmap("c", data={"a": "1"}))
    rv = obj["metadata"]["resourceVersion"]
    store.patch("cm", "c", {"metadata": {"resourceVersion": rv}, "data": {"a": "2"}})
    with pytest.raises(Conflict):
        store.patch("cm", "c", {"metadata": {"resourceVersion": rv}, "data": {"a": "3"}})
    with pytest.raises(Conflict):
        store.patch("cm", "c", [{"op": "replace", "path": "/metadata/resourceVersion", "value": rv}],
                    patch_type="json")
    assert store.get("cm", "c")["data"] == {"a": "2"}


def test_patch_cannot_rename_or_move(store):
    store.create(configmap("c"))
    with pytest.raises(BadRequest, match="does not match the name"):
        store.patch("cm", "c", {"metadata": {"name": "d"}})
    with pytest.raises(BadRequest, match="namespace"):
        store.patch("cm", "c", {"metadata": {"namespace": "kube-system"}})
    with pytest.raises(BadRequest, match="apiVersion or kind"):
        store.patch("cm", "c", {"kind": "Secret"})
    with pytest.raises(NotFound):
        store.patch("cm", "missing", {"data": {"a": "b"}})


# ---- delete -----------------------------------------------------------------------------

def test_delete(store, kv):
    created = store.create(configmap("c"))
    gone = store.delete("cm", "c")
    assert gone["metadata"]["uid"] == created["metadata"]["uid"]
    assert kv.get("/registry/configmaps/default/c") is None
    with pytest.raises(NotFound):
        store.get("cm", "c")
    with pytest.raises(NotFound):
        store.delete("cm", "c")


def test_delete_preconditions(store):
    created = store.create(configmap("c"))
    with pytest.raises(Conflict) as info:
        store.delete("cm", "c", uid="not-the-uid")
    assert str(info.value) == ('Operation cannot be fulfilled on configmaps "c": Precondition failed: UID in '
                               f'precondition: not-the-uid, UID in object meta: {created["metadata"]["uid"]}')
    updated = store.update(dict(created, data={"x": "y"}))
    with pytest.raises(Conflict, match="Precondition failed: ResourceVersion in precondition"):
        store.delete("cm", "c", resource_version=created["metadata"]["resourceVersion"])
    assert store.get("cm", "c")["data"] == {"x": "y"}
    store.delete("cm", "c", uid=created["metadata"]["uid"], resource_version=updated["metadata"]["resourceVersion"])
    with pytest.raises(NotFound):
        store.get("cm", "c")


def test_uid_precondition_tells_a_recreated_object_apart(store):
    old = store.create(configmap("c"))
    store.delete("cm", "c")
    store.create(configmap("c"))
    with pytest.raises(Conflict):
        store.delete("cm", "c", uid=old["metadata"]["uid"])
    assert store.get("cm", "c")


def test_delete_rejects_unknown_policies(store):
    store.create(configmap("c"))
    with pytest.raises(BadRequest, match="propagation policy"):
        store.delete("cm", "c", propagation_policy="Eventually")
