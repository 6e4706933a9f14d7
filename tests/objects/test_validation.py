"""Names, label keys and values, field types: Kubernetes' rules and wording."""

from __future__ import annotations

import pytest

from raftkv.objects import BadRequest, Invalid, NotFound, UnknownKind
from raftkv.objects.validation import (
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
)

from .helpers import configmap, owner_ref, pod

SUBDOMAIN_MSG = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"
LABEL_MSG = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"


@pytest.mark.parametrize("name, ok", [
    ("web", True), ("my-app.v1", True), ("0abc", True), ("a" * 253, True), ("a.b.c", True),
    ("a" * 254, False), ("Web", False), ("-web", False), ("web-", False), ("web_app", False),
    ("web..app", False), (".web", False), ("", False), ("wéb", False),
])
def test_dns1123_subdomain(name, ok):
    assert (is_dns1123_subdomain(name) == []) is ok


@pytest.mark.parametrize("name, ok", [
    ("default", True), ("kube-system", True), ("a" * 63, True), ("1a", True),
    ("a" * 64, False), ("my.ns", False), ("My", False), ("-a", False),
])
def test_dns1123_label(name, ok):
    assert (is_dns1123_label(name) == []) is ok


@pytest.mark.parametrize("name, ok", [("web1", True), ("1web", False), ("web-", False), ("a" * 64, False)])
def test_dns1035_label(name, ok):
    assert (is_dns1035_label(name) == []) is ok


@pytest.mark.parametrize("key, ok", [
    ("app", True), ("app.kubernetes.io/name", True), ("MyKey", True), ("a_b", True), ("a.b-c_d", True),
    ("x" * 63, True), ("x" * 64, False), ("example.com/" + "x" * 63, True),
    (".".join(["a" * 63] * 4)[:253] + "/k", True), (".".join(["a" * 63] * 4)[:253] + "b/k", False),
    ("example.com/", False), ("/name", False), ("a/b/c", False), ("Example.com/x", False),
    ("_a", False), ("a_", False), ("a b", False), ("", False),
])
def test_label_keys(key, ok):
    assert (is_qualified_name(key) == []) is ok


@pytest.mark.parametrize("value, ok", [
    ("", True), ("v1.2_3-x", True), ("x" * 63, True), ("A", True),
    ("x" * 64, False), ("-x", False), ("x-", False), ("a b", False), ("ü", False), ("a/b", False),
])
def test_label_values(value, ok):
    assert (is_valid_label_value(value) == []) is ok


def test_messages_are_kubernetes_wording():
    assert is_dns1123_subdomain("a" * 254) == ["must be no more than 253 characters"]
    assert is_dns1123_label("my.ns") == ["must not contain dots"]
    assert is_qualified_name("example.com/") == [
        "name part must be non-empty",
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
        "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
        "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    ]
    assert is_valid_label_value("x" * 64) == ["must be no more than 63 characters"]


# ---- through the store ----------------------------------------------------------------

def test_invalid_name_is_rejected_with_the_field_and_value(store):
    with pytest.raises(Invalid) as info:
        store.create(pod("Bad_Name"))
    err = info.value
    assert err.code == 422 and err.reason == "Invalid"
    assert str(err).startswith('Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": ')
    assert SUBDOMAIN_MSG in str(err)
    assert [c.field for c in err.causes] == ["metadata.name"]
    status = err.status()
    assert status["reason"] == "Invalid" and status["code"] == 422
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    assert status["details"]["causes"][0]["reason"] == "FieldValueInvalid"
    assert status["details"]["causes"][0]["message"].startswith('Invalid value: "Bad_Name": ')


def test_name_rules_follow_the_kind(store):
    store.create(configmap("my.config"))  # subdomain: dots allowed
    with pytest.raises(Invalid, match="must not contain dots"):
        store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "my.ns"}})
    with pytest.raises(Invalid, match="a DNS-1035 label must consist"):
        store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1svc"},
                      "spec": {"ports": [{"port": 80}]}})
    with pytest.raises(Invalid, match="must be no more than 253 characters"):
        store.create(configmap("a" * 254))


def test_name_or_generate_name_is_required(store):
    with pytest.raises(Invalid, match="metadata.name: Required value: name or generateName is required"):
        store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})


def test_invalid_labels(store):
    with pytest.raises(Invalid) as info:
        store.create(pod("p", labels={"bad key": "ok", "good": "bad value", "k": "x" * 64}))
    text = str(info.value)
    assert text.startswith('Pod "p" is invalid: [')  # several problems are listed together
    assert 'metadata.labels: Invalid value: "bad key": name part must consist of' in text
    assert 'metadata.labels: Invalid value: "bad value": a valid label must be an empty string' in text
    assert "must be no more than 63 characters" in text
    assert len(info.value.causes) == 3


