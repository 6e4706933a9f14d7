"""Who the members are, beyond Raft's addresses: names and client URLs.

Raft (pysyncobj) knows members by peer address. etcd's API also shows each
member's name and client URLs, which a member publishes through the log once
it runs, as etcd members do. This table is part of the replicated state.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


def member_id(address: str) -> int:
    """A stable 63-bit id for a peer address (etcd's member ids are 64-bit)."""
    return int.from_bytes(hashlib.sha256(address.encode()).digest()[:8], "big") >> 1


@dataclass
class MemberRecord:
    address: str
    name: str = ""
    peer_urls: list[str] = field(default_factory=list)
    client_urls: list[str] = field(default_factory=list)
    is_learner: bool = False

    @property
    def id(self) -> int:
        return member_id(self.address)


class MembershipTable:
    def __init__(self) -> None:
        self.records: dict[str, MemberRecord] = {}

    def apply(self, change: dict) -> None:
        address = change["address"]
        if change.get("removed"):
            self.records.pop(address, None)
            return
        record = self.records.setdefault(address, MemberRecord(address))
        if "name" in change:
            record.name = change["name"]
        if "peer_urls" in change:
            record.peer_urls = list(change["peer_urls"])
        if "client_urls" in change:
            record.client_urls = list(change["client_urls"])
        if "is_learner" in change:
            record.is_learner = bool(change["is_learner"])

    def members(self, addresses: set[str]) -> list[MemberRecord]:
        """Records of the given voting members and of every learner, in id
        order; voting members with no record yet come bare."""
        found = [self.records.get(a) or MemberRecord(a, peer_urls=[f"http://{a}"]) for a in addresses]
        found = [r for r in found if not r.is_learner or r.address in addresses]
        found += [r for r in self.records.values() if r.is_learner and r.address not in addresses]
        return sorted(found, key=lambda r: r.id)

    def learners(self) -> set[str]:
        return {a for a, r in self.records.items() if r.is_learner}

    def snapshot(self) -> list[dict]:
        return [asdict(r) for r in self.records.values()]

    def restore(self, data: list[dict]) -> None:
        self.records = {d["address"]: MemberRecord(**d) for d in data}

    def to_json(self) -> str:
        return json.dumps(self.snapshot())


def records_from_json(text: str) -> list[MemberRecord]:
    return [MemberRecord(**d) for d in json.loads(text)]


def encode_change(change: dict) -> bytes:
    return json.dumps(change, sort_keys=True).encode()


def decode_change(data: bytes) -> dict:
    change = json.loads(data)
    if not isinstance(change, dict) or not isinstance(change.get("address"), str):
        raise ValueError("not a membership change")
    return change
