"""Tables: what ``kubectl get`` prints, computed by the server (Accept ...;as=Table)."""

from __future__ import annotations

from typing import Any

from raftkv.objects import Kind
from raftkv.objects.columns import COLUMNS, WIDE, age, field


def wants_table(accept: str) -> bool:
    return any("as=Table" in part for part in accept.split(","))


def _definition(name: str, priority: int) -> dict[str, Any]:
    return {"name": name, "type": "string", "format": "name" if name == "NAME" else "", "description": "",
            "priority": priority}


def table(kind: Kind, objects: list[dict[str, Any]], resource_version: str = "",
          continue_token: str | None = None) -> dict[str, Any]:
    columns = [("NAME", lambda o: field(o, "metadata", "name", default=""), 0)]
    if kind.builtin:
        columns += [(header, fn, 0) for header, fn in COLUMNS.get(kind.kind, [])]
    if not (kind.builtin and kind.kind == "CustomResourceDefinition"):
        columns.append(("AGE", age, 0))
    if kind.builtin:
        columns += [(header, fn, 1) for header, fn in WIDE.get(kind.kind, [])]
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
        "columnDefinitions": [_definition(header, priority) for header, _, priority in columns],
        "rows": [{"cells": [fn(o) for _, fn, _ in columns],
                  "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o.get("metadata", {})}}
                 for o in objects],
    }
