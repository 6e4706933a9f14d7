"""Built-in kinds, resolution by any name, and user-registered kinds (from
Python and from CustomResourceDefinition manifests)."""

from __future__ import annotations

import json
import re

import pytest

from raftkv.objects import BadRequest, Invalid, Kind, KindRegistry, ObjectStore, UnknownKind, kind_from_crd
from raftkv.objects.keys import REGISTRY

# kind, apiVersion, plural, singular, short names, namespaced (as `kubectl api-resources` lists them)
BUILTINS = [
    ("Namespace", "v1", "namespaces", "namespace", ("ns",), False),
    ("Node", "v1", "nodes", "node", ("no",), False),
    ("Pod", "v1", "pods", "pod", ("po",), True),
    ("ReplicaSet", "apps/v1", "replicasets", "replicaset", ("rs",), True),
    ("Deployment", "apps/v1", "deployments", "deployment", ("deploy",), True),
    ("StatefulSet", "apps/v1", "statefulsets", "statefulset", ("sts",), True),
    ("DaemonSet", "apps/v1", "daemonsets", "daemonset", ("ds",), True),
    ("Job", "batch/v1", "jobs", "job", (), True),
    ("PersistentVolume", "v1", "persistentvolumes", "persistentvolume", ("pv",), False),
    ("PersistentVolumeClaim", "v1", "persistentvolumeclaims", "persistentvolumeclaim", ("pvc",), True),
    ("ConfigMap", "v1", "configmaps", "configmap", ("cm",), True),
    ("Secret", "v1", "secrets", "secret", (), True),
    ("Service", "v1", "services", "service", ("svc",), True),
    ("Ingress", "networking.k8s.io/v1", "ingresses", "ingress", ("ing",), True),
]


@pytest.mark.parametrize("kind, api_version, plural, singular, short, namespaced", BUILTINS)
def test_builtin_kinds(kind, api_version, plural, singular, short, namespaced):
    registry = KindRegistry()
    k = registry.for_object(api_version, kind)
    assert (k.plural, k.singular, k.short_names, k.namespaced, k.api_version) == \
        (plural, singular, short, namespaced, api_version)
    for alias in (kind, plural, singular, kind.lower(), plural.upper(), *short):
        assert registry.resolve(alias) is k
    group = api_version.rpartition("/")[0]
    if group:
        assert registry.resolve(f"{plural}.{group}") is k
        assert registry.resolve(f"{plural}.v1.{group}") is k


@pytest.mark.parametrize("kind, api_version, plural, singular, short, namespaced", BUILTINS)
def test_builtin_storage_keys(kind, api_version, plural, singular, short, namespaced):
    k = KindRegistry().for_object(api_version, kind)
    if namespaced:
        assert REGISTRY.object_key(k, "team-a", "x") == f"/registry/{plural}/team-a/x".encode()
    else:
        assert REGISTRY.object_key(k, "", "x") == f"/registry/{plural}/x".encode()