def test_invalid_annotation_key_and_size(store):
    with pytest.raises(Invalid, match='metadata.annotations: Invalid value: "a/b/c"'):
        store.create(configmap("c", annotations={"a/b/c": "x"}))
    with pytest.raises(Invalid, match="metadata.annotations: Too long: must have at most 262144 bytes"):
        store.create(configmap("c", annotations={"big": "x" * (256 * 1024)}))
    store.create(configmap("c", annotations={"Upper.Case/Key": "x", "big": "x" * 1000}))


def test_invalid_finalizer_and_owner_references(store):
    with pytest.raises(Invalid, match='metadata.finalizers: Invalid value: "bad finalizer"'):
        store.create(configmap("c", finalizers=["bad finalizer"]))
    with pytest.raises(Invalid, match=r"metadata.ownerReferences\[0\].uid: Invalid value: \"\": uid must not be empty"):
        store.create(configmap("c", ownerReferences=[{"apiVersion": "v1", "kind": "Pod", "name": "p"}]))
    owner = store.create(pod("owner"))
    other = store.create(pod("other"))
    with pytest.raises(Invalid, match="Only one reference can have Controller set to true"):
        store.create(configmap("c", ownerReferences=[owner_ref(owner, controller=True),
                                                     owner_ref(other, controller=True)]))


def test_unknown_kind(store):
    with pytest.raises(UnknownKind) as info:
        store.create({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    assert str(info.value) == 'no matches for kind "Widget" in version "example.com/v1"'
    with pytest.raises(UnknownKind, match='no matches for kind "Deployment" in version "v1"'):
        store.create({"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "d"}})
    with pytest.raises(UnknownKind, match="the server doesn't have a resource type \"widgets\""):
        store.list("widgets")
    with pytest.raises(BadRequest, match="Object 'Kind' is missing"):
        store.create({"apiVersion": "v1", "metadata": {"name": "x"}})


def test_namespace_must_exist(store):
    with pytest.raises(NotFound) as info:
        store.create(pod("p", namespace="nope"))
    assert str(info.value) == 'namespaces "nope" not found'
    assert info.value.code == 404
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nope"}})
    assert store.create(pod("p", namespace="nope"))["metadata"]["namespace"] == "nope"


@pytest.mark.parametrize("obj, message", [
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": "3"}},
     'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"'),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": ["a"]}},
     "metadata.labels in body must be of type object"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": 1}}},
     r"metadata.labels\[a\] in body must be of type string"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": {"name": "c"}}},
     "spec.containers in body must be of type array"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
      "spec": {"containers": [{"name": "c", "ports": [{"containerPort": "80"}]}]}},
     r"spec.containers\[0\].ports\[0\].containerPort in body must be of type integer"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"image": "x"}]}},
     r"spec.containers\[0\].name: Required value"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": 1}},
     r"data\[k\] in body must be of type string"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 5}},
     "metadata.name in body must be of type string"),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "Magic"}},
     'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "NodePort"'),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 70000}]}},
     r"spec.ports\[0\].port: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "not base64!"}},
     r"data\[k\]: Invalid value: .*illegal base64 data"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"bad key": "v"}},
     'data: Invalid value: "bad key": a valid config key must consist of alphanumeric characters'),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
      "spec": {"selector": {"matchLabels": {"app": "web"}},
               "template": {"metadata": {"labels": {"app": "db"}}}}},
     "spec.template.metadata.labels: Invalid value: .*`selector` does not match template `labels`"),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"selector": {}}},
     "empty selector is invalid for deployment"),
])
def test_field_types_and_kind_rules(store, obj, message):
    with pytest.raises(Invalid, match=message):
        store.create(obj)


def test_service_target_port_is_int_or_string(store):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8081}]}}
    store.create(svc)
    svc["metadata"]["name"] = "t"
    svc["spec"]["ports"][0]["targetPort"] = 1.5
    with pytest.raises(Invalid, match="must be of type int-or-string"):
        store.create(svc)


def test_unknown_top_level_fields_are_rejected_for_built_in_kinds(store):
    with pytest.raises(BadRequest) as info:
        store.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                      "sepc": {"replicas": 1}})
    assert str(info.value) == 'strict decoding error: unknown field "sepc"'
    assert info.value.code == 400


def test_validation_happens_on_update_too(store):
    created = store.create(pod("p"))
    created["metadata"]["labels"] = {"app": "bad value"}
    with pytest.raises(Invalid):
        store.update(created)
    with pytest.raises(Invalid):
        store.patch("pods", "p", {"spec": {"containers": "nope"}})
    assert store.get("pods", "p")["metadata"].get("labels") is None
