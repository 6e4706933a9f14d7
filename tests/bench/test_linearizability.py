"""The linearizability checker: it accepts correct histories and flags broken
ones (a lost write, a stale read, a lost CAS, an impossible CAS), and agrees
with a brute-force search over every order on random small histories."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from bench.linearizability import ANY, Op, check, check_key, step

pytestmark = pytest.mark.timeout(60)


def put(c, key, value, t0, t1, ok=True, rev=0):
    return Op(c, "put", key, t0, t1, value=value, ok=ok, revision=rev)


def get(c, key, value, t0, t1, ok=True):
    return Op(c, "get", key, t0, t1, output=value, ok=ok)


def cas(c, key, expected, new, t0, t1, succeeded=True, observed=ANY, ok=True):
    return Op(c, "cas", key, t0, t1, value=new, expected=expected,
              output=(succeeded, observed) if ok else None, ok=ok)


# ---- accepted ------------------------------------------------------------------

def test_empty_and_sequential():
    assert check([]).linearizable is True
    h = [put(0, "k", "a", 0, 1), get(0, "k", "a", 2, 3), put(0, "k", "b", 4, 5), get(0, "k", "b", 6, 7)]
    assert check(h).linearizable is True


def test_read_of_absent_key():
    assert check([get(0, "k", None, 0, 1), put(1, "k", "a", 2, 3)]).linearizable is True


def test_concurrent_read_may_see_old_or_new():
    for seen in ("a", "b"):
        h = [put(0, "k", "a", 0, 1), put(1, "k", "b", 2, 6), get(2, "k", seen, 3, 5)]
        assert check(h).linearizable is True, seen


def test_concurrent_writes_any_order_but_consistent():
    # two overlapping writes, two later reads that agree
    h = [put(0, "k", "a", 0, 5), put(1, "k", "b", 1, 4),
         get(2, "k", "a", 6, 7), get(3, "k", "a", 8, 9)]
    assert check(h).linearizable is True
    h[2] = get(2, "k", "b", 6, 7)
    h[3] = get(3, "k", "b", 8, 9)
    assert check(h).linearizable is True


def test_cas_chain():
    h = [put(0, "k", "a", 0, 1),
         cas(1, "k", "a", "b", 2, 3, True),
         cas(2, "k", "a", "c", 4, 5, False, "b"),
         cas(3, "k", "b", "c", 6, 7, True),
         get(0, "k", "c", 8, 9)]
    assert check(h).linearizable is True


def test_cas_on_absent_key():
    h = [cas(0, "k", None, "a", 0, 1, True), get(1, "k", "a", 2, 3)]
    assert check(h).linearizable is True


def test_timed_out_write_may_have_happened():
    h = [put(0, "k", "a", 0, 1), put(1, "k", "b", 2, math.inf, ok=False), get(2, "k", "b", 10, 11)]
    assert check(h).linearizable is True


def test_timed_out_write_may_not_have_happened():
    h = [put(0, "k", "a", 0, 1), put(1, "k", "b", 2, math.inf, ok=False), get(2, "k", "a", 10, 11)]
    assert check(h).linearizable is True


def test_timed_out_write_takes_effect_late():
    # seen only long after its client gave up: allowed
    h = [put(1, "k", "b", 2, math.inf, ok=False), get(2, "k", None, 10, 11), get(2, "k", "b", 20, 21)]
    assert check(h).linearizable is True


def test_timed_out_cas_either_way():
    base = [put(0, "k", "a", 0, 1), cas(1, "k", "a", "b", 2, math.inf, ok=False)]
    assert check(base + [get(2, "k", "b", 5, 6)]).linearizable is True
    assert check(base + [get(2, "k", "a", 5, 6)]).linearizable is True


def test_keys_are_independent():
    h = [put(0, "x", "1", 0, 10), put(1, "y", "2", 0, 10), get(2, "x", "1", 11, 12), get(2, "y", "2", 11, 12)]
    result = check(h)
    assert result.linearizable is True
    assert set(result.keys) == {"x", "y"}


def test_initial_values():
    h = [get(0, "k", "init", 0, 1)]
    assert check(h).linearizable is False
    assert check(h, init={"k": "init"}).linearizable is True


# ---- flagged -------------------------------------------------------------------

def test_flags_stale_read():
    h = [put(0, "k", "a", 0, 1), put(0, "k", "b", 2, 3), get(1, "k", "a", 4, 5)]
    result = check(h)
    assert result.linearizable is False
    assert result.violations[0].key == "k"
    assert result.violations[0].blocking


def test_flags_lost_write():
    # an acknowledged write that no later read sees
    h = [put(0, "k", "a", 0, 1), get(1, "k", None, 2, 3)]
    assert check(h).linearizable is False


def test_flags_read_of_value_never_written():
    assert check([put(0, "k", "a", 0, 1), get(1, "k", "zzz", 2, 3)]).linearizable is False


def test_flags_reads_going_back_in_time():
    # two sequential reads by others during a write see new then old
    h = [put(0, "k", "a", 0, 1), put(1, "k", "b", 2, 10), get(2, "k", "b", 3, 4), get(3, "k", "a", 5, 6)]
    assert check(h).linearizable is False


def test_flags_two_successful_cas_from_same_value():
    h = [put(0, "k", "a", 0, 1),
         cas(1, "k", "a", "b", 2, 5, True),
         cas(2, "k", "a", "c", 2, 5, True)]
    assert check(h).linearizable is False


def test_flags_failed_cas_that_should_have_succeeded():
    h = [put(0, "k", "a", 0, 1), cas(1, "k", "a", "b", 2, 3, False, "a")]
    assert check(h).linearizable is False


def test_flags_failed_cas_reporting_wrong_value():
    h = [put(0, "k", "a", 0, 1), cas(1, "k", "x", "b", 2, 3, False, "q")]
    assert check(h).linearizable is False


def test_flags_timed_out_write_seen_before_it_was_sent():
    h = [get(2, "k", "b", 0, 1), put(1, "k", "b", 2, math.inf, ok=False)]
    assert check(h).linearizable is False


def test_violation_on_one_key_among_many():
    h = []
    t = 0
    for i in range(200):
        key = f"k{i % 10}"
        h.append(put(i % 5, key, f"v{i}", t, t + 1))
        h.append(get(i % 5, key, f"v{i}", t + 2, t + 3))
        t += 4
    h.append(get(9, "k3", "v3", t, t + 1))   # stale: k3 was overwritten since
    result = check(h)
    assert result.linearizable is False
    assert [r.key for r in result.violations] == ["k3"]


# ---- scale and budget ----------------------------------------------------------

def _simulate(n_clients: int, n_ops: int, seed: int, keys: int = 1, unknown: float = 0.0):
    """A linearizable history: a real register, with each op taking effect at
    a random point inside its [invoke, return] window."""
    rng = random.Random(seed)
    pending = []
    for c in range(n_clients):
        t = rng.random()
        for i in range(n_ops // n_clients):
            duration = rng.uniform(0.1, 3.0)
            pending.append((t + rng.uniform(0, duration), t, t + duration, c, i))
            t += duration + rng.uniform(0, 0.5)
    pending.sort()
    regs: dict = {}
    out = []
    for point, t0, t1, c, i in pending:
        key = f"k{rng.randrange(keys)}"
        kind = rng.choice(["put", "get", "cas"])
        state = regs.get(key)
        lost = rng.random() < unknown
        if kind == "put":
            regs[key] = f"{c}-{i}"
            out.append(put(c, key, f"{c}-{i}", t0, t1, ok=not lost))
        elif kind == "get":
            out.append(get(c, key, state, t0, t1))
        else:
            expected = state if rng.random() < 0.6 else "nope"
            if expected == state:
                regs[key] = f"{c}-{i}"
                out.append(cas(c, key, expected, f"{c}-{i}", t0, t1, True, ok=not lost))
            else:
                out.append(cas(c, key, expected, f"{c}-{i}", t0, t1, False, state, ok=not lost))
    for op in out:
        if not op.ok:
            op.ret = math.inf
            op.output = None
    return out


@pytest.mark.parametrize("seed", range(5))
def test_simulated_correct_histories_pass(seed):
    h = _simulate(16, 2000, seed, keys=4, unknown=0.02)
    result = check(h)
    assert result.linearizable is True, result.summary()


@pytest.mark.parametrize("clients,keys", [(16, 1), (64, 16), (64, 4)])
def test_large_concurrent_history_is_fast(clients, keys):
    # every op overlaps most others of its key: far more than a real run has
    h = _simulate(clients, 6000, 42, keys=keys)
    result = check(h, timeout=40)
    assert result.linearizable is True
    assert result.seconds < 30


def test_corrupting_a_simulated_history_is_flagged():
    h = _simulate(8, 400, 7, keys=1)
    # make the last successful read return a value that was overwritten long ago
    reads = [op for op in h if op.kind == "get" and op.output is not None]
    first_value = reads[0].output
    victim = max((op for op in reads if op.output != first_value and op.invoke > reads[0].ret + 50),
                 key=lambda op: op.invoke)
    victim.output = first_value
    assert check(h).linearizable is False


def test_gives_up_on_time_budget():
    # many overlapping unknown CASes whose values are all observed later: hard
    h = [put(0, "k", "v0", 0, 1)]
    for i in range(1, 40):
        h.append(cas(i, "k", f"v{i - 1}", f"v{i}", 2, math.inf, ok=False))
    h.append(get(99, "k", "impossible", 100, 101))
    for i in range(1, 40):
        h.append(get(100 + i, "k", f"v{i}" if i % 2 else "v0", 102 + i, 102.5 + i))
    result = check(h, timeout=0.5)
    assert result.linearizable in (None, False)


# ---- agreement with brute force -----------------------------------------------

def _brute_force(ops, init=None):
    """Every order that respects real time, applied to the model."""
    n = len(ops)
    for perm in itertools.permutations(range(n)):
        pos = {op: i for i, op in enumerate(perm)}
        if any(ops[a].ok and ops[a].ret < ops[b].invoke and pos[a] > pos[b]
               for a in range(n) for b in range(n)):
            continue
        state, good = init, True
        for i in perm:
            good, state = step(state, ops[i])
            if not good:
                break
        if good:
            return True
    return False


@pytest.mark.parametrize("seed", range(300))
def test_agrees_with_brute_force(seed):
    rng = random.Random(seed)
    values = ["a", "b", "c"]
    ops = []
    for c in range(rng.randint(1, 6)):
        t0 = rng.uniform(0, 10)
        t1 = t0 + rng.uniform(0.1, 5)
        ok = rng.random() > 0.15
        kind = rng.choice(["put", "get", "cas"])
        if kind == "put":
            ops.append(put(c, "k", rng.choice(values), t0, t1, ok=ok))
        elif kind == "get":
            ops.append(get(c, "k", rng.choice(values + [None]), t0, t1))
        else:
            succeeded = rng.random() < 0.5
            ops.append(cas(c, "k", rng.choice(values + [None]), rng.choice(values), t0, t1,
                           succeeded, rng.choice(values + [None, ANY]), ok=ok))
    for op in ops:
        if not op.ok:
            op.ret, op.output = math.inf, None
    assert check_key(ops).linearizable is _brute_force(ops), [op.describe() for op in ops]