def test_every_builtin_kind_can_be_stored(store, kv):
    for kind, api_version, plural, _, _, namespaced in BUILTINS:
        if kind == "Namespace":
            continue
        obj = store.create({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x1"}})
        key = f"/registry/{plural}/default/x1" if namespaced else f"/registry/{plural}/x1"
        raw = kv.get(key)
        assert raw is not None, key
        assert json.loads(raw.value)["kind"] == kind
        assert obj["metadata"]["resourceVersion"] == str(raw.mod_revision)
        assert ("namespace" in obj["metadata"]) is namespaced


def test_unknown_names():
    registry = KindRegistry()
    with pytest.raises(UnknownKind, match='the server doesn\'t have a resource type "gizmos"'):
        registry.resolve("gizmos")
    with pytest.raises(UnknownKind):
        registry.resolve("deployments.batch")
    with pytest.raises(UnknownKind, match='no matches for kind "Deployment" in version "apps/v2"'):
        registry.for_object("apps/v2", "Deployment")


WIDGET = Kind(kind="Widget", plural="widgets", short_names=("wd",), group="example.com", version="v1")


def test_register_a_kind_from_python(store, kv):
    store.register_kind(WIDGET)
    assert store.kind("wd") is store.kind("widgets.example.com") is store.kind("Widget")
    w = store.create({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
                      "spec": {"size": 3}, "anything": ["goes"]})
    assert w["metadata"]["uid"]
    raw = kv.get("/registry/example.com/widgets/default/w1")  # the group keeps custom kinds apart
    assert raw is not None and json.loads(raw.value)["spec"] == {"size": 3}
    assert store.list("widgets").names == ["w1"]
    assert store.get("wd", "w1")["anything"] == ["goes"]


def test_registration_conflicts_and_bad_names():
    registry = KindRegistry()
    registry.register(WIDGET)
    registry.register(WIDGET)  # the same kind again is fine
    with pytest.raises(BadRequest, match='kind "Widget.example.com" is already registered'):
        registry.register(Kind(kind="Widget", plural="widgetz", group="example.com"))
    with pytest.raises(BadRequest, match='resource "widgets.example.com" is already registered'):
        registry.register(Kind(kind="Gadget", plural="widgets", group="example.com"))
    with pytest.raises(BadRequest, match="already registered"):
        registry.register(Kind(kind="Pod", plural="pods"), replace=True)  # built-ins stay
    with pytest.raises(Invalid, match="spec.names.plural"):
        registry.register(Kind(kind="Thing", plural="Things", group="example.com"))
    with pytest.raises(Invalid, match="spec.names.kind"):
        registry.register(Kind(kind="my-thing", plural="things", group="example.com"))
    with pytest.raises(Invalid, match="spec.group"):
        registry.register(Kind(kind="Thing", plural="things", group="Example_com"))


def test_a_builtin_name_wins_over_a_custom_one_unless_qualified():
    registry = KindRegistry()
    custom = registry.register(Kind(kind="Pod", plural="pods", short_names=("po",), group="example.com"))
    assert registry.resolve("pods").group == ""
    assert registry.resolve("pods.example.com") is custom
    registry.register(Kind(kind="Gizmo", plural="gizmos", group="a.example.com"))
    registry.register(Kind(kind="Gizmo", plural="gizmos", group="b.example.com"))
    with pytest.raises(BadRequest, match="ambiguous"):
        registry.resolve("gizmos")
    assert registry.resolve("gizmos.b.example.com").group == "b.example.com"


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              image: {type: string}
              replicas: {type: integer}
---
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: my-new-cron-object
spec:
  cronSpec: "* * * * */5"
  image: my-awesome-cron-image
"""


def test_register_from_a_crd_manifest(store, kv):
    results = store.apply(CRD)
    assert [str(r) for r in results] == [
        "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created",
        "crontab.stable.example.com/my-new-cron-object created",
    ]
    kind = store.kind("ct")
    assert (kind.kind, kind.plural, kind.group, kind.namespaced) == ("CronTab", "crontabs", "stable.example.com", True)
    assert kv.get("/registry/customresourcedefinitions/crontabs.stable.example.com") is not None
    assert kv.get("/registry/stable.example.com/crontabs/default/my-new-cron-object") is not None
    # the schema's types are checked
    with pytest.raises(Invalid, match="spec.replicas in body must be of type integer"):
        store.create({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "bad"},
                      "spec": {"replicas": "two"}})


def test_another_client_learns_stored_crds(store, kv):
    store.apply(CRD)
    other = ObjectStore(kv)  # a fresh client on the same store
    assert other.get("crontabs", "my-new-cron-object")["spec"]["image"] == "my-awesome-cron-image"
    late = ObjectStore(kv)
    store.apply(CRD.replace("crontabs", "cronjabs").replace("CronTab", "CronJab").replace("[ct]", "[cj]")
                .split("---")[0])
    assert late.kind("cronjabs").kind == "CronJab"  # registered after `late` started


def test_cluster_scoped_crd(store, kv):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "regions.infra.example.com"},
           "spec": {"group": "infra.example.com", "scope": "Cluster",
                    "names": {"plural": "regions", "kind": "Region"},
                    "versions": [{"name": "v1alpha1", "served": True, "storage": True}]}}
    store.create(crd)
    store.create({"apiVersion": "infra.example.com/v1alpha1", "kind": "Region", "metadata": {"name": "eu"}})
    assert kv.get("/registry/infra.example.com/regions/eu") is not None
    assert "namespace" not in store.get("regions", "eu")["metadata"]


@pytest.mark.parametrize("change, message", [
    (lambda c: c["metadata"].update(name="wrong.example.com"), 'must be spec.names.plural+"."+spec.group'),
    (lambda c: c["spec"].update(group="nodots"), "should be a domain with at least one dot"),
    (lambda c: c["spec"]["versions"][0].update(storage=False), "exactly one version marked as storage"),
    (lambda c: c["spec"]["names"].update(kind="bad-kind"), "spec.names.kind"),
])
def test_invalid_crds_are_rejected(store, change, message):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "things.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "things", "kind": "Thing"},
                    "versions": [{"name": "v1", "served": True, "storage": True}]}}
    change(crd)
    with pytest.raises(Invalid, match=re.escape(message)):
        store.create(crd)
    with pytest.raises(UnknownKind):
        store.kind("things")


def test_crd_identity_is_immutable_and_versions_can_grow(store):
    store.apply(CRD)
    crd = store.get("crd", "crontabs.stable.example.com")
    crd["spec"]["scope"] = "Cluster"
    with pytest.raises(Invalid, match="spec.scope: Invalid value: \"Cluster\": field is immutable"):
        store.update(crd)
    crd = store.get("crd", "crontabs.stable.example.com")
    crd["spec"]["versions"].append({"name": "v2", "served": True, "storage": False})
    store.update(crd)
    store.create({"apiVersion": "stable.example.com/v2", "kind": "CronTab", "metadata": {"name": "v2-obj"}})
    # stored in the storage version
    assert store.get("ct", "v2-obj")["apiVersion"] == "stable.example.com/v1"


def test_deleting_a_crd_deletes_its_objects_and_the_kind(store, kv):
    store.apply(CRD)
    store.delete("crd", "crontabs.stable.example.com")
    assert kv.get("/registry/stable.example.com/crontabs/default/my-new-cron-object") is None
    with pytest.raises(UnknownKind):
        store.kind("crontabs")


def test_kind_from_crd_reads_names_and_versions():
    import yaml

    kind = kind_from_crd(yaml.safe_load(CRD.split("---")[0]))
    assert kind == Kind(kind="CronTab", plural="crontabs", singular="crontab", short_names=("ct",),
                        group="stable.example.com", version="v1")
    assert kind.schema["properties"]["spec"]["properties"]["replicas"] == {"type": "integer"}
