"""Discovery documents: which groups, versions and resources the server has.

kubectl asks first for aggregated discovery; an answer of plain JSON makes
it use these documents (/api, /apis, /api/v1, /apis/<group>/<version>).
"""

from __future__ import annotations

from typing import Any

from raftkv.objects import Kind, KindRegistry

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
KUBERNETES_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-raftkv", "gitCommit": "",
                      "gitTreeState": "clean", "buildDate": "", "goVersion": "", "compiler": "raftkv",
                      "platform": "linux/amd64"}
# subresources the server serves for a kind: status for every kind with one, pods/binding, scale for these
SCALABLE = {("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet")}


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}


def api_groups(kinds: KindRegistry) -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for kind in kinds:
        if kind.group:
            versions = groups.setdefault(kind.group, [])
            versions.extend(v for v in kind.versions if v not in versions)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": group, "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
         "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]}}
        for group, versions in sorted(groups.items())]}


def _resource(kind: Kind) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": kind.plural, "singularName": kind.singular, "namespaced": kind.namespaced,
                             "kind": kind.kind, "verbs": VERBS}
    if kind.short_names:
        entry["shortNames"] = list(kind.short_names)
    return entry


def resource_list(kinds: KindRegistry, group: str, version: str) -> dict[str, Any] | None:
    found = [k for k in kinds if k.group == group and version in k.versions]
    if not found:
        return None
    resources = []
    for kind in sorted(found, key=lambda k: k.plural):
        resources.append(_resource(kind))
        if (kind.group, kind.kind) == ("", "Pod"):
            resources.append({"name": "pods/binding", "singularName": "", "namespaced": True,
                              "kind": "Binding", "verbs": ["create"]})
        if kind.status_subresource:
            resources.append({"name": f"{kind.plural}/status", "singularName": "", "namespaced": kind.namespaced,
                              "kind": kind.kind, "verbs": ["get", "patch", "update"]})
        if (kind.group, kind.kind) in SCALABLE:
            resources.append({"name": f"{kind.plural}/scale", "singularName": "", "namespaced": True,
                              "group": "autoscaling", "version": "v1", "kind": "Scale",
                              "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


def api_group(kinds: KindRegistry, group: str) -> dict[str, Any] | None:
    for entry in api_groups(kinds)["groups"]:
        if entry["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **entry}
    return None
