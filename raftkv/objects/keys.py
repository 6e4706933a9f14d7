"""Where objects live in the key space.

Built-in kinds: ``/registry/<plural>/<namespace>/<name>``, or
``/registry/<plural>/<name>`` when cluster-scoped. Kinds registered by users
add their group, as Kubernetes stores custom resources:
``/registry/<group>/<plural>/<namespace>/<name>``; a group holds a dot and a
plural never does, so the two layouts cannot collide.

Beside the objects, outside /registry/, the layer keeps an index of owner
references, written in the same txn as the object: an empty key
``/registry-index/owners/<owner uid>/<dependent's key>`` for each owner an
object names, so an owner's dependents are found with one range read.
"""

from __future__ import annotations

from raftkv.mvcc.index import prefix_end
from raftkv.objects.kinds import Kind

REGISTRY = "/registry/"
OWNER_INDEX = "/registry-index/owners/"


def kind_prefix(kind: Kind) -> str:
    if kind.builtin or not kind.group:
        return f"{REGISTRY}{kind.plural}/"
    return f"{REGISTRY}{kind.group}/{kind.plural}/"


def list_prefix(kind: Kind, namespace: str | None) -> bytes:
    """Every object of the kind, or those of one namespace."""
    prefix = kind_prefix(kind)
    if kind.namespaced and namespace:
        prefix += f"{namespace}/"
    return prefix.encode()


def object_key(kind: Kind, namespace: str | None, name: str) -> bytes:
    if kind.namespaced:
        return f"{kind_prefix(kind)}{namespace}/{name}".encode()
    return f"{kind_prefix(kind)}{name}".encode()


def split_key(kind: Kind, key: bytes) -> tuple[str, str]:
    """(namespace, name) of an object key; namespace is "" when cluster-scoped."""
    rest = key.decode()[len(kind_prefix(kind)):]
    if kind.namespaced:
        namespace, _, name = rest.partition("/")
        return namespace, name
    return "", rest


def range_end(prefix: bytes) -> bytes:
    return prefix_end(prefix)


def owner_index_prefix(owner_uid: str) -> bytes:
    return f"{OWNER_INDEX}{owner_uid}/".encode()


def owner_index_key(owner_uid: str, dependent_key: bytes) -> bytes:
    return owner_index_prefix(owner_uid) + dependent_key
