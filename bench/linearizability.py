"""Linearizability of a recorded key-value history, checked one key at a time.

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
search small when many requests time out (on a key with a failed CAS that
read nothing they are kept: that one may need them to see another value).

Each key is decided by one of two methods (``KeyResult.method``):

``"unique"`` -- the benchmark's histories: every value is written at most once
(and never equals the key's initial value), and no deletes. Then each read
pins the one write it saw, and the check is exact and takes O(n log n),
however many operations overlap:

- a *cluster* is a write and the reads that returned its value (gets, failed
  CASes that observed it). In any linearization a cluster is contiguous: its
  reads come after its write and before the next write, since the value never
  comes back. A successful CAS from ``v`` is the write right after ``v``'s
  cluster, so the clusters chained by CASes form a *block* whose internal
  order is fixed (write, reads in any order, next CAS, its reads, ...), starting
  at a put or at the initial value. An unknown write is in its block if some
  kept operation needs its value (then it took effect); else it is dropped.
- a linearization is then an order of whole blocks. Block A must precede B iff
  some op of A returned before some op of B was invoked, i.e. iff
  lo(A) < hi(B), where lo is the earliest return in a block and hi the latest
  invocation (the initial value's block has lo = -inf: it comes first). Such
  an order exists iff there is no cycle; with this relation every cycle implies
  one of length two (along A1 -> A2 -> ..., with no 2-cycle, hi(Ai) <= lo(Ai+1)
  < hi(Ai+2), so hi strictly grows every two steps and a cycle cannot close),
  so the test is: no two blocks with lo(A) < hi(B) and lo(B) < hi(A)
  (Gibbons & Korach's zones), plus each block consistent inside.
- the order of blocks by (min(lo, hi), hi) respects every edge, so when there
  is no conflict the checker builds that linearization and replays it against
  the model and the real-time order before saying "linearizable". The verdict
  "linearizable" therefore always comes with a checked witness; "not
  linearizable" names the operations that form the conflict.
- a failed CAS that read nothing (``ANY``, never from the benchmark's loads)
  only needs the value to differ from what it expected. The key is first
  decided without such CASes (if no linearization without them, none with
  them: they change no state); then each is put into the witness at the first
  place its window allows where the value differs. One that does not fit sits,
  in any linearization, in the cluster of some other value v: it is decided as
  a get of v, for each v it may see (nearest first), recursively for the
  others. That is exact; only past ``MAX_BLIND_TRIES`` decisions does the
  search take over.

``"search"`` -- anything else (repeated values, deletes): Wing & Gong's search
with Lowe's memoization, as Porcupine does it. The calls and returns, in time
order, form a doubly linked list (dancing links). The ops that may go next are
those invoked before the first return still in the list. Depth-first, try
each: apply it to the model; if the model accepts and the pair (set of
linearized ops, state) has not been seen before (memoization), lift it out of
the list and go deeper; when none fits, undo the last one and try its next
sibling. The history is linearizable iff the list empties (the ops lifted, in
order, are the linearization). Pruning that never loses a linearization, as
far as the values allow:

- a read the current state satisfies is taken at once and alone (always safe);
- reads pin their writes: a read of a value that only one op writes (and that
  is not the initial value) follows that write, so the write's deadline is at
  most the read's return, and the read starts no earlier than the write; an
  unknown CAS whose such value was read took effect, so it reads its expected
  value (and may only go when the register holds it);
- while the register holds a value that is written at most once and some read
  of it is still to be placed, no write may go next (the value would never
  come back), except a CAS that must succeed from it, when it is the last;
- refuted at once: a read of a value nobody writes, a failed CAS that saw
  what it expected;
- writes are tried in the order of their clusters' zones, as above.

The search has a time budget: a key it cannot decide in time is *undecided*
(``linearizable is None``), counted in ``summary()["undecided_keys"]``, and the
whole check is then undecided, never passed.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

INF = math.inf


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
    linearized: int = 0              # search: the deepest partial linearization found
    blocking: list[str] = field(default_factory=list)   # why not, when not linearizable
    seconds: float = 0.0
    method: str = ""                 # "unique" | "search" (see the module's docstring)


@dataclass
class CheckResult:
    linearizable: bool | None        # None: some key could not be decided in time
    keys: dict[Hashable, KeyResult]
    ops: int
    dropped: int                     # unknown gets and unobserved unknown writes
    seconds: float
    timeout: float | None = None     # the time budget it had

    @property
    def violations(self) -> list[KeyResult]:
        return [r for r in self.keys.values() if r.linearizable is False]

    @property
    def undecided(self) -> list[KeyResult]:
        return [r for r in self.keys.values() if r.linearizable is None]

    def summary(self) -> dict:
        undecided = self.undecided
        methods: dict[str, int] = {}
        for r in self.keys.values():
            methods[r.method] = methods.get(r.method, 0) + 1
        return {
            "linearizable": self.linearizable,
            "ops_checked": self.ops,
            "ops_dropped": self.dropped,
            "keys": len(self.keys),
            "undecided_keys": len(undecided),    # keys the time budget ran out on: not a pass
            "undecided_examples": [{"key": repr(r.key), "ops": r.ops, "linearized": r.linearized,
                                    "seconds": round(r.seconds, 3)} for r in undecided[:10]],
            "keys_by_method": dict(sorted(methods.items())),
            "violations": [
                {"key": repr(r.key), "ops": r.ops, "linearized": r.linearized, "blocking": r.blocking}
                for r in self.violations
            ],
            "check_seconds": round(self.seconds, 3),
            "check_timeout_s": self.timeout,
        }


def _ret(op: Op) -> float:
    return op.ret if op.ok else INF


def _inv(op: Op) -> float:
    return op.invoke


def _failed_cas(op: Op) -> bool:
    """An acknowledged CAS that did not write (it read ``output[1]``)."""
    return op.kind == "cas" and op.ok and not op.output[0]


def _writes(op: Op) -> bool:
    """Whether ``op`` writes, or may have (unknown outcome)."""
    return op.kind in ("put", "delete") or (op.kind == "cas" and not _failed_cas(op))


def _h(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


# ---- preparation -----------------------------------------------------------------

def prepare_key(ops: list[Op]) -> tuple[list[Op], int]:
    """One key's ops without unknown gets and unknown writes whose value nobody saw.

    Dropping such a write loses nothing: in a linearization, first move every
    unknown op that had no effect to the end (it changes no state there); the
    dropped write's value is then read by nobody, so removing it changes what
    no other op sees -- unless some failed CAS read nothing (``ANY``) and only
    needs the value to differ, so on such a key unknown writes are all kept."""
    observed = set()
    blind_cas = False
    for op in ops:
        if op.ok and op.kind == "get":
            observed.add(_h(op.output))
        elif op.kind == "cas":
            observed.add(_h(op.expected))
            if _failed_cas(op):
                if op.output[1] is ANY:
                    blind_cas = True
                else:
                    observed.add(_h(op.output[1]))
    kept = []
    for op in ops:
        if not op.ok and (op.kind == "get" or (op.kind in ("put", "cas") and not blind_cas
                                               and _h(op.value) not in observed)):
            continue
        kept.append(op)
    return kept, len(ops) - len(kept)


def prepare(history: Iterable[Op]) -> tuple[dict[Hashable, list[Op]], int]:
    """Split by key; drop unknown gets and unknown writes whose value nobody saw."""
    by_key: dict[Hashable, list[Op]] = defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    dropped = 0
    out: dict[Hashable, list[Op]] = {}
    for key, ops in by_key.items():
        out[key], d = prepare_key(ops)
        dropped += d
    return out, dropped


# ---- unique values: exact, O(n log n) ----------------------------------------------

MAX_BLIND_TRIES = 64
"""How many times the unique method may decide one key while placing its
failed CASes that read nothing (beyond that, the search decides the key)."""


class _Block:
    """A put (or the initial value) and the chain of CASes after it, each write
    followed by the reads of its value: ``groups`` in their fixed order."""

    __slots__ = ("groups", "hi", "hi_op", "label", "lo", "lo_op")

    def __init__(self, label: str) -> None:
        self.groups: list[list[Op]] = []
        self.lo, self.lo_op = INF, None     # earliest return, and whose
        self.hi, self.hi_op = -INF, None    # latest invocation, and whose
        self.label = label


@dataclass
class _Unique:
    result: KeyResult
    order: list[Op] | None = None               # a linearization, when there is one


def check_key_unique(ops: list[Op], init: Any = None, key: Hashable = None) -> KeyResult | None:
    """Decide one key exactly when its values are unique (see the module's
    docstring); None when they are not, or when its failed CASes that read
    nothing need too many tries (then use :func:`check_key_search`)."""
    started = time.monotonic()
    blind = [op for op in ops if _failed_cas(op) and op.output[1] is ANY]
    if not blind:
        u = _unique(ops, init, key)
        if u is None:
            return None
        u.result.seconds = time.monotonic() - started
        return u.result
    # A failed CAS that read nothing (x, expecting e) changes no state: decide
    # without such CASes (no linearization without them: none with them), then
    # put each into the linearization found, somewhere in its window where the
    # value is not e. When one does not fit there, it sits in some other order
    # in the cluster of some value v != e, i.e. it is a get of v: try each v
    # that x may see (written before x returned, not gone before it was
    # invoked; latest first), and the rest of the CASes against each. Exact,
    # unless it takes more than MAX_BLIND_TRIES.
    tries = 0

    def solve(base: list[Op], blind: list[Op]) -> tuple[str, Any]:
        nonlocal tries
        tries += 1
        if tries > MAX_BLIND_TRIES:
            return "give up", None
        u = _unique(base, init, key)
        if u is None:
            return "give up", None
        if u.result.linearizable is False:
            return "no", u.result
        order, x = _insert_blind(u.order, blind, init)
        if x is None:
            return "yes", order
        e = _h(x.expected)
        writes = {_h(op.value): op for op in base if _writes(op)}
        # v is gone before x if a write invoked after v's write returned had
        # returned before x was invoked
        gone = max((w.invoke for w in writes.values() if _ret(w) < x.invoke), default=-INF)
        values = sorted((v for v, w in writes.items() if w.invoke <= x.ret and _ret(w) >= gone),
                        key=lambda v: -writes[v].invoke)
        seen = [writes[v].value for v in values if v != e]
        seen += [init] if gone == -INF and _h(init) != e else []
        others = [op for op in blind if op is not x]
        for value in seen:
            stand_in = Op(x.client, "get", x.key, x.invoke, x.ret, output=value)
            verdict, got = solve(base + [stand_in], others)
            if verdict == "yes":
                return verdict, [x if op is stand_in else op for op in got]
            if verdict == "give up":
                return verdict, got
        why = f"a failed CAS that read nothing saw {x.expected!r} all through its window, whatever the order"
        return "no", KeyResult(key, False, len(ops), 0, [why, x.describe()], method="unique")

    verdict, got = solve([op for op in ops if not (_failed_cas(op) and op.output[1] is ANY)], blind)
    if verdict == "give up":
        return None
    if verdict == "no":
        got.ops = len(ops)
        got.seconds = time.monotonic() - started
        return got
    if len(got) != len(ops) or not _replay(got, init):
        return None   # cannot happen; the search decides it then
    return KeyResult(key, True, len(ops), len(ops), [], time.monotonic() - started, "unique")


def _unique(ops: list[Op], init: Any, key: Hashable) -> _Unique | None:
    """The unique method without failed CASes that read nothing: a verdict
    and, if linearizable, a linearization."""
    inv, ret = _inv, _ret   # an op's window
    init_v = _h(init)
    writer: dict[Any, Op] = {}
    for op in ops:
        if op.kind == "delete":
            return None
        if op.kind not in ("put", "cas", "get"):
            raise ValueError(f"unknown operation kind {op.kind!r}")
        if _writes(op):
            v = _h(op.value)
            if op.value is None or v == init_v or v in writer:
                return None
            writer[v] = op

    def fail(why: str, *culprits: Op) -> _Unique:
        return _Unique(KeyResult(key, False, len(ops), 0, [why] + [op.describe() for op in culprits],
                                 method="unique"))

    # The values some kept op needs; an unknown CAS whose value is needed took
    # effect (nobody else writes that value), so it needs its expected value.
    needed: set = set()
    for op in ops:
        if op.ok and op.kind == "get":
            needed.add(_h(op.output))
        elif op.ok and op.kind == "cas":
            needed.add(_h(op.output[1]) if _failed_cas(op) else _h(op.expected))
    todo = list(needed)
    while todo:
        w = writer.get(todo.pop())
        if w is not None and not w.ok and w.kind == "cas" and _h(w.expected) not in needed:
            needed.add(_h(w.expected))
            todo.append(_h(w.expected))
    live = {v: w for v, w in writer.items() if w.ok or v in needed}
    dropped = [op for op in ops if not op.ok and (op.kind == "get" or _h(op.value) not in live)]

    readers: dict[Any, list[Op]] = defaultdict(list)   # value -> gets and failed CASes that saw it
    succ: dict[Any, Op] = {}                           # value -> the CAS that replaced it
    for op in ops:
        if not op.ok and (op.kind == "get" or _h(op.value) not in live):
            continue
        if op.kind == "get":
            readers[_h(op.output)].append(op)
        elif _failed_cas(op):
            seen = _h(op.output[1])
            if seen == _h(op.expected):
                return fail(f"a failed CAS saw the value it expected ({op.output[1]!r})", op)
            readers[seen].append(op)
        elif op.kind == "cas":
            e = _h(op.expected)
            if e in succ:
                return fail(f"two CASes replaced the same {op.expected!r}, which was written once", succ[e], op)
            succ[e] = op
    for v, rs in readers.items():
        if v not in live and v != init_v:
            seen = rs[0].output if rs[0].kind == "get" else rs[0].output[1]
            return fail(f"read a value never written ({seen!r})", rs[0])
    for v, c in succ.items():
        if v not in live and v != init_v:
            return fail(f"a CAS succeeded from a value never written ({c.expected!r})", c)

    # The blocks, each consistent inside: no op returns before an op of an
    # earlier group was invoked.
    blocks: list[_Block] = []
    placed: set = set()
    roots = [init_v] + [v for v, w in live.items() if w.kind == "put"]
    for root in roots:
        b = _Block(f"the initial value {init!r}" if not blocks else f"the put of {root!r}")
        v = root
        if blocks:
            b.groups.append([live[v]])
        while v not in placed:
            placed.add(v)
            if readers.get(v):
                b.groups.append(readers[v])
            c = succ.get(v)
            if c is None:
                break
            v = _h(c.value)
            b.groups.append([c])
        prefix, prefix_op = -INF, None
        for group in b.groups:
            first = min(group, key=ret)
            if ret(first) < prefix:
                return fail(f"in the chain from {b.label}: an op returned before one it must follow was invoked",
                            first, prefix_op)
            last = max(group, key=inv)
            if inv(last) > prefix:
                prefix, prefix_op = inv(last), last
            if ret(first) < b.lo:
                b.lo, b.lo_op = ret(first), first
        b.hi, b.hi_op = prefix, prefix_op
        if root == init_v:
            b.lo = -INF        # the initial value was there first
        blocks.append(b)
    if len(placed) != len(live) + 1:
        stuck = [w for v, w in live.items() if v not in placed]
        return fail("CASes replace each other's values in a cycle that no write starts", *stuck[:4])

    # Two blocks that must each precede the other.
    by_lo = sorted(blocks, key=lambda b: b.lo)
    los = [b.lo for b in by_lo]
    best: list[tuple] = []                    # best[i]: the two largest (hi, index) among by_lo[:i+1]
    top: list[tuple[float, int]] = []
    for i, b in enumerate(by_lo):
        top = sorted(top + [(b.hi, i)], reverse=True)[:2]
        best.append(tuple(top))
    for j, b in enumerate(by_lo):
        k = bisect.bisect_left(los, b.hi)      # by_lo[:k]: the blocks with lo < b.hi, which must precede b
        if k == 0:
            continue
        for hi, i in best[k - 1]:
            if i != j:
                if hi > b.lo:
                    a = by_lo[i]
                    if b.lo == -INF:
                        a, b = b, a
                    if a.lo == -INF:
                        return fail(f"the first op (of the chain from {b.label}) returned before the"
                                    f" second (of the chain from {a.label}, which comes first) was invoked",
                                    b.lo_op, a.hi_op)
                    return fail(f"the chain from {a.label} must precede the chain from {b.label} (the first"
                                f" op returned before the second was invoked) and follow it (the third"
                                f" returned before the fourth was invoked)", a.lo_op, b.hi_op, b.lo_op, a.hi_op)
                break

    # No conflict: this order respects every edge. Build it and replay it.
    blocks.sort(key=lambda b: (min(b.lo, b.hi), b.hi))
    order = [op for b in blocks for group in b.groups for op in sorted(group, key=inv)]
    order += sorted(dropped, key=lambda op: op.invoke)
    if len(order) != len(ops) or not _replay(order, init):
        return None   # cannot happen; the search decides it then
    return _Unique(KeyResult(key, True, len(ops), len(ops), [], method="unique"), order)


def _insert_blind(order: list[Op], blind: list[Op], init: Any) -> tuple[list[Op] | None, Op | None]:
    """``order`` with each failed CAS that read nothing put at the first place
    its window allows where the value is not what it expected; or one that
    has no such place."""
    inv, ret = _inv, _ret
    n = len(order)
    states = [_h(init)]
    state = init
    for op in order:
        if op.ok or op.kind != "get":
            state = step(state, op)[1]
        states.append(_h(state))
    inv_sorted = sorted(range(n), key=lambda i: inv(order[i]))
    invs = [inv(order[i]) for i in inv_sorted]
    suffix_min = [n] * (n + 1)            # suffix_min[j]: the least index among inv_sorted[j:]
    for j in range(n - 1, -1, -1):
        suffix_min[j] = min(suffix_min[j + 1], inv_sorted[j])
    ret_sorted = sorted(range(n), key=lambda i: ret(order[i]))
    rets = [ret(order[i]) for i in ret_sorted]
    prefix_max = [-1] * (n + 1)           # prefix_max[j]: the greatest index among ret_sorted[:j]
    for j, i in enumerate(ret_sorted):
        prefix_max[j + 1] = max(prefix_max[j], i)
    at: dict[int, list[Op]] = defaultdict(list)
    for x in blind:
        first = prefix_max[bisect.bisect_left(rets, x.invoke)] + 1   # after all that returned before x
        last = suffix_min[bisect.bisect_right(invs, x.ret)]          # before all invoked after x returned
        e = _h(x.expected)
        gap = next((g for g in range(first, last + 1) if states[g] != e), None)
        if gap is None:
            return None, x
        at[gap].append(x)
    out = []
    for g in range(n + 1):
        out += sorted(at.get(g, ()), key=lambda op: op.invoke)
        if g < n:
            out.append(order[g])
    return out, None


def _replay(order: list[Op], init: Any) -> bool:
    """Whether ``order`` is a linearization: the model accepts it and no op
    comes after one that was invoked after it returned."""
    state, latest = init, -INF
    for op in order:
        if _ret(op) < latest:
            return False
        latest = max(latest, op.invoke)
        if op.ok or op.kind != "get":
            good, state = step(state, op)
            if not good:
                return False
    return True


# ---- anything else: search ---------------------------------------------------------

MAX_MEMO = 3_000_000
"""Configurations the search of one key may remember; beyond, it gives up
(the key is undecided), as when its time is up."""

def check_key_search(ops: list[Op], init: Any = None, deadline: float | None = None,
                     key: Hashable = None) -> KeyResult:
    """Wing–Gong search with memoization over one key's (prepared) operations."""
    started = time.monotonic()
    ops = sorted(ops, key=lambda op: op.invoke)   # so the linearized ones are mostly a prefix
    n = len(ops)
    if n == 0:
        return KeyResult(key, True, 0, method="search")
    if deadline is not None and time.monotonic() > deadline:
        return KeyResult(key, None, n, 0, [], 0.0, "search")

    # Reads pin their writes: a read of a value written by exactly one op (and
    # not the initial value) is linearized after that write.
    writers: dict[Any, list[int]] = defaultdict(list)
    for i, op in enumerate(ops):
        if _writes(op):
            writers[_h(None if op.kind == "delete" else op.value)].append(i)
    once = {v for v, ws in writers.items() if len(ws) == 1} - {_h(init)}   # values that never come back
    if _h(init) not in writers:
        once.add(_h(init))
    reads: list[Any] = [None] * n    # the value op i needs to see, if one
    needs = [False] * n
    for i, op in enumerate(ops):
        if op.kind == "get" and op.ok:
            reads[i], needs[i] = _h(op.output), True
        elif op.kind == "cas" and op.ok:
            if not op.output[0]:
                if op.output[1] is not ANY:
                    reads[i], needs[i] = _h(op.output[1]), True
            else:
                reads[i], needs[i] = _h(op.expected), True
    # Impossible whatever the order: a failed CAS that saw what it expected,
    # a read of a value nobody writes (and not there at first).
    for i, op in enumerate(ops):
        if _failed_cas(op) and op.output[1] is not ANY and _h(op.output[1]) == _h(op.expected):
            return KeyResult(key, False, n, 0, ["a failed CAS saw the value it expected", op.describe()],
                             time.monotonic() - started, "search")
        if needs[i] and reads[i] not in writers and reads[i] != _h(init):
            return KeyResult(key, False, n, 0, ["read a value never written", op.describe()],
                             time.monotonic() - started, "search")
    # An unknown CAS whose value someone read took effect (if nobody else
    # writes that value): it too must see its expected value.
    needed = {reads[i] for i in range(n) if needs[i]}
    changed = True
    while changed:
        changed = False
        for i, op in enumerate(ops):
            v = _h(op.value)
            if op.kind == "cas" and not op.ok and not needs[i] and v in needed and v in once and v in writers:
                reads[i], needs[i] = _h(op.expected), True
                needed.add(reads[i])
                changed = True
    inv = [op.invoke for op in ops]
    ret = [_ret(op) for op in ops]
    pins = [(i, writers[reads[i]][0]) for i in range(n)
            if needs[i] and reads[i] in once and reads[i] in writers]
    for _ in range(64):     # to a fixpoint (CAS chains); any number of rounds is sound
        changed = False
        for r, w in pins:
            if ret[r] < ret[w]:
                ret[w], changed = ret[r], True
            if inv[w] > inv[r]:
                inv[r], changed = inv[w], True
        if not changed:
            break
    for i in range(n):
        if inv[i] > ret[i]:
            r, w = next((r, w) for r, w in pins if r == i or w == i)
            return KeyResult(key, False, n, 0, ["read returned before the only write of its value was invoked",
                                                ops[r].describe(), ops[w].describe()],
                             time.monotonic() - started, "search")
    # a write's zone (see the unique method): its cluster's earliest return
    # (its own, pinned) and latest invocation
    late = list(inv)
    for r, w in pins:
        late[w] = max(late[w], inv[r])
    need: dict[Any, int] = defaultdict(int)    # value -> reads of it not yet linearized
    for i in range(n):
        if needs[i]:
            need[reads[i]] += 1

    # Nodes 0..n-1 are calls, n..2n-1 returns (op i: call i, return n+i);
    # 2n is the head sentinel, 2n+1 the tail sentinel.
    order = sorted(
        [(inv[i], 0, i) for i in range(n)] + [(ret[i], 1, n + i) for i in range(n)],
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
        While the state is a value that never comes back and reads of it
        remain, no write may go (but the CAS from it that is its last read).
        Writes go in the order of their zones: (min(lo, hi), hi), lo being the
        write's deadline (its own return, that of a read pinned to it or of
        the earliest candidate that reads its value) and hi the latest
        invocation of a read pinned to it."""
        sh = _h(state)
        held = sh in once and need[sh] > 0
        calls = []
        node = nxt[head]
        while node < n:
            calls.append(node)
            node = nxt[node]
        deadline_of: dict = {}   # value -> earliest return of a candidate that reads it

        def want(value: Any, c: int) -> None:
            v = _h(value)
            deadline_of[v] = min(deadline_of.get(v, INF), ret[c])

        out = []
        for c in calls:
            op = ops[c]
            if op.kind == "get" or _failed_cas(op):
                if step(state, op)[0]:
                    return [c]
                if op.kind == "get":
                    want(op.output, c)
                elif op.output[1] is not ANY:
                    want(op.output[1], c)
                out.append(c)
                continue
            if op.kind == "cas":
                want(op.expected, c)
                if needs[c] and not op.ok and _h(op.expected) != sh:
                    continue          # it must succeed: not now
            if held:
                if op.kind != "cas":
                    continue
                if needs[c]:          # a CAS that must succeed: once it is the last to read this value
                    if not (need[sh] == 1 and _h(op.expected) == sh):
                        continue
                elif _h(op.expected) == sh:   # unknown: would overwrite it now
                    continue
            out.append(c)

        def urgency(c: int) -> tuple:
            lo = min(ret[c], deadline_of.get(_h(ops[c].value), INF))
            return (min(lo, late[c]), late[c], ret[c])

        out.sort(key=urgency)
        return out

    cache: set[tuple[int, int, Any]] = set()
    # frames: [candidates, next index, op applied to reach this frame, state before it]
    frames: list[list] = [[candidates(init), 0, -1, None]]
    linearized = 0
    state = init
    depth = best = 0
    blocking: list[str] = []
    steps = 0
    while nxt[head] != tail:
        steps += 1
        if deadline is not None and steps % 1024 == 0 and time.monotonic() > deadline:
            return KeyResult(key, None, n, best, [], time.monotonic() - started, "search")
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
            low = (~bits & (bits + 1)).bit_length() - 1    # ops[:low] are all linearized
            memo = (low, bits >> low, _h(new_state))
            if memo in cache:
                continue
            if len(cache) >= MAX_MEMO:
                return KeyResult(key, None, n, best, [], time.monotonic() - started, "search")
            cache.add(memo)
            lift(c)
            if needs[c]:
                need[reads[c]] -= 1
            frames.append([None, 0, c, state])
            state, linearized = new_state, bits
            depth += 1
            frames[-1][0] = candidates(state)
            moved = True
            break
        if moved:
            best = max(best, depth)
            continue
        # nothing fits here: backtrack
        if depth >= best:
            blocking = _pending(ops, nxt, head, n, tail, state)
        if len(frames) == 1:
            return KeyResult(key, False, n, best, blocking, time.monotonic() - started, "search")
        _, _, c, state = frames.pop()
        linearized &= ~(1 << c)
        if needs[c]:
            need[reads[c]] += 1
        unlift(c)
        depth -= 1
    return KeyResult(key, True, n, n, [], time.monotonic() - started, "search")


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


# ---- entry points ------------------------------------------------------------------

def check_key(ops: list[Op], init: Any = None, deadline: float | None = None,
              key: Hashable = None) -> KeyResult:
    """Decide one key: exactly if its values are unique, else by search."""
    started = time.monotonic()
    kept, _ = prepare_key(ops)
    result = check_key_unique(kept, init, key)
    if result is None:
        result = check_key_search(kept, init, deadline, key)
    result.seconds = time.monotonic() - started
    return result


def check(history: Iterable[Op], init: dict[Hashable, Any] | None = None,
          timeout: float | None = 60.0) -> CheckResult:
    """Check a whole history; ``init`` gives keys' values before it (default absent).

    Keys with unique values are decided first (they are cheap), then the rest
    by search, smallest first, all within ``timeout`` seconds."""
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    by_key, dropped = prepare(history)
    init = init or {}
    results: dict[Hashable, KeyResult] = {}
    rest = []
    for key, ops in by_key.items():
        t = time.monotonic()
        r = check_key_unique(ops, init.get(key), key)
        if r is None:
            rest.append(key)
        else:
            r.seconds = time.monotonic() - t
            results[key] = r
    for key in sorted(rest, key=lambda k: len(by_key[k])):
        results[key] = check_key_search(by_key[key], init.get(key), deadline, key)
    results = {key: results[key] for key in by_key}
    verdicts = [r.linearizable for r in results.values()]
    if any(v is False for v in verdicts):
        verdict = False
    elif any(v is None for v in verdicts):
        verdict = None
    else:
        verdict = True
    return CheckResult(verdict, results, sum(len(o) for o in by_key.values()), dropped,
                       time.monotonic() - started, timeout)
