"""Discovery documents: which groups, versions and resources the server has.

kubectl asks first for aggregated discovery (apidiscovery.k8s.io/v2: every
group, version and resource of /api or /apis in one answer); a client that
does not ask gets the classic documents (/api, /apis, /api/v1,
/apis/<group>/<version>).
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


AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> bool:
    """Whether the client takes aggregated discovery (apidiscovery.k8s.io/v2), as kubectl asks first."""
    for choice in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in choice.split(";")[1:])
        if (params.get("g"), params.get("v"), params.get("as")) == ("apidiscovery.k8s.io", "v2",
                                                                     "APIGroupDiscoveryList"):
            return True
    return False


def _discovered_resource(kind: Kind, version: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": kind.plural, "singularResource": kind.singular, "scope": kind.scope, "verbs": VERBS,
        "responseKind": {"group": kind.group, "version": version, "kind": kind.kind},
    }
    if kind.short_names:
        entry["shortNames"] = list(kind.short_names)
    subresources = []
    if kind.status_subresource:
        subresources.append({"subresource": "status", "verbs": ["get", "patch", "update"],
                             "responseKind": {"group": kind.group, "version": version, "kind": kind.kind}})
    if (kind.group, kind.kind) in SCALABLE:
        subresources.append({"subresource": "scale", "verbs": ["get", "patch", "update"],
                             "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}})
    if (kind.group, kind.kind) == ("", "Pod"):
        subresources.append({"subresource": "binding", "verbs": ["create"],
                             "responseKind": {"group": "", "version": "v1", "kind": "Binding"}})
    if subresources:
        entry["subresources"] = subresources
    return entry


def aggregated(kinds: KindRegistry, core: bool) -> dict[str, Any]:
    """/api (``core``) or /apis as one APIGroupDiscoveryList."""
    groups: dict[str, dict[str, list[Kind]]] = {}
    for kind in kinds:
        if (kind.group == "") == core:
            for version in kind.versions:
                groups.setdefault(kind.group, {}).setdefault(version, []).append(kind)
    items = []
    for group, versions in sorted(groups.items()):
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": [
            {"version": version, "freshness": "Current",
             "resources": [_discovered_resource(k, version) for k in sorted(listed, key=lambda k: k.plural)]}
            for version, listed in versions.items()]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": items}
