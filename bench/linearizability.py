"""Linearizability of a recorded key-value history (Wing & Gong, with Lowe's
memoization, as Porcupine does it), checked one key at a time.

A history is a list of :class:`Op`. Each key is an independent register, so
the history is linearizable iff each key's sub-history is (P-compositionality:
linearizability is local). The register model knows three operations:

- ``put(value)``: always possible; the register then holds ``value``.
- ``get() -> value``: possible iff the register holds ``value`` (None: absent).
- ``cas(expected, new) -> (succeeded, observed)``: a txn ``if value == expected
  then put new else get``. Succeeds iff the register holds ``expected`` (None:
  the key is absent); a failed one saw ``observed`` (None: absent; ``ANY`` if it
  was not read).

An operation whose outcome is unknown (it timed out, the connection broke) has
``ok=False``: it may or may not have taken effect, at any time after it was
invoked. It is checked as an operation that never returned (its return is at
infinity), which allows both. An unknown get says nothing and is dropped; an
unknown write whose value nobody ever observed is dropped too (it can always
be linearized after everything else, where nobody sees it), which keeps the
search small when many requests time out.

The search (per key): the calls and returns, in time order, form a doubly
linked list (dancing links). The ops that may go next are those invoked before
the first return still in the list. Depth-first, try each: apply it to the
model; if the model accepts and the pair (set of linearized ops, state) has
not been seen before (memoization), lift it out of the list and go deeper;
when none fits, undo the last one and try its next sibling. The history is
linearizable iff the list empties. Two orderings keep correct histories fast:
a read the current state satisfies is taken at once and alone (always safe),
and writes are tried earliest deadline first (their own return, or that of the
earliest candidate reading their value).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()
"""A failed CAS whose current value was not read."""


@dataclass
class Op:
    client: int
    kind: str                  # "put" | "get" | "cas" | "delete"
    key: Hashable
    invoke: float
    ret: float = math.inf      # ignored when ok is False
    value: Any = None          # put: value written; cas: new value
    expected: Any = None       # cas: value compared with (None: key absent)
    output: Any = None         # get: value read (None: absent); cas: (succeeded, observed)
    ok: bool = True            # False: outcome unknown (may or may not have happened)
    revision: int = 0          # the store's revision in the response, if any (for lost-write checks)

    def describe(self) -> str:
        end = f"{self.ret:.6f}" if self.ok else "?"
        if self.kind == "put":
            what = f"put({self.value!r})"
        elif self.kind == "delete":
            what = "delete()"
        elif self.kind == "get":
            what = f"get() -> {self.output!r}" if self.ok else "get() -> ?"
        else:
            out = self.output if self.ok else "?"
            what = f"cas({self.expected!r} -> {self.value!r}) -> {out!r}"
        return f"client {self.client} {self.key!r} {what} [{self.invoke:.6f}, {end}]"


def step(state: Any, op: Op) -> tuple[bool, Any]:
    """The register model: (is ``op`` possible in ``state``, the state after it)."""
    kind = op.kind
    if kind == "put":
        return True, op.value
    if kind == "delete":
        return True, None
    if kind == "get":
        return state == op.output, state
    if kind == "cas":
        if not op.ok:  # unknown outcome: it did whatever the state implies
            return True, (op.value if state == op.expected else state)
        succeeded, observed = op.output
        if succeeded:
            return state == op.expected, op.value
        return state != op.expected and (observed is ANY or observed == state), state
    raise ValueError(f"unknown operation kind {kind!r}")


@dataclass
class KeyResult:
    key: Hashable
    linearizable: bool | None        # None: gave up (time budget)
    ops: int
    linearized: int = 0              # the deepest partial linearization found
    blocking: list[str] = field(default_factory=list)   # ops that could not be placed, when not linearizable
    seconds: float = 0.0


@dataclass
class CheckResult:
    linearizable: bool | None        # None: some key could not be decided in time
    keys: dict[Hashable, KeyResult]
    ops: int
    dropped: int                     # unknown gets and unobserved unknown writes
    seconds: float

    @property
    def violations(self) -> list[KeyResult]:
        return [r for r in self.keys.values() if r.linearizable is False]

    def summary(self) -> dict:
        return {
            "linearizable": self.linearizable,
            "ops_checked": self.ops,
            "ops_dropped": self.dropped,
            "keys": len(self.keys),
            "undecided_keys": [repr(r.key) for r in self.keys.values() if r.linearizable is None],
            "violations": [
                {"key": repr(r.key), "ops": r.ops, "linearized": r.linearized, "blocking": r.blocking}
                for r in self.violations
            ],
            "check_seconds": round(self.seconds, 3),
        }


def check_key(ops: list[Op], init: Any = None, deadline: float | None = None,
              key: Hashable = None) -> KeyResult:
    """Wing–Gong search with memoization over one key's operations."""
    started = time.monotonic()
    n = len(ops)
    if n == 0:
        return KeyResult(key, True, 0)
    # Nodes 0..n-1 are calls, n..2n-1 returns (op i: call i, return n+i);
    # 2n is the head sentinel, 2n+1 the tail sentinel.
    order = sorted(
        [(op.invoke, 0, i) for i, op in enumerate(ops)]
        + [((op.ret if op.ok else math.inf), 1, n + i) for i, op in enumerate(ops)],
        key=lambda e: (e[0], e[1]),   # at equal times calls first: treated as overlapping
    )
    head, tail = 2 * n, 2 * n + 1
    nxt = [0] * (2 * n + 2)
    prv = [0] * (2 * n + 2)
    last = head
    for _, _, node in order:
        nxt[last] = node
        prv[node] = last
        last = node
    nxt[last] = tail
    prv[tail] = last

    def lift(c: int) -> None:
        r = c + n
        nxt[prv[c]] = nxt[c]
        prv[nxt[c]] = prv[c]
        nxt[prv[r]] = nxt[r]
        prv[nxt[r]] = prv[r]

    def unlift(c: int) -> None:
        r = c + n
        nxt[prv[r]] = r
        prv[nxt[r]] = r
        nxt[prv[c]] = c
        prv[nxt[c]] = c

    def candidates(state: Any) -> list[int]:
        """The ops that may go next: those invoked before the first pending return.

        A read the state satisfies (a get, a failed CAS) goes first, alone:
        linearizing it now is always safe (it changes nothing, and every op
        that had to precede it already has), so no alternative needs trying.
        Otherwise earliest deadline first: a write's deadline is its own return
        or that of the earliest candidate that reads its value, if sooner."""
        calls = []
        node = nxt[head]
        while node < n:
            calls.append(node)
            node = nxt[node]
        deadline_of: dict = {}   # value -> earliest return of a candidate that reads it

        def want(value: Any, by: Op) -> None:
            v = _h(value)
            deadline_of[v] = min(deadline_of.get(v, math.inf), by.ret if by.ok else math.inf)

        for c in calls:
            op = ops[c]
            if op.kind == "get" or (op.kind == "cas" and op.ok and not op.output[0]):
                if step(state, op)[0]:
                    return [c]
                if op.kind == "get":
                    want(op.output, op)
                elif op.output[1] is not ANY:
                    want(op.output[1], op)
            elif op.kind == "cas":
                want(op.expected, op)

        def urgency(c: int) -> tuple:
            op = ops[c]
            own = op.ret if op.ok else math.inf
            return (min(own, deadline_of.get(_h(op.value), math.inf)), own)

        calls.sort(key=urgency)
        return calls

    cache: set[tuple[int, Any]] = set()
    # frames: [candidates, next index, op applied to reach this frame, state before it]
    frames: list[list] = [[candidates(init), 0, -1, None]]
    linearized = 0
    state = init
    depth = best = 0
    blocking: list[str] = []
    steps = 0
    while nxt[head] != tail:
        steps += 1
        if deadline is not None and steps % 2048 == 0 and time.monotonic() > deadline:
            return KeyResult(key, None, n, best, [], time.monotonic() - started)
        frame = frames[-1]
        cands = frame[0]
        moved = False
        while frame[1] < len(cands):
            c = cands[frame[1]]
            frame[1] += 1
            ok, new_state = step(state, ops[c])
            if not ok:
                continue
            bits = linearized | (1 << c)
            memo = (bits, _h(new_state))
            if memo in cache:
                continue
            cache.add(memo)
            lift(c)
            frames.append([None, 0, c, state])
            state, linearized = new_state, bits
            depth += 1
            frames[-1][0] = candidates(state)
            moved = True
            break
        if moved:
            if depth > best:
                best = depth
            continue
        # nothing fits here: backtrack
        if depth >= best:
            blocking = _pending(ops, nxt, head, n, tail, state)
        if len(frames) == 1:
            return KeyResult(key, False, n, best, blocking, time.monotonic() - started)
        _, _, c, state = frames.pop()
        linearized &= ~(1 << c)
        unlift(c)
        depth -= 1
    return KeyResult(key, True, n, n, [], time.monotonic() - started)


