"""Kubernetes' split between an object's main resource and its status
subresource (WritePart), and raftkv's own whole-object writes."""

from __future__ import annotations

import pytest

from raftkv.objects import Conflict, NotFound, WritePart

from .helpers import configmap, pod


def test_the_main_resource_keeps_the_stored_status(store):
    created = store.create(pod("web", status={"phase": "Pending"}), part=WritePart.MAIN)
    assert "status" not in created  # a create through the main resource starts without one
    store.update({**store.get("pods", "web"), "status": {"phase": "Running"}}, part=WritePart.STATUS)
    changed = store.get("pods", "web")
    changed["metadata"]["labels"] = {"app": "web"}
    changed["status"] = {"phase": "Failed"}
    updated = store.update(changed, part=WritePart.MAIN)
    assert updated["metadata"]["labels"] == {"app": "web"} and updated["status"] == {"phase": "Running"}
    patched = store.patch("pods", "web", {"status": {"phase": "Failed"}, "metadata": {"labels": {"v": "2"}}},
                          part=WritePart.MAIN)
    assert patched["status"] == {"phase": "Running"} and patched["metadata"]["labels"]["v"] == "2"


def test_the_status_subresource_writes_the_status_alone(store):
    created = store.create(pod("web"))
    proposed = {**created, "status": {"phase": "Running"}, "spec": {"containers": [{"name": "x", "image": "y"}]}}
    proposed["metadata"] = {**created["metadata"], "labels": {"ignored": "yes"}}
    updated = store.update(proposed, part=WritePart.STATUS)
    assert updated["status"] == {"phase": "Running"}
    assert updated["spec"] == created["spec"] and "labels" not in updated["metadata"]
    patched = store.patch("pods", "web", {"status": {"podIP": "10.1.2.3"}, "spec": {"nodeName": "n1"}},
                          part=WritePart.STATUS)
    assert patched["status"] == {"phase": "Running", "podIP": "10.1.2.3"}
    assert "nodeName" not in patched["spec"]


def test_a_status_update_with_a_stale_resource_version_conflicts(store):
    created = store.create(pod("web"))
    store.patch("pods", "web", {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(Conflict):
        store.update({**created, "status": {"phase": "Running"}}, part=WritePart.STATUS)


def test_a_kind_without_a_status_has_no_status_subresource(store):
    store.create(configmap("settings", data={"a": "1"}))
    with pytest.raises(NotFound):
        store.patch("configmaps", "settings", {"data": {"a": "2"}}, part=WritePart.STATUS)
    main = store.patch("configmaps", "settings", {"data": {"a": "2"}}, part=WritePart.MAIN)
    assert main["data"] == {"a": "2"}


def test_whole_object_writes_change_the_status_too(store):
    store.create(pod("web", status={"phase": "Pending"}))
    assert store.get("pods", "web")["status"] == {"phase": "Pending"}
    updated = store.patch("pods", "web", {"status": {"phase": "Running"}})
    assert updated["status"] == {"phase": "Running"}
