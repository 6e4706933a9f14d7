"""The shape of every Raft message a member accepts from a peer.

pysyncobj's handlers index into messages without checking them. A message
that passed the transport (plain values from a member, or from anyone who
can claim to be one when members share no secret) is checked here first:
types, ranges, and the internal consistency of an append (its entries
follow its previous index one by one, none newer than its term). A message
that fails is dropped with a warning instead of raising in the middle of a
tick or putting values on disk that the member cannot use later.
"""

from __future__ import annotations

# Terms and indexes stay far below what the log's 64-bit fields and the
# codec can hold, so that no message can bring a member to a term it cannot
# write or send (term + 1 must still be one).
MAX_COUNTER = 2**62


def _counter(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_COUNTER


def _positive(value: object) -> bool:
    return _counter(value) and value > 0  # type: ignore[operator]


def _entry(value: object) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], bytes)
            and len(value[0]) > 0 and _positive(value[1]) and _counter(value[2]))


def _snapshot_chunk(value: object) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], bytes)
                             and isinstance(value[1], bool) and isinstance(value[2], bool))


def _flag(value: object) -> bool:
    return isinstance(value, bool)


# field -> check, for the fields a message of that type must have; optional ones start with "?"
_SHAPES: dict[str, dict[str, object]] = {
    "request_vote": {"term": _counter, "last_log_index": _counter, "last_log_term": _counter},
    "response_vote": {"term": _counter},
    "append_entries": {"term": _counter, "commit_index": _counter, "?prevLogIdx": _positive,
                       "?prevLogTerm": _counter,
                       "?entries": lambda v: isinstance(v, (list, tuple)) and all(_entry(e) for e in v),
                       "?serialized": _snapshot_chunk},
    "next_node_idx": {"next_node_idx": _positive, "reset": _flag, "success": _flag},
    "apply_command": {"command": lambda v: isinstance(v, bytes) and len(v) > 0, "?request_id": _counter},
    "apply_command_response": {"request_id": _counter, "?error": _counter, "?log_idx": _positive,
                               "?log_term": _counter},
    "timeout_now": {"term": _counter},
}


def message_problem(message: object) -> str | None:
    """Why pysyncobj must not see ``message``, or None when it may."""
    if not isinstance(message, dict):
        return "not a map"
    kind = message.get("type")
    shape = _SHAPES.get(kind) if isinstance(kind, str) else None
    if shape is None:
        return f"unknown type {kind!r}"
    for name, check in shape.items():
        optional = name.startswith("?")
        name = name.lstrip("?")
        if name not in message:
            if optional:
                continue
            return f"{kind} without {name}"
        if not check(message[name]):  # type: ignore[operator]
            return f"{kind} with a malformed {name}"
    if kind == "append_entries":
        return _append_problem(message)
    if kind == "apply_command_response" and "error" not in message and (
            "log_idx" not in message or "log_term" not in message):
        return "apply_command_response without its index"
    return None


def _append_problem(message: dict) -> str | None:
    if "transmission" in message:
        return "an entry sent in chunks (raftkv never sends one so)"
    if ("prevLogIdx" in message) != ("prevLogTerm" in message):
        return "append_entries with only one of prevLogIdx and prevLogTerm"
    if "prevLogIdx" not in message and message.get("entries"):
        return "append_entries with entries but no previous index"
    term, previous = message["term"], message.get("prevLogIdx", 0)
    if message.get("prevLogTerm", 0) > term:
        return "append_entries whose previous entry is newer than its term"
    last_term = message.get("prevLogTerm", 0)
    for offset, entry in enumerate(message.get("entries", ())):
        if entry[1] != previous + 1 + offset:
            return "append_entries whose entries do not follow its previous index one by one"
        if not last_term <= entry[2] <= term:
            return "append_entries with entry terms out of order or newer than its term"
        last_term = entry[2]
    return None