def _pending(ops: list[Op], nxt: list[int], head: int, n: int, tail: int, state: Any,
             limit: int = 6) -> list[str]:
    """The first ops that could not be linearized, for the report."""
    out = [f"state {state!r}"]
    node = nxt[head]
    while node != tail and len(out) <= limit:
        if node < n:
            out.append(ops[node].describe())
        node = nxt[node]
    return out


def prepare(history: Iterable[Op]) -> tuple[dict[Hashable, list[Op]], int]:
    """Split by key; drop unknown gets and unknown writes whose value nobody saw."""
    by_key: dict[Hashable, list[Op]] = defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    dropped = 0
    out: dict[Hashable, list[Op]] = {}
    for key, ops in by_key.items():
        observed = set()
        for op in ops:
            if op.ok and op.kind == "get":
                observed.add(_h(op.output))
            elif op.kind == "cas":
                observed.add(_h(op.expected))
                if op.ok and not op.output[0] and op.output[1] is not ANY:
                    observed.add(_h(op.output[1]))
        kept = []
        for op in ops:
            if not op.ok and (op.kind == "get" or (op.kind in ("put", "cas") and _h(op.value) not in observed)):
                dropped += 1
                continue
            kept.append(op)
        out[key] = kept
    return out, dropped


def _h(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


def check(history: Iterable[Op], init: dict[Hashable, Any] | None = None,
          timeout: float | None = 60.0) -> CheckResult:
    """Check a whole history; ``init`` gives keys' values before it (default absent)."""
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    by_key, dropped = prepare(history)
    results = {}
    for key, ops in by_key.items():
        results[key] = check_key(ops, (init or {}).get(key), deadline, key)
    verdicts = [r.linearizable for r in results.values()]
    if any(v is False for v in verdicts):
        verdict = False
    elif any(v is None for v in verdicts):
        verdict = None
    else:
        verdict = True
    return CheckResult(verdict, results, sum(len(o) for o in by_key.values()), dropped,
                       time.monotonic() - started)
