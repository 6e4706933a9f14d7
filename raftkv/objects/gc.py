"""The garbage collector: cascading deletion through ownerReferences,
finalizers, and the emptying of terminating namespaces.

It follows Kubernetes' garbage collector, run synchronously by the client
that deletes: when an object goes away, each dependent whose owners are all
gone (or are being deleted in the foreground) is deleted, and one with a
remaining owner only loses the reference to the dead one. An owner deleted
in the foreground keeps a ``foregroundDeletion`` finalizer until no
dependent with ``blockOwnerDeletion`` remains; one deleted with the Orphan
policy keeps an ``orphan`` finalizer until its dependents no longer name it.
Each step is its own guarded txn, so an interrupted cascade is left in a
state ``collect()`` finishes.

Dependents are found through the owner index the store keeps beside the
objects (see keys.py); ``collect()`` scans every object instead, so it also
finds what was written around the layer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from raftkv.errors import RaftKVError
from raftkv.objects.admission import FOREGROUND, NAMESPACE_FINALIZER, ORPHAN
from raftkv.objects.errors import Conflict, NotFound, ObjectError, UnknownKind
from raftkv.objects.kinds import CRD_KIND, Kind, kind_from_crd

if TYPE_CHECKING:
    from raftkv.objects.store import ObjectStore

log = logging.getLogger(__name__)

Ref = tuple[Kind, str, str]  # kind, namespace, name
_UNRESOLVABLE = object()


def _refs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj["metadata"].get("ownerReferences") or [])


def _is(kind: Kind, name: str) -> bool:
    return kind.builtin and kind.kind == name


class _CallState(threading.local):
    """One thread's state of the delete it is cascading (nested calls share it)."""

    def __init__(self) -> None:
        self.depth = 0
        self.busy: set[str] | None = None  # owners whose dependents are being processed
        self.quiet: set[str] | None = None  # namespaces being emptied


