"""What the apiserver decides beyond storing bodies: the type a body gets
from its URL, and the pods/binding subresource a scheduler calls."""

from __future__ import annotations

import datetime
from typing import Any

from raftkv.objects import BadRequest, Conflict, Kind, ObjectStore

_BIND_ATTEMPTS = 10


def typed_body(body: Any, kind: Kind) -> dict[str, Any]:
    """The body of a create or replace, its apiVersion and kind taken from
    the URL when it leaves them out (as kube-apiserver decodes it)."""
    if not isinstance(body, dict):
        raise BadRequest("the body of the request must be a JSON object")
    api_version = body.get("apiVersion")
    if not api_version:
        body["apiVersion"] = kind.api_version
    elif not kind.accepts_api_version(api_version):
        raise BadRequest(f"the API version in the data ({api_version}) does not match the expected "
                         f"API version ({kind.api_version})")
    if not body.get("kind"):
        body["kind"] = kind.kind
    elif body["kind"] != kind.kind:
        raise BadRequest(f"the kind in the data ({body['kind']}) does not match the expected kind ({kind.kind})")
    return body


def bind_pod(store: ObjectStore, namespace: str, name: str, binding: Any, now: datetime.datetime) -> dict[str, Any]:
    """pods/binding: place a pod on the node a Binding names, once. A pod
    already on a node is a Conflict, as kube-apiserver answers a second
    scheduler."""
    target = binding.get("target") if isinstance(binding, dict) else None
    node = target.get("name") if isinstance(target, dict) else None
    if not isinstance(node, str) or not node:
        raise BadRequest("the Binding needs target.name, the node to place the pod on")
    if target.get("kind", "Node") not in ("Node", ""):
        raise BadRequest(f'the Binding target must be a Node, not "{target.get("kind")}"')
    condition = {"type": "PodScheduled", "status": "True",
                 "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")}

    for _ in range(_BIND_ATTEMPTS):
        pod = store.get("pods", name, namespace)
        placed = (pod.get("spec") or {}).get("nodeName")
        if placed:
            raise Conflict.of("pods/binding", "", name, f'pod {name} is already assigned to node "{placed}"')
        pod.setdefault("spec", {})["nodeName"] = node
        status = pod.setdefault("status", {})
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        status["conditions"].append(condition)
        try:
            store.update(pod, namespace)  # compare-and-swap on the resourceVersion read
        except Conflict:
            continue  # the pod changed meanwhile: look again
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
    raise Conflict.of("pods/binding", "", name)
