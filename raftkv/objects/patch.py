"""Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
Kubernetes' strategic merge patch (``strategic.py``)."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import jsonpointer

from raftkv.objects.errors import BadRequest, FieldError, Invalid
from raftkv.objects.strategic import strategic_merge

MERGE = "merge"
JSON = "json"
STRATEGIC = "strategic"
PATCH_TYPES = {
    MERGE: MERGE, "application/merge-patch+json": MERGE,
    JSON: JSON, "application/json-patch+json": JSON,
    STRATEGIC: STRATEGIC, "application/strategic-merge-patch+json": STRATEGIC,
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def create_merge_patch(source: Any, target: Any) -> Any:
    """The merge patch that turns ``source`` into ``target``."""
    if not isinstance(source, dict) or not isinstance(target, dict):
        return copy.deepcopy(target)
    patch: dict[str, Any] = {}
    for key in source:
        if key not in target:
            patch[key] = None
    for key, value in target.items():
        if key not in source:
            patch[key] = copy.deepcopy(value)
        elif source[key] != value:
            patch[key] = create_merge_patch(source[key], value)
    return patch


def decode_patch(patch: Any, patch_type: str) -> Any:
    """A patch given as a dict/list or as JSON text, checked for its type."""
    if isinstance(patch, (bytes, str)):
        try:
            patch = json.loads(patch)
        except ValueError as e:
            raise BadRequest(f"error decoding patch: {e}") from None
    if patch_type in (MERGE, STRATEGIC) and not isinstance(patch, dict):
        raise BadRequest("a merge patch must be a JSON object")
    if patch_type == JSON:
        if not isinstance(patch, list):
            raise BadRequest("a JSON patch must be a JSON array of operations")
        try:
            jsonpatch.JsonPatch(patch)
        except (jsonpatch.InvalidJsonPatch, jsonpointer.JsonPointerException, TypeError) as e:
            raise BadRequest(f"invalid JSON patch: {e}") from None
    return patch


def apply_patch(obj: dict[str, Any], patch: Any, patch_type: str, *, qualified_kind: str = "",
                name: str = "") -> dict[str, Any]:
    """Apply a decoded patch. A JSON patch that cannot apply (a failed test,
    a missing path) is Invalid, as Kubernetes answers with 422."""
    if patch_type == MERGE:
        return merge_patch(obj, patch)
    if patch_type == STRATEGIC:
        return strategic_merge(obj, patch)
    try:
        result = jsonpatch.JsonPatch(patch).apply(obj, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, KeyError, IndexError,
            TypeError) as e:
        raise Invalid.of(qualified_kind, name, [FieldError("patch", "Invalid value", patch, str(e))]) from None
    if not isinstance(result, dict):
        raise Invalid.of(qualified_kind, name,
                         [FieldError("patch", "Invalid value", patch, "the patched document is not an object")])
    return result


def patch_mentions_resource_version(patch: Any, patch_type: str) -> bool:
    """Whether the patch sets metadata.resourceVersion (then it is a precondition)."""
    if patch_type in (MERGE, STRATEGIC):
        meta = patch.get("metadata") if isinstance(patch, dict) else None
        return isinstance(meta, dict) and meta.get("resourceVersion") is not None
    return any(isinstance(op, dict) and str(op.get("path", "")).startswith("/metadata/resourceVersion")
               and op.get("op") in ("add", "replace", "copy", "move")
               for op in patch)


def three_way_merge(live: Any, last_applied: Any, desired: Any) -> Any:
    """kubectl's client-side apply: ``desired`` laid over ``live``, minus the
    fields ``last_applied`` had and ``desired`` dropped. Objects merge key by
    key; lists and scalars are replaced; a null in ``desired`` deletes."""
    if not isinstance(desired, dict) or not isinstance(live, dict):
        return copy.deepcopy(desired)
    last = last_applied if isinstance(last_applied, dict) else {}
    out = copy.deepcopy(live)
    for key in last:
        if key not in desired:
            out.pop(key, None)
    for key, value in desired.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = three_way_merge(out[key], last.get(key), value)
        else:
            out[key] = copy.deepcopy(value)
    return out
