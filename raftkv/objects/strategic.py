"""Strategic merge patches, as Kubernetes applies them to its built-in kinds.

Like a JSON merge patch, but a list with a merge key is merged item by item
(containers by name, a container's ports by containerPort, a Service's ports
by port, ...), and a patch may carry the directives kubectl writes:
``$patch: replace|delete|merge``, ``$setElementOrder/<list>``,
``$deleteFromPrimitiveList/<list>`` and ``$retainKeys``. A list without a
merge key is replaced whole, as in a merge patch.
"""

from __future__ import annotations

import copy
from typing import Any

# merge keys by list name; "ports" depends on where it is (see _merge_key)
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "imagePullSecrets": "name",
    "hostAliases": "ip", "topologySpreadConstraints": "topologyKey", "resourceClaims": "name",
    "conditions": "type", "ownerReferences": "uid", "readinessGates": "conditionType",
}
# primitive lists merged as sets rather than replaced
MERGED_PRIMITIVE_LISTS = {"finalizers"}
_DIRECTIVE = "$patch"
_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVES = "$deleteFromPrimitiveList/"
_RETAIN = "$retainKeys"


def _merge_key(path: tuple[str, ...], name: str) -> str | None:
    if name == "ports":
        return "containerPort" if any(p in ("containers", "initContainers", "ephemeralContainers")
                                      for p in path) else "port"
    return MERGE_KEYS.get(name)


def strategic_merge(original: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    """``original`` with ``patch`` applied (neither is changed)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get(_DIRECTIVE) == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != _DIRECTIVE}
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if key in (_DIRECTIVE, _RETAIN) or key.startswith((_ORDER, _DELETE_PRIMITIVES)):
            continue
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        merge_key = _merge_key(path, key)
        if isinstance(value, list) and merge_key and isinstance(current, list):
            result[key] = _merge_list(current, value, merge_key, path + (key,))
        elif isinstance(value, list) and key in MERGED_PRIMITIVE_LISTS and isinstance(current, list):
            result[key] = current + [v for v in value if v not in current]
        elif isinstance(value, dict):
            if value.get(_DIRECTIVE) == "delete":
                result.pop(key, None)
            else:
                result[key] = strategic_merge(current, value, path + (key,))
        else:
            result[key] = copy.deepcopy(value)
    for key, value in patch.items():
        if key.startswith(_DELETE_PRIMITIVES) and isinstance(result.get(key[len(_DELETE_PRIMITIVES):]), list):
            name = key[len(_DELETE_PRIMITIVES):]
            result[name] = [v for v in result[name] if v not in value]
        elif key.startswith(_ORDER) and isinstance(result.get(key[len(_ORDER):]), list):
            name = key[len(_ORDER):]
            result[name] = _ordered(result[name], value, _merge_key(path, name))
    if isinstance(patch.get(_RETAIN), list):
        keep = set(patch[_RETAIN])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_list(current: list, patch: list, merge_key: str, path: tuple[str, ...]) -> list:
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            merged.append(copy.deepcopy(item))
            continue
        at = next((i for i, old in enumerate(merged) if isinstance(old, dict)
                   and old.get(merge_key) == item[merge_key]), None)
        if item.get(_DIRECTIVE) == "delete":
            if at is not None:
                del merged[at]
        elif at is None:
            merged.append(strategic_merge({}, item, path))
        else:
            merged[at] = strategic_merge(merged[at], item, path)
    return merged


def _ordered(items: list, order: list, merge_key: str | None) -> list:
    """``items`` in the order kubectl asked for; items it does not name keep theirs, after."""
    def identity(item: Any) -> Any:
        return item.get(merge_key) if merge_key and isinstance(item, dict) else item

    wanted = [identity(o) for o in order]
    named = sorted((i for i in items if identity(i) in wanted), key=lambda i: wanted.index(identity(i)))
    return named + [i for i in items if identity(i) not in wanted]