class GarbageCollector:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._local = _CallState()

    # ---- per-call state -------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[None]:
        local = self._local
        if local.depth == 0:
            local.busy = set()
            local.quiet = set()
        local.depth += 1
        try:
            yield
        finally:
            local.depth -= 1
            if local.depth == 0:
                local.busy = local.quiet = None

    def _dependents(self, kind: Kind, owner: dict[str, Any]) -> list[Ref]:
        uid = owner["metadata"].get("uid")
        return self.store.dependents_of(uid) if uid else []

    # ---- reactions --------------------------------------------------------------

    def after_removal(self, kind: Kind, obj: dict[str, Any]) -> None:
        """An object has just been removed from the store. A failure here is
        logged, not raised: the removal stands, and ``collect()`` finishes
        what could not be done now."""
        try:
            self._after_removal(kind, obj)
        except RaftKVError as e:
            log.warning("garbage collection after removing %s %s failed: %s",
                        kind.kind, obj["metadata"].get("name"), e)

    def _after_removal(self, kind: Kind, obj: dict[str, Any]) -> None:
        with self.session():
            m = obj["metadata"]
            ns = m.get("namespace", "")
            quiet = kind.namespaced and ns in self._local.quiet
            if not quiet:
                for ref in self._dependents(kind, obj):
                    self._attempt_to_delete(ref)
            for ref in _refs(obj):
                if ref.get("uid") in self._local.busy:
                    continue
                owner = self._owner(ref, ns if kind.namespaced else "")
                if isinstance(owner, tuple):
                    owner_kind, owner_obj = owner
                    if owner_obj["metadata"].get("deletionTimestamp") and \
                            FOREGROUND in (owner_obj["metadata"].get("finalizers") or []):
                        self._foreground(owner_kind, owner_obj)
            if kind.namespaced and not quiet:
                self._maybe_finalize_namespace(ns)
            if _is(kind, CRD_KIND):
                self._remove_custom_resources(obj)

    def process_deleting(self, kind: Kind, obj: dict[str, Any]) -> None:
        """An object has a deletionTimestamp: do what its finalizers wait for.
        Failures are logged and left for ``collect()``, as after a removal."""
        try:
            self._process_deleting(kind, obj)
        except RaftKVError as e:
            log.warning("garbage collection of %s %s failed: %s", kind.kind, obj["metadata"].get("name"), e)

    def _process_deleting(self, kind: Kind, obj: dict[str, Any]) -> None:
        with self.session():
            finalizers = obj["metadata"].get("finalizers") or []
            if ORPHAN in finalizers:
                self._orphan(kind, obj)
            if FOREGROUND in finalizers:
                self._foreground(kind, obj)
            if _is(kind, "Namespace"):
                self._empty_namespace(obj["metadata"]["name"])

    def collect(self) -> int:
        acted = 0
        with self.session():
            for kind in list(self.store.kinds):
                for obj, _ in list(self.store.scan_stored(kind, None, tolerant=True)):
                    m = obj["metadata"]
                    if m.get("deletionTimestamp"):
                        finalizers = m.get("finalizers") or []
                        if ORPHAN in finalizers or FOREGROUND in finalizers or _is(kind, "Namespace"):
                            self.process_deleting(kind, obj)
                            acted += 1
                    elif _refs(obj):
                        if self._attempt_to_delete((kind, m.get("namespace", ""), m["name"])):
                            acted += 1
        if acted:
            log.info("garbage collection pass acted on %d objects", acted)
        return acted

    # ---- steps --------------------------------------------------------------------

    def _owner(self, ref: dict[str, Any], namespace: str) -> Any:
        """(kind, object) of a live owner; None if it is gone (dangling);
        _UNRESOLVABLE if the reference cannot be checked."""
        try:
            kind = self.store.kinds.for_object(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
        except UnknownKind:
            return _UNRESOLVABLE
        if kind.namespaced and not namespace:
            return _UNRESOLVABLE  # a cluster-scoped dependent cannot have a namespaced owner
        found = self.store.read_stored(kind, namespace if kind.namespaced else None, str(ref.get("name", "")))
        if found is None or found[0]["metadata"].get("uid") != ref.get("uid"):
            return None
        return kind, found[0]

    def _attempt_to_delete(self, target: Ref) -> bool:
        kind, ns, name = target
        found = self.store.read_stored(kind, ns or None, name)
        if found is None:
            return False
        obj = found[0]
        m = obj["metadata"]
        solid, gone = [], set()
        waiting = False
        for ref in _refs(obj):
            owner = self._owner(ref, ns)
            if owner is None:
                gone.add(ref.get("uid"))
            elif owner is not _UNRESOLVABLE and owner[1]["metadata"].get("deletionTimestamp") and \
                    FOREGROUND in (owner[1]["metadata"].get("finalizers") or []):
                gone.add(ref.get("uid"))
                waiting = True
            else:
                solid.append(ref)
        if not gone:
            return False
        if solid:
            self._drop_references(kind, obj, gone)
            return True
        if m.get("deletionTimestamp"):
            return False
        policy = "Foreground" if waiting and self._dependents(kind, obj) else "Background"
        log.info("garbage collecting %s %s/%s policy=%s", kind.kind, ns, name, policy)
        try:
            self.store.delete(kind, name, ns or None, uid=m.get("uid"), propagation_policy=policy)
        except (NotFound, Conflict):
            return False
        return True

    def _drop_references(self, kind: Kind, obj: dict[str, Any], uids: set[Any]) -> None:
        m = obj["metadata"]
        uid = m.get("uid")

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            cm = current["metadata"]
            if cm.get("uid") != uid:
                return current
            kept = [r for r in cm.get("ownerReferences") or [] if r.get("uid") not in uids]
            if kept:
                cm["ownerReferences"] = kept
            else:
                cm.pop("ownerReferences", None)
            return current

        self._update(kind, m.get("namespace"), m["name"], mutate)

    def _remove_finalizer(self, kind: Kind, obj: dict[str, Any], finalizer: str) -> None:
        m = obj["metadata"]
        uid = m.get("uid")

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            cm = current["metadata"]
            if cm.get("uid") != uid:
                return current
            kept = [f for f in cm.get("finalizers") or [] if f != finalizer]
            if kept:
                cm["finalizers"] = kept
            else:
                cm.pop("finalizers", None)
            return current

        self._update(kind, m.get("namespace"), m["name"], mutate)

    def _update(self, kind: Kind, namespace: str | None, name: str, mutate: Any) -> None:
        try:
            self.store.guaranteed_update(kind, namespace or None, name, mutate, expected_rv=None,
                                         retry=True, missing_ok=True)
        except ObjectError as e:
            log.warning("garbage collector could not update %s %s/%s: %s", kind.kind, namespace, name, e)

    def _orphan(self, kind: Kind, owner: dict[str, Any]) -> None:
        uid = owner["metadata"].get("uid")
        self._local.busy.add(uid)
        try:
            for dk, dns, dname in self._dependents(kind, owner):
                found = self.store.read_stored(dk, dns or None, dname)
                if found is not None:
                    self._drop_references(dk, found[0], {uid})
        finally:
            self._local.busy.discard(uid)
        self._remove_finalizer(kind, owner, ORPHAN)

    def _foreground(self, kind: Kind, owner: dict[str, Any]) -> None:
        uid = owner["metadata"].get("uid")
        if uid in self._local.busy:
            return
        self._local.busy.add(uid)
        try:
            dependents = self._dependents(kind, owner)
            for ref in dependents:
                self._attempt_to_delete(ref)
            blocked = False
            for dk, dns, dname in dependents:
                found = self.store.read_stored(dk, dns or None, dname)
                if found is not None and any(r.get("uid") == uid and r.get("blockOwnerDeletion") is True
                                             for r in _refs(found[0])):
                    blocked = True
                    break
        finally:
            self._local.busy.discard(uid)
        if blocked:
            log.info("foreground deletion of %s %s waits for blocking dependents",
                     kind.kind, owner["metadata"]["name"])
        else:
            self._remove_finalizer(kind, owner, FOREGROUND)

    def _empty_namespace(self, namespace: str) -> None:
        self._local.quiet.add(namespace)
        try:
            for kind in list(self.store.kinds):
                if not kind.namespaced:
                    continue
                for obj, _ in list(self.store.scan_stored(kind, namespace)):
                    m = obj["metadata"]
                    if m.get("deletionTimestamp"):
                        continue
                    try:
                        self.store.delete(kind, m["name"], namespace, uid=m.get("uid"))
                    except (NotFound, Conflict):
                        pass
        finally:
            self._local.quiet.discard(namespace)
        self._maybe_finalize_namespace(namespace)

    def _maybe_finalize_namespace(self, namespace: str) -> None:
        store = self.store
        ns_kind = store.kinds.for_object("v1", "Namespace")
        found = store.read_stored(ns_kind, None, namespace)
        if found is None or not found[0]["metadata"].get("deletionTimestamp"):
            return
        if any(store.count_stored(k, namespace) for k in list(store.kinds) if k.namespaced):
            return

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            spec = current.get("spec") or {}
            spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != NAMESPACE_FINALIZER]
            current["spec"] = spec
            return current

        log.info("namespace %s is empty: finalizing", namespace)
        self._update(ns_kind, None, namespace, mutate)

    def _remove_custom_resources(self, crd: dict[str, Any]) -> None:
        try:
            defined = kind_from_crd(crd)
            kind = self.store.kinds.for_object(defined.api_version, defined.kind)
        except (ObjectError, UnknownKind):
            return
        for obj, _ in list(self.store.scan_stored(kind, None)):
            m = obj["metadata"]
            try:
                self.store.delete(kind, m["name"], m.get("namespace") or None, uid=m.get("uid"))
            except (NotFound, Conflict):
                pass
        self.store.kinds.unregister(kind)
