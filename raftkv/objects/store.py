"""ObjectStore: Kubernetes-style resources on any raftkv connection.

Every read-modify-write is one txn guarded by the key's revisions:

* create: ``create_revision(key) == 0`` (and the namespace unchanged since it
  was checked), then put;
* update, patch, finalizer changes: ``mod_revision(key) == <revision read>``,
  then put; a stale resourceVersion is a Conflict, never a lost update;
* delete: ``mod_revision(key) == <revision read>``, then delete, so uid and
  resourceVersion preconditions hold at the moment of the delete.

Lists read one range at a single revision; continue tokens carry that
revision, so every page comes from the same snapshot.
"""

from __future__ import annotations

import base64
import binascii
import copy
import enum
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from raftkv.client import ops
from raftkv.client.api import KVClient
from raftkv.errors import Compacted, FutureRevision, RequestTooLarge
from raftkv.mvcc.types import KeyValue
from raftkv.objects import admission, keys, services
from raftkv.objects.crypto import Encryptor, as_encryptor, is_encrypted
from raftkv.objects.errors import (
    CONTINUE_TOO_OLD,
    AlreadyExists,
    BadRequest,
    Conflict,
    Expired,
    FieldError,
    Forbidden,
    InternalError,
    Invalid,
    NotFound,
    RequestEntityTooLarge,
    Timeout,
    UnknownKind,
)
from raftkv.objects.fields import FieldSelectorLike, as_field_selector
from raftkv.objects.gc import GarbageCollector
from raftkv.objects.kinds import CRD_GROUP, CRD_KIND, Kind, KindRegistry, kind_from_crd
from raftkv.objects.patch import (
    MERGE,
    PATCH_TYPES,
    apply_patch,
    decode_patch,
    patch_mentions_resource_version,
)
from raftkv.objects.selectors import LabelSelectorLike, as_selector
from raftkv.objects.services import ServiceRanges

log = logging.getLogger(__name__)

T = TypeVar("T")
KindRef = str | Kind
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
DEFAULT_NAMESPACE = "default"
_CREATE_ATTEMPTS = 8
_LIST_BATCH = 256


class WritePart(enum.Enum):
    """What a write may change."""

    WHOLE = "whole"  # every field: raftkv's own API
    MAIN = "main"  # Kubernetes' main resource: the stored status stays, for kinds with a status subresource
    STATUS = "status"  # Kubernetes' status subresource: the status alone


@dataclass
class ObjectList:
    """One page of a list. ``continue_token`` is None on the last page."""

    api_version: str
    kind: str  # e.g. "PodList"
    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None = None
    remaining_item_count: int | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def names(self) -> list[str]:
        return [o["metadata"]["name"] for o in self.items]

    def to_dict(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"resourceVersion": self.resource_version}
        if self.continue_token:
            metadata["continue"] = self.continue_token
        if self.remaining_item_count is not None:
            metadata["remainingItemCount"] = self.remaining_item_count
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata,
                "items": copy.deepcopy(self.items)}


@dataclass
class _Token:
    revision: int
    start: str  # the key to go on from, relative to the list's prefix


