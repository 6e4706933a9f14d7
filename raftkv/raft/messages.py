"""The shape of every Raft message a member accepts from a peer.

pysyncobj's handlers index into messages without checking them; a message
that passed the transport (plain values from an authenticated member) is
still checked here first, so a malformed one is dropped with a warning
instead of raising in the middle of a tick.
"""

from __future__ import annotations


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(value: object) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], bytes)
            and _int(value[1]) and _int(value[2]))


def _snapshot_chunk(value: object) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], bytes)
                             and isinstance(value[1], bool) and isinstance(value[2], bool))


# field -> check, for the fields a message of that type must have; (optional ones after "?")
_SHAPES: dict[str, dict[str, object]] = {
    "request_vote": {"term": _int, "last_log_index": _int, "last_log_term": _int},
    "response_vote": {"term": _int},
    "append_entries": {"term": _int, "commit_index": _int, "?prevLogIdx": _int, "?prevLogTerm": _int,
                       "?entries": lambda v: isinstance(v, (list, tuple)) and all(_entry(e) for e in v),
                       "?serialized": _snapshot_chunk},
    "next_node_idx": {"next_node_idx": _int, "reset": lambda v: isinstance(v, bool),
                      "success": lambda v: isinstance(v, bool)},
    "apply_command": {"command": lambda v: isinstance(v, bytes) and len(v) > 0, "?request_id": _int},
    "apply_command_response": {"request_id": _int, "?error": _int, "?log_idx": _int, "?log_term": _int},
    "timeout_now": {"term": _int},
}


def message_problem(message: object) -> str | None:
    """Why pysyncobj must not see ``message``, or None when it may."""
    if not isinstance(message, dict):
        return "not a map"
    kind = message.get("type")
    shape = _SHAPES.get(kind)  # type: ignore[arg-type]
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
    if kind == "append_entries" and "transmission" in message:
        return "an entry sent in chunks (raftkv never sends one so)"
    if kind == "apply_command_response" and "error" not in message and (
            "log_idx" not in message or "log_term" not in message):
        return "apply_command_response without its index"
    return None
