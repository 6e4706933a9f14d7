"""Builders shared by the object-layer tests."""

from __future__ import annotations


class FakeClock:
    """Seconds since the epoch, advanced by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def pod(name: str, namespace: str | None = None, labels: dict | None = None, **extra) -> dict:
    meta: dict = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels is not None:
        meta["labels"] = labels
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
           "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    obj.update(extra)
    return obj


def configmap(name: str, namespace: str | None = None, data: dict | None = None, **meta) -> dict:
    m = {"name": name, **meta}
    if namespace is not None:
        m["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": data or {}}


def namespace(name: str, **meta) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, **meta}}


def owner_ref(owner: dict, *, controller: bool | None = None, block: bool | None = None) -> dict:
    ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"]}
    if controller is not None:
        ref["controller"] = controller
    if block is not None:
        ref["blockOwnerDeletion"] = block
    return ref