def encode_continue(revision: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> _Token:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError(f"unsupported version {data.get('v')!r}")
        revision, start = data["rv"], data["start"]
        if not isinstance(revision, int) or revision <= 0 or not isinstance(start, str):
            raise ValueError("incorrect encoded start resourceVersion")
        if start.startswith("/") or "\x00" in start.rstrip("\x00") or ".." in start.split("/"):
            raise ValueError("illegal start key")
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise BadRequest(f"continue key is not valid: {e}") from None
    return _Token(revision, start)


def parse_resource_version(value: str | int | None, what: str = "resourceVersion") -> int | None:
    if value is None or value == "":
        return None
    try:
        rv = int(value)
        if isinstance(value, bool) or rv < 0 or str(rv) != str(value).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise BadRequest(f"invalid {what}: {value!r} is not a resource version") from None
    return rv


def retry_on_conflict(fn: Callable[[], T], *, attempts: int = 5, backoff: float = 0.01,
                      factor: float = 1.0, jitter: float = 0.1) -> T:
    """Call ``fn`` until it does not raise Conflict, ``attempts`` times at most
    (client-go's RetryOnConflict with its DefaultRetry by default); the last
    Conflict is raised."""
    delay = backoff
    for attempt in range(attempts):
        try:
            return fn()
        except Conflict:
            if attempt == attempts - 1:
                raise
            time.sleep(delay * (1 + jitter * random.random()))
            delay *= factor
    raise AssertionError("unreachable")


class ObjectStore:
    """Typed resources in a raftkv store.

    ``kv`` is any KVClient: ``raftkv.open()``, a cluster member or a remote
    client. ``encryption_key`` (a key file path, an ``Encryptor`` or a raw
    AES key) turns on encryption at rest for Secrets. Thread-safe: it keeps
    no state besides the kinds it knows.
    """

    def __init__(self, kv: KVClient, encryption_key: Encryptor | str | bytes | Any = None, *,
                 kinds: KindRegistry | None = None, clock: Callable[[], float] = time.time,
                 create_default_namespace: bool = True, service_ranges: ServiceRanges | None = None,
                 key_prefix: str = keys.DEFAULT_PREFIX) -> None:
        self.kv = kv
        self.keys = keys.KeySpace(key_prefix)
        self.service_ranges = service_ranges or ServiceRanges()
        self.kinds = kinds if kinds is not None else KindRegistry()
        self.encryptor: Encryptor | None = as_encryptor(encryption_key)
        self._clock = clock
        self.gc = GarbageCollector(self)
        self._load_crds()
        if create_default_namespace:
            self._ensure_namespace(DEFAULT_NAMESPACE)

    # ---- kinds ----------------------------------------------------------------

    def register_kind(self, kind: Kind, *, replace: bool = False) -> Kind:
        """Register a kind for this store alone (not persisted; a CRD is)."""
        return self.kinds.register(kind, replace=replace)

    def kind(self, ref: KindRef) -> Kind:
        """The kind ``ref`` names (see KindRegistry.resolve), looking for CRDs
        other clients stored when it is not known yet."""
        try:
            return self.kinds.resolve(ref)
        except UnknownKind:
            if not self._load_crds():
                raise
            return self.kinds.resolve(ref)

    def kind_of(self, obj: dict[str, Any]) -> Kind:
        if not isinstance(obj, dict):
            raise BadRequest(f"an object must be a JSON object (dict), got {type(obj).__name__}")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not kind or not isinstance(kind, str):
            raise BadRequest(f"Object 'Kind' is missing in {_short(obj)}")
        if not api_version or not isinstance(api_version, str):
            raise BadRequest(f"Object 'apiVersion' is missing in {_short(obj)}")
        try:
            return self.kinds.for_object(api_version, kind)
        except UnknownKind:
            if not self._load_crds():
                raise
            return self.kinds.for_object(api_version, kind)

    def _load_crds(self) -> bool:
        """Register the kinds of every stored CRD; True if any was new."""
        crd_kind = self.kinds.for_object(f"{CRD_GROUP}/v1", CRD_KIND)
        changed = False
        for obj, _ in self.scan_stored(crd_kind, None, tolerant=True):
            try:
                kind = kind_from_crd(obj)
                if kind not in self.kinds:
                    self.kinds.register(kind, replace=True)
                    changed = True
            except Exception as e:  # one bad CRD must not hide the others
                log.warning("skipping CRD name=%s: %s", obj["metadata"].get("name"), e)
        return changed

    # ---- encoding -------------------------------------------------------------

    def _now(self, later: float = 0.0) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._clock() + later))

    def _encode(self, kind: Kind, key: bytes, obj: dict[str, Any]) -> bytes:
        doc = copy.deepcopy(obj)
        doc.get("metadata", {}).pop("resourceVersion", None)
        data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        if self.encryptor is not None and self.encryptor.applies_to(kind.resource):
            data = self.encryptor.encrypt(data, key)
        return data

    def decode_stored(self, kind: Kind, kv: KeyValue) -> dict[str, Any]:
        data = kv.value
        if is_encrypted(data):
            if self.encryptor is None:
                raise InternalError(f"{kv.key.decode()}: the stored value is encrypted and no "
                                    "encryption key is configured")
            data = self.encryptor.decrypt(data, kv.key)
        try:
            obj = json.loads(data)
        except ValueError as e:
            raise InternalError(f"{kv.key.decode()}: the stored value is not a JSON object: {e}") from None
        if not isinstance(obj, dict):
            raise InternalError(f"{kv.key.decode()}: the stored value is not a JSON object")
        obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
        return obj

    def _namespace(self, kind: Kind, obj_ns: Any, arg_ns: str | None) -> str:
        if not kind.namespaced:
            return ""
        if obj_ns and arg_ns and obj_ns != arg_ns:
            raise BadRequest("the namespace of the provided object does not match the namespace "
                             "sent on the request")
        return obj_ns or arg_ns or DEFAULT_NAMESPACE

    def _key(self, kind: Kind, namespace: str | None, name: str) -> bytes:
        if not isinstance(name, str) or not name or "/" in name:
            raise BadRequest(f"invalid object name {name!r}")
        ns = (namespace or DEFAULT_NAMESPACE) if kind.namespaced else ""
        return self.keys.object_key(kind, ns, name)

    # ---- stored objects as they are, for the garbage collector and watches ----

    def read_stored(self, kind: Kind, namespace: str | None, name: str) -> tuple[dict[str, Any], KeyValue] | None:
        kv = self.kv.get(self._key(kind, namespace, name))
        if kv is None:
            return None
        return self.decode_stored(kind, kv), kv

    def scan_stored(self, kind: Kind, namespace: str | None, revision: int = 0, *,
                    tolerant: bool = False) -> Iterator[tuple[dict[str, Any], KeyValue]]:
        """Every object of a kind (in one namespace, or all), at one revision.
        ``tolerant`` skips values this client cannot decrypt or decode."""
        prefix = self.keys.list_prefix(kind, namespace)
        end = keys.range_end(prefix)
        start = prefix
        while True:
            r = self.kv.range(start, end, limit=_LIST_BATCH, revision=revision)
            revision = revision or r.revision
            for kv in r.kvs:
                try:
                    obj = self.decode_stored(kind, kv)
                except InternalError as e:
                    if not tolerant:
                        raise
                    log.warning("skipping %s: %s", kv.key.decode(errors="replace"), e)
                    continue
                yield obj, kv
            if not r.more or not r.kvs:
                return
            start = r.kvs[-1].key + b"\x00"

    def dependents_of(self, owner_uid: str) -> list[tuple[Kind, str, str]]:
        """(kind, namespace, name) of every object naming ``owner_uid`` as an owner."""
        prefix = self.keys.owner_index_prefix(owner_uid)
        found = []
        kinds = sorted(self.kinds, key=lambda k: -len(self.keys.kind_prefix(k)))
        for kv in self.kv.range(prefix, keys.range_end(prefix), keys_only=True).kvs:
            dependent = kv.key[len(prefix):]
            for kind in kinds:
                if dependent.startswith(self.keys.kind_prefix(kind).encode()):
                    namespace, name = self.keys.split_key(kind, dependent)
                    found.append((kind, namespace, name))
                    break
        return found

    def count_stored(self, kind: Kind, namespace: str | None) -> int:
        prefix = self.keys.list_prefix(kind, namespace)
        return self.kv.range(prefix, keys.range_end(prefix), count_only=True).count

    def _put_if_unchanged(self, key: bytes, kv: KeyValue, value: bytes, old: dict[str, Any],
                          new: dict[str, Any]) -> int | None:
        r = self._commit(self.kv.txn().if_(ops.mod_revision(key) == kv.mod_revision, *self._claim_guards(old, new))
                         .then(ops.put(key, value), *self._index_ops(key, old, new)))
        if r.succeeded:
            return r.revision
        if services.claims(new) - services.claims(old):  # the txn may have failed on a claim, not the object
            now = self.kv.get(key)
            if now is not None and now.mod_revision == kv.mod_revision:
                errs = services.already_allocated(new, self._claims_taken() - services.claims(old))
                if errs:
                    raise Invalid.of("Service", new["metadata"].get("name", ""), errs)
        return None

    def _remove(self, kind: Kind, obj: dict[str, Any], kv: KeyValue) -> int | None:
        """Delete the key if it is still at ``kv``'s revision (``obj`` is its
        value), then let the garbage collector react. Returns the delete's revision."""
        r = self._commit(self.kv.txn().if_(ops.mod_revision(kv.key) == kv.mod_revision)
                         .then(ops.delete(kv.key), *self._index_ops(kv.key, obj, None)))
        if not r.succeeded:
            return None
        log.debug("deleted key=%s revision=%d", kv.key.decode(), r.revision)
        self.gc.after_removal(kind, obj)
        return r.revision

    def _claims_taken(self) -> set[bytes]:
        prefix = self.keys.allocations.encode()
        return {kv.key[len(prefix):] for kv in self.kv.range(prefix, keys.range_end(prefix), keys_only=True).kvs}

    def _allocate(self, kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
        """A Service's cluster IP and node ports: chosen where left to the
        server, kept from ``old`` on an update, refused when taken or out of range."""
        if not services.is_service(kind):
            return
        if old is not None:
            services.carry_over(obj, old)
        taken = self._claims_taken() - services.claims(old)
        services.assign(obj, self.service_ranges, taken)
        errs = services.check(obj, self.service_ranges, old) + services.already_allocated(obj, taken)
        if errs:
            raise Invalid.of(kind.qualified_kind, obj["metadata"].get("name", ""), errs)

    def _claim_guards(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[Any]:
        """The conditions that the IPs and ports a write newly claims are free."""
        prefix = self.keys.allocations.encode()
        return [ops.create_revision(prefix + claim) == 0
                for claim in sorted(services.claims(new) - services.claims(old))]

    def _index_ops(self, key: bytes, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[Any]:
        """The writes that keep the owner index and the allocations in step with an object's change."""
        before, after = _owner_uids(old), _owner_uids(new)
        held, holds = services.claims(old), services.claims(new)
        prefix = self.keys.allocations.encode()
        return [*(ops.put(self.keys.owner_index_key(uid, key), b"") for uid in sorted(after - before)),
                *(ops.delete(self.keys.owner_index_key(uid, key)) for uid in sorted(before - after)),
                *(ops.put(prefix + claim, key) for claim in sorted(holds - held)),
                *(ops.delete(prefix + claim) for claim in sorted(held - holds))]

    def _commit(self, builder: Any) -> Any:
        try:
            return builder.commit()
        except RequestTooLarge:
            raise RequestEntityTooLarge("Request entity too large: the object exceeds the store's "
                                        "request size limit") from None

    def _ensure_namespace(self, name: str) -> None:
        ns_kind = self.kinds.for_object("v1", "Namespace")
        if self.kv.get(self.keys.object_key(ns_kind, "", name)) is None:
            try:
                self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            except AlreadyExists:
                pass

    def _check_namespace(self, kind: Kind, namespace: str, name: str) -> KeyValue:
        ns_kind = self.kinds.for_object("v1", "Namespace")
        found = self.read_stored(ns_kind, None, namespace)
        if found is None:
            raise NotFound.of("namespaces", "", namespace)
        ns_obj, ns_kv = found
        if ns_obj["metadata"].get("deletionTimestamp"):
            raise Forbidden.of(kind.plural, kind.group, name,
                               f"unable to create new content in namespace {namespace} because it is "
                               "being terminated")
        return ns_kv

    # ---- create / get ---------------------------------------------------------

    def create(self, obj: dict[str, Any], namespace: str | None = None, *,
               dry_run: bool = False, part: WritePart = WritePart.WHOLE) -> dict[str, Any]:
        """Create an object; returns it as stored (uid, creationTimestamp,
        resourceVersion and a generated name filled in). Raises AlreadyExists,
        Invalid, NotFound (namespace), Forbidden (terminating namespace).
        Created through Kubernetes' main resource (``part`` MAIN), an object
        of a kind with a status subresource starts without a status."""
        kind = self.kind_of(obj)
        new = admission.normalize(kind, obj)
        if part is WritePart.MAIN and kind.status_subresource:
            new.pop("status", None)
        m = new["metadata"]
        ns = self._namespace(kind, m.get("namespace"), namespace)
        generated = not m.get("name") and bool(m.get("generateName"))
        for _ in range(_CREATE_ATTEMPTS):
            candidate = admission.prepare_create(kind, copy.deepcopy(new), ns, self._now())
            self._allocate(kind, candidate)
            admission.validate(kind, candidate)
            if kind.kind == CRD_KIND and kind.builtin:
                self.kinds.check(kind_from_crd(candidate))
            name = candidate["metadata"]["name"]
            key = self._key(kind, ns, name)
            if dry_run:
                if kind.namespaced:
                    self._check_namespace(kind, ns, name)
                if self.kv.get(key) is not None:
                    raise AlreadyExists.of(kind.plural, kind.group, name)
                return candidate
            try:
                created = self._create_once(kind, ns, name, key, candidate)
            except _ClaimTaken:
                continue  # another Service took an IP or port chosen for this one: choose again
            if created is not None:
                return created
            if not generated:
                raise AlreadyExists.of(kind.plural, kind.group, name)
        raise AlreadyExists.of(kind.plural, kind.group, name)

    def _create_once(self, kind: Kind, ns: str, name: str, key: bytes,
                     obj: dict[str, Any]) -> dict[str, Any] | None:
        while True:
            guards = [ops.create_revision(key) == 0, *self._claim_guards(None, obj)]
            if kind.namespaced:
                ns_kv = self._check_namespace(kind, ns, name)
                guards.append(ops.mod_revision(ns_kv.key) == ns_kv.mod_revision)
            r = self._commit(self.kv.txn().if_(*guards)
                             .then(ops.put(key, self._encode(kind, key, obj)), *self._index_ops(key, None, obj))
                             .else_(ops.get(key)))
            if r.succeeded:
                obj["metadata"]["resourceVersion"] = str(r.revision)
                log.debug("created %s key=%s revision=%d", kind.kind, key.decode(), r.revision)
                if kind.kind == CRD_KIND and kind.builtin:
                    self.kinds.register(kind_from_crd(obj), replace=True)
                return obj
            if r.responses[0].kvs:
                return None  # the name is taken
            claims = services.claims(obj)
            if claims and claims & self._claims_taken():
                raise _ClaimTaken()
            # the namespace changed between the check and the txn: check again

    def get(self, kind: KindRef, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The object, or NotFound. ``namespace`` defaults to "default"."""
        k = self.kind(kind)
        found = self.read_stored(k, namespace, name)
        if found is None:
            raise NotFound.of(k.plural, k.group, name)
        return found[0]

    # ---- list -----------------------------------------------------------------

    def list(self, kind: KindRef, namespace: str | None = None, *,
             label_selector: LabelSelectorLike = None, field_selector: FieldSelectorLike = None,
             limit: int = 0, continue_token: str | None = None,
             resource_version: str | int | None = None) -> ObjectList:
        """Objects of a kind in one namespace, or in all when ``namespace`` is
        None. With ``limit``, a page and a continue token for the next; every
        page reads the first page's revision. ``resource_version`` reads that
        exact past revision."""
        k = self.kind(kind)
        labels = as_selector(label_selector)
        fields = as_field_selector(field_selector)
        if limit < 0:
            raise BadRequest("limit must be non-negative")
        if namespace is None and k.namespaced:
            namespace = fields.requires("metadata.namespace")
        prefix = self.keys.list_prefix(k, namespace)
        end = keys.range_end(prefix)
        start = prefix
        revision = parse_resource_version(resource_version)
        from_token = False
        if continue_token:
            if revision:
                raise BadRequest("specifying resource version is not allowed when using continue")
            token = decode_continue(continue_token)
            revision, start = token.revision, prefix + token.start.encode()
            from_token = True
        filtering = not labels.empty or not fields.empty
        items: list[dict[str, Any]] = []
        next_start: bytes | None = None
        remaining = None
        list_revision = revision or 0
        while True:
            batch = 0 if not limit else (limit - len(items) if not filtering else max(limit, _LIST_BATCH))
            r = self._range(start, end, batch, list_revision, from_token, resource_version)
            list_revision = list_revision or r.revision
            for i, kv in enumerate(r.kvs):
                obj = self.decode_stored(k, kv)
                if not filtering or (labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)):
                    items.append(obj)
                if limit and len(items) == limit:
                    if i < len(r.kvs) - 1 or r.more:
                        next_start = kv.key + b"\x00"
                        if not filtering:
                            remaining = r.count - len(r.kvs)
                    break
            if (limit and len(items) == limit) or not r.more or not r.kvs:
                break
            start = r.kvs[-1].key + b"\x00"
        token = encode_continue(list_revision, next_start[len(prefix):].decode()) if next_start else None
        return ObjectList(k.api_version, k.list_kind, items, str(list_revision), token, remaining)

    def _range(self, start: bytes, end: bytes, limit: int, revision: int, from_token: bool,
               asked: Any) -> Any:
        try:
            return self.kv.range(start, end, limit=limit, revision=revision)
        except Compacted:
            if from_token:
                raise Expired(CONTINUE_TOO_OLD) from None
            compacted = self.kv.status().compact_revision
            raise Expired(f"too old resource version: {asked} ({compacted})") from None
        except FutureRevision:
            current = self.kv.status().revision
            raise Timeout(f"Too large resource version: {revision}, current: {current}") from None

    # ---- update / patch -------------------------------------------------------

    def update(self, obj: dict[str, Any], namespace: str | None = None, *,
               dry_run: bool = False, part: WritePart = WritePart.WHOLE) -> dict[str, Any]:
        """Replace an object. With metadata.resourceVersion set (as read) it is
        a compare-and-swap: Conflict if the object changed since; without it,
        the last writer wins. An update that changes nothing writes nothing.
        ``part`` is what the update may change (WritePart)."""
        kind = self.kind_of(obj)
        new = admission.normalize(kind, obj)
        m = new["metadata"]
        name = m.get("name")
        if not name:
            raise Invalid.of(kind.qualified_kind, "", [FieldError(
                "metadata.name", "Required value", detail="name is required")])
        ns = self._namespace(kind, m.get("namespace"), namespace)
        expected = parse_resource_version(m.get("resourceVersion"))
        write = _part_writer(kind, part)
        return self.guaranteed_update(kind, ns, name, lambda current: write(current, copy.deepcopy(new)),
                                      expected_rv=expected, retry=expected is None, dry_run=dry_run)

    def patch(self, kind: KindRef, name: str, patch: Any, namespace: str | None = None, *,
              patch_type: str = MERGE, dry_run: bool = False, part: WritePart = WritePart.WHOLE) -> dict[str, Any]:
        """Patch an object with a JSON merge patch ("merge", RFC 7386) or a
        JSON patch ("json", RFC 6902), given as a dict/list or JSON text.
        Retried on conflict unless the patch sets metadata.resourceVersion,
        which then must match. ``part`` is what the patch may change (WritePart)."""
        k = self.kind(kind)
        write = _part_writer(k, part)
        ptype = PATCH_TYPES.get(patch_type)
        if ptype is None:
            raise BadRequest(f"unsupported patch type {patch_type!r}; use 'merge', 'json' or 'strategic'")
        decoded = decode_patch(patch, ptype)
        pinned = patch_mentions_resource_version(decoded, ptype)

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            result = apply_patch(current, decoded, ptype, qualified_kind=k.qualified_kind, name=name)
            rm = result.get("metadata") if isinstance(result.get("metadata"), dict) else {}
            if rm.get("resourceVersion") not in (None, current["metadata"]["resourceVersion"]):
                raise Conflict.of(k.plural, k.group, name)
            if rm.get("name") != name:
                raise BadRequest(f"the name of the object ({rm.get('name')}) does not match the name "
                                 f"on the URL ({name})")
            if k.namespaced and rm.get("namespace") != current["metadata"].get("namespace"):
                raise BadRequest("the namespace of the provided object does not match the namespace "
                                 "sent on the request")
            if result.get("kind") != k.kind or result.get("apiVersion") not in \
                    [f"{k.group}/{v}" if k.group else v for v in k.versions]:
                raise BadRequest("the patch may not change the object's apiVersion or kind")
            return write(current, admission.normalize(k, result))

        return self.guaranteed_update(k, namespace, name, mutate, expected_rv=None, retry=not pinned,
                                      dry_run=dry_run)

    def guaranteed_update(self, kind: Kind, namespace: str | None, name: str,
                          mutate: Callable[[dict[str, Any]], dict[str, Any]], *,
                          expected_rv: int | None, retry: bool, dry_run: bool = False,
                          missing_ok: bool = False) -> dict[str, Any]:
        """Read, ``mutate``, admit and write an object, again on a conflict when ``retry``."""
        key = self._key(kind, namespace, name)
        while True:
            kv = self.kv.get(key)
            if kv is None:
                if missing_ok:
                    return {}
                raise NotFound.of(kind.plural, kind.group, name)
            current = self.decode_stored(kind, kv)
            if expected_rv is not None and kv.mod_revision != expected_rv:
                raise Conflict.of(kind.plural, kind.group, name)
            new = admission.prepare_update(kind, mutate(copy.deepcopy(current)), current)
            self._allocate(kind, new, current)
            admission.validate(kind, new)
            if kind.kind == CRD_KIND and kind.builtin:
                self.kinds.check(kind_from_crd(new), replace=True)
            new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            # gone once being deleted, out of finalizers and past its grace (a pod's node ends that)
            remove = bool(new["metadata"].get("deletionTimestamp")) and not _pending_finalizers(kind, new) \
                and not new["metadata"].get("deletionGracePeriodSeconds")
            if new == current and not remove:
                return current  # nothing changed: no write, the resourceVersion stays
            if dry_run:
                return new
            if remove:
                revision = self._remove(kind, current, kv)
                if revision is not None:
                    log.debug("last finalizer removed, object deleted key=%s", key.decode())
                    return new
            else:
                revision = self._put_if_unchanged(key, kv, self._encode(kind, key, new), current, new)
                if revision is not None:
                    new["metadata"]["resourceVersion"] = str(revision)
                    if kind.kind == CRD_KIND and kind.builtin:
                        self.kinds.register(kind_from_crd(new), replace=True)
                    return new
            if not retry:
                raise Conflict.of(kind.plural, kind.group, name)

    # ---- delete ---------------------------------------------------------------

    def delete(self, kind: KindRef, name: str, namespace: str | None = None, *,
               uid: str | None = None, resource_version: str | int | None = None,
               propagation_policy: str | None = None, grace_period_seconds: int | None = None,
               graceful: bool = False) -> dict[str, Any]:
        """Delete an object; returns its last state.

        Preconditions ``uid`` and ``resource_version`` must hold at the moment
        of the delete (Conflict otherwise). An object with finalizers, or
        deleted with the Foreground or Orphan policy, first gets a
        deletionTimestamp and goes away when its last finalizer is removed;
        the returned object then carries the deletionTimestamp. Dependents
        (through ownerReferences) are deleted after their owner (Background,
        the default), before it (Foreground), or kept and released (Orphan).
        Deleting a Namespace deletes everything in it. A Pod placed on a node
        can be deleted gracefully, as Kubernetes deletes it: with
        ``grace_period_seconds`` above 0 (or ``graceful`` and none given: its
        terminationGracePeriodSeconds, else 30) it gets a deletionTimestamp
        that far ahead and stays, Terminating, until a delete with grace 0 (its
        node's, once the containers stopped) removes it.
        """
        k = self.kind(kind)
        policy = propagation_policy or "Background"
        if policy not in PROPAGATION_POLICIES:
            raise BadRequest(f"unsupported propagation policy {policy!r}; supported: "
                             + ", ".join(PROPAGATION_POLICIES))
        if k.kind == "Namespace" and k.builtin and name in PROTECTED_NAMESPACES:
            raise Forbidden.of("namespaces", "", name, "this namespace may not be deleted")
        expected = parse_resource_version(resource_version)
        key = self._key(k, namespace, name)
        with self.gc.session():
            while True:
                kv = self.kv.get(key)
                if kv is None:
                    raise NotFound.of(k.plural, k.group, name)
                obj = self.decode_stored(k, kv)
                m = obj["metadata"]
                if uid is not None and m.get("uid") != uid:
                    raise Conflict.of(k.plural, k.group, name,
                                      f"Precondition failed: UID in precondition: {uid}, "
                                      f"UID in object meta: {m.get('uid', '')}")
                if expected is not None and kv.mod_revision != expected:
                    raise Conflict.of(k.plural, k.group, name,
                                      f"Precondition failed: ResourceVersion in precondition: {expected}, "
                                      f"ResourceVersion in object meta: {kv.mod_revision}")
                grace = _grace_period(k, obj, grace_period_seconds, graceful)
                if m.get("deletionTimestamp"):
                    if grace == 0 and m.get("deletionGracePeriodSeconds"):
                        finished = self._finish_grace(k, obj, kv)
                        if finished is None:
                            continue
                        return finished
                    return self._redelete(k, obj, kv, policy)
                finalizers = list(m.get("finalizers") or [])
                extra = {"Foreground": admission.FOREGROUND, "Orphan": admission.ORPHAN}.get(policy)
                if extra and extra not in finalizers:
                    finalizers.append(extra)
                is_namespace = k.kind == "Namespace" and k.builtin
                if not finalizers and not is_namespace and not grace:
                    if self._remove(k, obj, kv) is not None:
                        return obj
                    continue
                marked = copy.deepcopy(obj)
                marked["metadata"].update(deletionTimestamp=self._now(later=grace), deletionGracePeriodSeconds=grace,
                                          finalizers=finalizers)
                if not finalizers:
                    del marked["metadata"]["finalizers"]
                if is_namespace:
                    marked.setdefault("status", {})["phase"] = "Terminating"
                revision = self._put_if_unchanged(key, kv, self._encode(k, key, marked), obj, marked)
                if revision is None:
                    continue
                marked["metadata"]["resourceVersion"] = str(revision)
                log.info("deletion started kind=%s key=%s policy=%s finalizers=%s",
                         k.kind, key.decode(), policy, finalizers)
                self.gc.process_deleting(k, marked)
                found = self.read_stored(k, namespace, name)
                if found is not None and found[0]["metadata"].get("uid") == m.get("uid"):
                    return found[0]
                return marked

    def _finish_grace(self, kind: Kind, obj: dict[str, Any], kv: KeyValue) -> dict[str, Any] | None:
        """A delete with grace 0 of an object in its grace period: remove it now
        (or, with finalizers left, end the grace). None when it changed meanwhile."""
        if not _pending_finalizers(kind, obj):
            return obj if self._remove(kind, obj, kv) is not None else None
        ended = copy.deepcopy(obj)
        ended["metadata"]["deletionGracePeriodSeconds"] = 0
        revision = self._put_if_unchanged(kv.key, kv, self._encode(kind, kv.key, ended), obj, ended)
        if revision is None:
            return None
        ended["metadata"]["resourceVersion"] = str(revision)
        return ended

    def _redelete(self, kind: Kind, obj: dict[str, Any], kv: KeyValue, policy: str) -> dict[str, Any]:
        """Delete of an object already being deleted: finish what can be finished."""
        self.gc.process_deleting(kind, obj)
        found = self.read_stored(kind, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        return found[0] if found is not None else obj

    # ---- garbage collection, apply, watch -------------------------------------

    def collect_garbage(self) -> int:
        """One full pass of the garbage collector: delete objects whose owners
        are all gone, finish foreground and orphan deletions and terminating
        namespaces that an interrupted client left behind. Returns the number
        of objects it acted on."""
        return self.gc.collect()

    def apply(self, manifest: Any, namespace: str | None = None, *, dry_run: bool = False) -> list[Any]:
        """Create or update every object of a manifest (YAML or JSON text, a
        dict, or a list of dicts); see raftkv.objects.apply."""
        from raftkv.objects.apply import apply_manifest

        return apply_manifest(self, manifest, namespace, dry_run=dry_run)

    def watch(self, kind: KindRef, namespace: str | None = None, *,
              label_selector: LabelSelectorLike = None, field_selector: FieldSelectorLike = None,
              resource_version: str | int | None = None, allow_bookmarks: bool = False) -> Any:
        """Watch a kind (in one namespace or all). From ``resource_version``:
        the changes after it (Expired if compacted); without it: the current
        objects as ADDED, then changes. See raftkv.objects.watch."""
        from raftkv.objects.watch import ObjectWatch

        k = self.kind(kind)
        return ObjectWatch(self, k, namespace, as_selector(label_selector), as_field_selector(field_selector),
                           resource_version, allow_bookmarks)


def _part_writer(kind: Kind, part: WritePart) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    """How an update of ``part`` turns (current, proposed) into what is written."""
    if part is WritePart.WHOLE or not kind.status_subresource and part is WritePart.MAIN:
        return lambda current, proposed: proposed
    if part is WritePart.MAIN:
        return lambda current, proposed: _with_status(proposed, current)
    if not kind.status_subresource:
        raise NotFound("the server could not find the requested resource")
    return lambda current, proposed: _with_status(copy.deepcopy(current), proposed)


def _with_status(obj: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    obj.pop("status", None)
    if "status" in source:
        obj["status"] = copy.deepcopy(source["status"])
    return obj


def _owner_uids(obj: dict[str, Any] | None) -> set[str]:
    if obj is None:
        return set()
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return {r["uid"] for r in refs if isinstance(r, dict) and isinstance(r.get("uid"), str) and r["uid"]}


class _ClaimTaken(Exception):
    """A txn creating a Service failed because an IP or port it claims was taken."""


DEFAULT_GRACE_SECONDS = 30


def _grace_period(kind: Kind, obj: dict[str, Any], asked: int | None, graceful: bool) -> int:
    """How long a deletion waits for the object's node to stop it: only a
    Pod placed on a node waits (nothing else, and no unplaced pod, has
    anyone to wait for)."""
    if not (kind.builtin and kind.kind == "Pod" and (obj.get("spec") or {}).get("nodeName")):
        return 0
    if asked is None:
        if not graceful:
            return 0
        asked = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    if not isinstance(asked, int) or isinstance(asked, bool) or asked < 0:
        raise BadRequest(f"gracePeriodSeconds must be a non-negative integer, not {asked!r}")
    return asked


def _pending_finalizers(kind: Kind, obj: dict[str, Any]) -> list[str]:
    pending = list(obj["metadata"].get("finalizers") or [])
    if kind.kind == "Namespace" and kind.builtin:
        pending += list((obj.get("spec") or {}).get("finalizers") or [])
    return pending


def _short(obj: dict[str, Any]) -> str:
    text = json.dumps(obj, separators=(",", ":"), default=str)
    return text if len(text) <= 200 else text[:200] + "..."


__all__ = ["ObjectList", "ObjectStore", "decode_continue", "encode_continue", "retry_on_conflict"]
