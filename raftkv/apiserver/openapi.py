"""OpenAPI v3, as much as kubectl reads: which group-versions exist, and that
each kind's PATCH takes the ``fieldValidation`` parameter (kubectl then asks
the server to validate, instead of validating against schemas itself)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from raftkv.objects import Kind, KindRegistry


def _group_version(kind: Kind, version: str) -> str:
    return f"apis/{kind.group}/{version}" if kind.group else f"api/{version}"


def index(kinds: KindRegistry) -> dict[str, Any]:
    paths = {}
    for group_version in sorted({_group_version(k, v) for k in kinds for v in k.versions}):
        digest = hashlib.sha256(json.dumps(document(kinds, group_version), sort_keys=True).encode()).hexdigest()
        paths[group_version] = {"serverRelativeURL": f"/openapi/v3/{group_version}?hash={digest[:32].upper()}"}
    return {"paths": paths}


def document(kinds: KindRegistry, group_version: str) -> dict[str, Any] | None:
    paths: dict[str, Any] = {}
    for kind in kinds:
        for version in kind.versions:
            if _group_version(kind, version) != group_version:
                continue
            scope = "/namespaces/{namespace}" if kind.namespaced else ""
            gvk = {"group": kind.group, "version": version, "kind": kind.kind}
            parameters = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                          {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                          {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}]
            operation = {"x-kubernetes-group-version-kind": gvk, "parameters": parameters,
                         "responses": {"200": {"description": "OK"}}}
            paths[f"/{group_version}{scope}/{kind.plural}/{{name}}"] = {
                "get": {**operation, "parameters": []}, "put": operation, "patch": operation,
                "delete": {**operation, "parameters": []}}
            paths[f"/{group_version}{scope}/{kind.plural}"] = {"post": operation}
    if not paths:
        return None
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0-raftkv"}, "paths": paths}
