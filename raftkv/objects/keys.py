"""Where objects live in the key space.

Under a prefix (kube-apiserver's --etcd-prefix, /registry by default):
built-in kinds at ``<prefix>/<plural>/<namespace>/<name>``, or
``<prefix>/<plural>/<name>`` when cluster-scoped. Kinds registered by users
add their group, as Kubernetes stores custom resources:
``<prefix>/<group>/<plural>/<namespace>/<name>``; a group holds a dot and a
plural never does, so the two layouts cannot collide.

Beside the objects, outside the prefix, the layer keeps what it indexes,
written in the same txn as the object: under ``<prefix>-index/owners/`` an
empty key ``<owner uid>/<dependent's key>`` for each owner an object names,
so an owner's dependents are found with one range read; under
``<prefix>-index/allocations/`` the cluster IPs and node ports Services hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftkv.mvcc.index import prefix_end
from raftkv.objects.kinds import Kind

DEFAULT_PREFIX = "/registry"


def range_end(prefix: bytes) -> bytes:
    return prefix_end(prefix)


@dataclass(frozen=True)
class KeySpace:
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or self.prefix.endswith("/") or "//" in self.prefix:
            raise ValueError(f"a key prefix starts with / and does not end with one: {self.prefix!r}")

    @property
    def allocations(self) -> str:
        return f"{self.prefix}-index/allocations/"

    def kind_prefix(self, kind: Kind) -> str:
        if kind.builtin or not kind.group:
            return f"{self.prefix}/{kind.plural}/"
        return f"{self.prefix}/{kind.group}/{kind.plural}/"

    def list_prefix(self, kind: Kind, namespace: str | None) -> bytes:
        """Every object of the kind, or those of one namespace."""
        prefix = self.kind_prefix(kind)
        if kind.namespaced and namespace:
            prefix += f"{namespace}/"
        return prefix.encode()

    def object_key(self, kind: Kind, namespace: str | None, name: str) -> bytes:
        if kind.namespaced:
            return f"{self.kind_prefix(kind)}{namespace}/{name}".encode()
        return f"{self.kind_prefix(kind)}{name}".encode()

    def split_key(self, kind: Kind, key: bytes) -> tuple[str, str]:
        """(namespace, name) of an object key; namespace is "" when cluster-scoped."""
        rest = key.decode()[len(self.kind_prefix(kind)):]
        if kind.namespaced:
            namespace, _, name = rest.partition("/")
            return namespace, name
        return "", rest

    def owner_index_prefix(self, owner_uid: str) -> bytes:
        return f"{self.prefix}-index/owners/{owner_uid}/".encode()

    def owner_index_key(self, owner_uid: str, dependent_key: bytes) -> bytes:
        return self.owner_index_prefix(owner_uid) + dependent_key


REGISTRY = KeySpace()
