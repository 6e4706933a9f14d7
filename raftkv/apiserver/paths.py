"""What a Kubernetes API path names: a group and version, a kind, a namespace,
an object and a subresource.

    /api/v1/namespaces/default/pods/web-1/status
    /apis/apps/v1/deployments
    /api/v1/namespaces/default          (the Namespace object "default")
"""

from __future__ import annotations

from dataclasses import dataclass

from raftkv.objects import Kind, KindRegistry, NotFound


@dataclass(frozen=True)
class ResourcePath:
    kind: Kind
    namespace: str | None  # None: every namespace (or a cluster-scoped kind)
    name: str | None = None
    subresource: str | None = None


def _find(kinds: KindRegistry, group: str, version: str, plural: str) -> Kind:
    for kind in kinds:
        if kind.group == group and kind.plural == plural and version in kind.versions:
            return kind
    raise NotFound("the server could not find the requested resource")


def parse(path: str, kinds: KindRegistry) -> ResourcePath | None:
    """The resource a path names, or None when it names none (discovery and
    the like); NotFound for a resource the server does not have."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (group == "" and len(rest) == 3 and
                                                           rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    kind = _find(kinds, group, version, rest[0])
    if namespace is not None and not kind.namespaced:
        raise NotFound("the server could not find the requested resource")
    if len(rest) > 3:
        raise NotFound("the server could not find the requested resource")
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    return ResourcePath(kind, namespace, name, subresource)
