"""Declarative apply: create or update every object of a manifest.

As ``kubectl apply`` (client-side): the manifest of each object is kept in
its ``kubectl.kubernetes.io/last-applied-configuration`` annotation, and an
update lays the new manifest over the live object, dropping the fields the
previous manifest set and this one no longer does, keeping fields others
set. Applying the same manifest again changes nothing and reports
"unchanged".
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from raftkv.objects.errors import AlreadyExists, BadRequest, Conflict, NotFound
from raftkv.objects.patch import three_way_merge

if TYPE_CHECKING:
    from raftkv.objects.store import ObjectStore

log = logging.getLogger(__name__)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CREATED = "created"
CONFIGURED = "configured"
UNCHANGED = "unchanged"
_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "managedFields", "selfLink")


@dataclass
class ApplyResult:
    kind: str
    group: str
    name: str
    namespace: str  # "" for cluster-scoped objects
    action: str  # "created", "configured" or "unchanged"
    object: dict[str, Any]

    def __str__(self) -> str:
        resource = f"{self.kind.lower()}.{self.group}" if self.group else self.kind.lower()
        return f"{resource}/{self.name} {self.action}"


class _Loader(yaml.SafeLoader):
    """YAML as Kubernetes reads it: timestamps stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_manifest(manifest: Any) -> list[dict[str, Any]]:
    """The objects of a manifest: YAML or JSON text (several documents
    allowed), a Path to such a file, a dict, or a list of dicts. ``kind: List``
    documents are expanded."""
    if isinstance(manifest, Path):
        manifest = manifest.read_text()
    if isinstance(manifest, bytes):
        manifest = manifest.decode()
    if isinstance(manifest, str):
        try:
            docs = [d for d in yaml.load_all(manifest, Loader=_Loader) if d is not None]
        except yaml.YAMLError as e:
            raise BadRequest(f"error parsing manifest: {e}") from None
    elif isinstance(manifest, dict):
        docs = [manifest]
    elif isinstance(manifest, list):
        docs = list(manifest)
    else:
        raise BadRequest(f"a manifest must be text, a dict or a list, not {type(manifest).__name__}")
    out: list[dict[str, Any]] = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise BadRequest(f"a manifest document must be an object, got {type(doc).__name__}")
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out.extend(load_manifest(doc["items"]))
        else:
            out.append(doc)
    return out


def apply_manifest(store: ObjectStore, manifest: Any, namespace: str | None = None, *,
                   dry_run: bool = False) -> list[ApplyResult]:
    """Apply each object in order (a CRD before the resources it defines);
    the first failure is raised, the objects before it stay applied."""
    return [apply_object(store, doc, namespace, dry_run=dry_run) for doc in load_manifest(manifest)]


def apply_object(store: ObjectStore, doc: dict[str, Any], namespace: str | None = None, *,
                 dry_run: bool = False) -> ApplyResult:
    kind = store.kind_of(doc)
    desired = copy.deepcopy(doc)
    meta = desired.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        if isinstance(meta, dict) and meta.get("generateName"):
            raise BadRequest("cannot use generate name with apply")
        raise BadRequest(f"a {kind.kind} to apply needs metadata.name")
    for name in _SERVER_FIELDS:
        meta.pop(name, None)
    if kind.namespaced:
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise BadRequest(f'the namespace from the provided object "{meta["namespace"]}" does not match '
                             f'the namespace "{namespace}". You must pass \'namespace="{meta["namespace"]}"\' '
                             "to perform this operation.")
        ns = meta.get("namespace") or namespace or "default"
    else:
        ns = ""
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    last = copy.deepcopy(desired)
    last_meta = last["metadata"]
    if annotations:
        last_meta["annotations"] = annotations
    else:
        last_meta.pop("annotations", None)
    meta["annotations"] = {**annotations,
                           LAST_APPLIED: json.dumps(last, sort_keys=True, separators=(",", ":")) + "\n"}
    name = meta["name"]
    while True:
        try:
            live = store.get(kind, name, ns or None)
        except NotFound:
            try:
                created = store.create(desired, ns or None, dry_run=dry_run)
            except AlreadyExists:
                continue  # someone else created it meanwhile: update it instead
            log.info("apply: %s/%s created", kind.resource, name)
            return ApplyResult(kind.kind, kind.group, name, ns, CREATED, created)
        previous = (live["metadata"].get("annotations") or {}).get(LAST_APPLIED)
        try:
            previous_doc = json.loads(previous) if previous else None
        except ValueError:
            previous_doc = None
        merged = three_way_merge(live, previous_doc, desired)
        merged["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        try:
            result = store.update(merged, ns or None, dry_run=dry_run)
        except Conflict:
            continue
        unchanged = result == live
        action = UNCHANGED if unchanged else CONFIGURED
        log.info("apply: %s/%s %s", kind.resource, name, action)
        return ApplyResult(kind.kind, kind.group, name, ns, action, result)
