"""Kubernetes-style objects on any raftkv connection.

    import raftkv
    from raftkv.objects import ObjectStore

    store = ObjectStore(raftkv.open())
    store.apply(open("app.yaml").read())        # [deployment.apps/web created, service/web created]
    store.list("pods", "default", label_selector="app=web,tier in (frontend)")
    for event in store.watch("pods", label_selector="app=web"):
        print(event.type, event.object["metadata"]["name"])
"""

from raftkv.objects.apply import ApplyResult, load_manifest
from raftkv.objects.crypto import EncryptionKey, Encryptor
from raftkv.objects.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Expired,
    FieldError,
    Forbidden,
    Gone,
    InternalError,
    Invalid,
    MethodNotAllowed,
    NotFound,
    ObjectError,
    RequestEntityTooLarge,
    Timeout,
    UnknownKind,
)
from raftkv.objects.fields import FieldSelector, FieldSelectorParseError, parse_field_selector
from raftkv.objects.kinds import BUILTIN_KINDS, Kind, KindRegistry, kind_from_crd
from raftkv.objects.patch import create_merge_patch, merge_patch
from raftkv.objects.selectors import (
    LabelSelector,
    LabelSelectorRequirement,
    Operator,
    Requirement,
    Selector,
    SelectorParseError,
    as_selector,
    parse_selector,
    selector_from_label_selector,
)
from raftkv.objects.store import ObjectList, ObjectStore, WritePart, retry_on_conflict
from raftkv.objects.watch import ObjectWatch, WatchEvent

__all__ = [
    "AlreadyExists", "ApplyResult", "BUILTIN_KINDS", "BadRequest", "Conflict", "EncryptionKey", "Encryptor",
    "Expired", "FieldError", "FieldSelector", "FieldSelectorParseError", "Forbidden", "Gone", "InternalError",
    "Invalid", "Kind", "KindRegistry", "LabelSelector", "LabelSelectorRequirement", "MethodNotAllowed", "NotFound", "ObjectError",
    "ObjectList", "ObjectStore", "ObjectWatch", "Operator", "RequestEntityTooLarge", "Requirement", "Selector",
    "SelectorParseError", "Timeout", "UnknownKind", "WatchEvent", "WritePart", "as_selector", "create_merge_patch",
    "kind_from_crd", "load_manifest", "merge_patch", "parse_field_selector", "parse_selector",
    "retry_on_conflict", "selector_from_label_selector",
]
