"""apply: create-or-update from manifests, idempotent, reporting each object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raftkv.objects import BadRequest, Invalid, UnknownKind, load_manifest
from raftkv.objects.apply import LAST_APPLIED

APP_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    app: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
"""


def _actions(results):
    return [str(r) for r in results]


def test_app_yaml_created_then_unchanged(store, kv):
    assert _actions(store.apply(APP_YAML)) == ["deployment.apps/web created", "service/web created"]
    revision = kv.status().revision
    second = store.apply(APP_YAML)
    assert _actions(second) == ["deployment.apps/web unchanged", "service/web unchanged"]
    assert kv.status().revision == revision  # nothing written
    assert [r.action for r in second] == ["unchanged", "unchanged"]
    # found by label
    assert store.list("deployments", label_selector="app=web").names == ["web"]
    assert store.list("services", label_selector="app=web").names == ["web"]
    assert store.list("pods", label_selector="app=web").names == []


def test_changed_manifest_is_configured(store):
    store.apply(APP_YAML)
    before = store.get("deploy", "web")
    changed = APP_YAML.replace("replicas: 3", "replicas: 5")
    results = store.apply(changed)
    assert _actions(results) == ["deployment.apps/web configured", "service/web unchanged"]
    after = store.get("deploy", "web")
    assert after["spec"]["replicas"] == 5
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert results[0].object == after
    assert _actions(store.apply(changed)) == ["deployment.apps/web unchanged", "service/web unchanged"]


def test_fields_dropped_from_the_manifest_are_removed_others_kept(store):
    store.apply(APP_YAML)
    store.patch("deploy", "web", {"metadata": {"annotations": {"team": "blue"}}})  # set by someone else
    without_label = APP_YAML.replace("  labels:\n    app: web\nspec:\n  replicas", "spec:\n  replicas", 1)
    assert _actions(store.apply(without_label))[0] == "deployment.apps/web configured"
    live = store.get("deploy", "web")
    assert "labels" not in live["metadata"]
    assert live["metadata"]["annotations"]["team"] == "blue"
    last = json.loads(live["metadata"]["annotations"][LAST_APPLIED])
    assert "labels" not in last["metadata"] and last["spec"]["replicas"] == 3


def test_apply_reverts_changes_to_fields_it_manages(store):
    store.apply(APP_YAML)
    store.patch("deploy", "web", {"spec": {"replicas": 10}})
    assert _actions(store.apply(APP_YAML))[0] == "deployment.apps/web configured"
    assert store.get("deploy", "web")["spec"]["replicas"] == 3


def test_apply_into_a_namespace(store):
    store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    results = store.apply(APP_YAML, namespace="shop")
    assert [(r.namespace, r.action) for r in results] == [("shop", "created"), ("shop", "created")]
    assert store.get("svc", "web", "shop")
    with pytest.raises(BadRequest, match='the namespace from the provided object "default" does not match'):
        store.apply(APP_YAML.replace("  name: web\n", "  name: web\n  namespace: default\n", 1), namespace="shop")


def test_namespace_and_contents_in_one_manifest(store):
    manifest = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: fast, when: 2024-01-01T00:00:00Z}
"""
    assert _actions(store.apply(manifest)) == ["namespace/shop created", "configmap/settings created"]
    # YAML timestamps stay strings, as Kubernetes reads them
    assert store.get("cm", "settings", "shop")["data"]["when"] == "2024-01-01T00:00:00Z"
    assert _actions(store.apply(manifest)) == ["namespace/shop unchanged", "configmap/settings unchanged"]


def test_json_lists_paths_and_dicts(store, tmp_path):
    doc = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}},
    ]}
    path = tmp_path / "list.json"
    path.write_text(json.dumps(doc))
    assert _actions(store.apply(Path(path))) == ["configmap/a created", "configmap/b created"]
    assert _actions(store.apply(doc["items"][0])) == ["configmap/a unchanged"]
    assert [o["metadata"]["name"] for o in load_manifest(json.dumps(doc))] == ["a", "b"]


def test_server_fields_in_a_manifest_are_ignored(store):
    store.apply(APP_YAML)
    live = store.get("svc", "web")
    exported = json.loads(json.dumps(live))  # like `kubectl get -o yaml` output re-applied
    exported["metadata"]["annotations"].pop(LAST_APPLIED)
    exported["metadata"].update(uid="other", resourceVersion="1", generation=7)
    (result,) = store.apply(exported)
    assert str(result) == "service/web configured"  # its manifest now names the namespace
    for field in ("uid", "creationTimestamp", "generation"):
        assert result.object["metadata"][field] == live["metadata"][field]
    assert result.object["spec"] == live["spec"]
    assert _actions(store.apply(exported)) == ["service/web unchanged"]


def test_secrets_with_string_data_are_idempotent(store):
    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                "stringData": {"user": "admin"}}
    assert _actions(store.apply(manifest)) == ["secret/creds created"]
    assert _actions(store.apply(manifest)) == ["secret/creds unchanged"]
    assert store.get("secret", "creds")["data"] == {"user": "YWRtaW4="}


def test_errors(store):
    with pytest.raises(BadRequest, match="error parsing manifest"):
        store.apply("a: [unclosed")
    with pytest.raises(BadRequest, match="needs metadata.name"):
        store.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    with pytest.raises(BadRequest, match="cannot use generate name with apply"):
        store.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "x-"}})
    with pytest.raises(UnknownKind):
        store.apply({"apiVersion": "v9", "kind": "ConfigMap", "metadata": {"name": "x"}})
    with pytest.raises(Invalid):
        store.apply(APP_YAML.replace("replicas: 3", "replicas: three"))
    with pytest.raises(BadRequest, match="must be an object"):
        store.apply("- just\n- a list\n")


def test_dry_run_reports_without_writing(store, kv):
    revision = kv.status().revision
    assert _actions(store.apply(APP_YAML, dry_run=True)) == ["deployment.apps/web created", "service/web created"]
    assert kv.status().revision == revision
    store.apply(APP_YAML)
    changed = APP_YAML.replace("replicas: 3", "replicas: 4")
    assert _actions(store.apply(changed, dry_run=True))[0] == "deployment.apps/web configured"
    assert store.get("deploy", "web")["spec"]["replicas"] == 3
