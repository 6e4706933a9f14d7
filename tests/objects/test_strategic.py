"""Strategic merge patches, with the patches kubectl writes."""

from __future__ import annotations

from raftkv.objects.strategic import strategic_merge

DEPLOYMENT = {"spec": {"template": {"spec": {"containers": [
    {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}, {"containerPort": 443}],
     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
    {"name": "sidecar", "image": "envoy"}]}}},
    "metadata": {"finalizers": ["a"], "labels": {"app": "web"}}}


def containers(obj):
    return obj["spec"]["template"]["spec"]["containers"]


def test_lists_with_a_merge_key_merge_item_by_item():
    patched = strategic_merge(DEPLOYMENT, {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1.26", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]}}}})
    web, sidecar = containers(patched)
    assert web["image"] == "nginx:1.26" and sidecar == {"name": "sidecar", "image": "envoy"}
    assert web["ports"] == [{"containerPort": 80}, {"containerPort": 443}]
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    assert containers(DEPLOYMENT)[0]["image"] == "nginx:1.25"  # the original is untouched


def test_directives_kubectl_writes():
    patched = strategic_merge(DEPLOYMENT, {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
        "containers": [{"name": "web", "$setElementOrder/ports": [{"containerPort": 443}],
                        "ports": [{"containerPort": 80, "$patch": "delete"}]}]}}},
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "labels": {"app": None, "tier": "x"}}})
    assert [c["name"] for c in containers(patched)] == ["sidecar", "web"]
    assert containers(patched)[1]["ports"] == [{"containerPort": 443}]
    assert patched["metadata"] == {"finalizers": [], "labels": {"tier": "x"}}
    assert not any(k.startswith("$") for c in containers(patched) for k in c)


def test_replace_and_lists_without_a_merge_key():
    patched = strategic_merge({"spec": {"tolerations": [{"key": "a"}], "selector": {"x": "1", "y": "2"}}},
                              {"spec": {"tolerations": [{"key": "b"}], "selector": {"$patch": "replace", "z": "3"}}})
    assert patched == {"spec": {"tolerations": [{"key": "b"}], "selector": {"z": "3"}}}
    service = strategic_merge({"spec": {"ports": [{"port": 80, "name": "http"}]}},
                              {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}})
    assert service["spec"]["ports"] == [{"port": 80, "name": "http", "targetPort": 8080}, {"port": 443}]
    assert strategic_merge({"metadata": {"finalizers": ["a"]}}, {"metadata": {"finalizers": ["b", "a"]}}) == \
        {"metadata": {"finalizers": ["a", "b"]}}
