"""``profile``: where a raftkv leader's time goes under load, sampled with py-spy.

    python -m bench profile --op put --clients 64 --seconds 15 --out bench/results

Starts a 3-member raftkv cluster, drives ``--op`` with the throughput
benchmark's client (grpc.aio on etcd's stubs, spread over every member) and,
after ``--warmup`` seconds, samples the leader with py-spy for ``--seconds``
(100 samples a second, without pausing it). Writes the folded stacks
(``profile-<op>-c<clients>.txt``) and prints the functions with the most
samples: own (the function itself was running) and total (it was on the
stack), each as a share of the samples, plus the share of samples in which
a thread held the GIL (a second py-spy pass with ``--gil``) and the ops/s
reached while sampling. py-spy is the PyPI package (the bench extras).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import click

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _py_spy() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    found = beside if os.path.exists(beside) else shutil.which("py-spy")
    if found is None:
        raise click.ClickException("py-spy is not installed (pip install py-spy)")
    return found


def _frame_label(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "raftkv/", "python3.11/"):
        if marker in path:
            path = path[path.index(marker):]
            break
    return f"{match['name']} ({path})"


def summarize(folded: str, top: int = 25) -> dict:
    """Own and total sample shares per function from py-spy's raw (folded) output."""
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    samples = 0
    for line in folded.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        count = int(match["count"])
        frames = [_frame_label(f) for f in match["stack"].split(";")
                  if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for label in set(frames):
            total[label] += count
    share = (lambda n: round(n / samples, 4)) if samples else (lambda n: 0.0)
    return {
        "samples": samples,
        "own": [(label, share(n), share(total[label])) for label, n in own.most_common(top)],
        "total": [(label, share(n)) for label, n in total.most_common(top)],
    }


def _record(pid: int, seconds: float, path: str, gil: bool) -> None:
    command = [_py_spy(), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
               "--nonblocking", "--format", "raw", "--output", path]
    if gil:
        command.append("--gil")
    subprocess.run(command, check=True, capture_output=True, timeout=seconds + 60)


def measure(op: str, clients: int, seconds: float, warmup: float, out: str | None) -> dict:
    from bench.harness import started_cluster
    from bench.throughput import _drive

    with started_cluster("raftkv", 3, "profile") as cluster:
        tmp = cluster.base_dir
        leader = cluster.leader_index(timeout=30)
        pid = cluster.members[leader].process.pid
        loaded: dict = {}

        def load() -> None:
            ops = ("put",) if op == "put" else ("put", "get")
            phases = asyncio.run(_drive(cluster.endpoints, "raftkv", [clients], 2 * seconds + 5, warmup,
                                        1000, 256, 10.0))
            loaded.update({r.op: r for r in phases if r.op in ops})

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        # the put phase starts at once; a get phase follows the put phase's 2*seconds+5
        time.sleep(warmup + (0 if op == "put" else 2 * seconds + 5 + warmup))
        folded = os.path.join(tmp, "all.txt")
        gil = os.path.join(tmp, "gil.txt")
        _record(pid, seconds, folded, gil=False)
        _record(pid, seconds / 2, gil, gil=True)
        thread.join(timeout=6 * seconds + 60)
        with open(folded) as f:
            text = f.read()
        with open(gil) as f:
            gil_samples = summarize(f.read())["samples"]
        result = {"benchmark": "profile", "op": op, "clients": clients, "seconds": seconds,
                  "ops_per_s": loaded[op].ops_per_s if op in loaded else None,
                  "gil_share": round(gil_samples / (seconds / 2 * 100), 3), **summarize(text)}
        if out:
            os.makedirs(out, exist_ok=True)
            shutil.copy(folded, os.path.join(out, f"profile-{op}-c{clients}.txt"))
            with open(os.path.join(out, f"profile-{op}-c{clients}.json"), "w") as f:
                json.dump(result, f, indent=1)
        return result


@click.command("profile")
@click.option("--op", type=click.Choice(["put", "get"]), default="put", show_default=True)
@click.option("--clients", default=64, show_default=True)
@click.option("--seconds", default=15.0, show_default=True, help="Seconds sampled.")
@click.option("--warmup", default=3.0, show_default=True)
@click.option("--out", default=None, help="Folder for the folded stacks and the JSON summary.")
def profile(op: str, clients: int, seconds: float, warmup: float, out: str | None) -> None:
    """Sample a raftkv leader with py-spy under load; print where its time goes."""
    result = measure(op, clients, seconds, warmup, out)
    click.echo(f"{op} x{clients}: {result['ops_per_s']} ops/s; {result['samples']} samples; "
               f"a thread held the GIL in {result['gil_share']:.0%} of GIL samples' time", err=True)
    click.echo("| function | own | total |\n|---|---:|---:|", err=True)
    for label, own, total in result["own"]:
        click.echo(f"| {label} | {own:.1%} | {total:.1%} |", err=True)
    click.echo(json.dumps({k: v for k, v in result.items() if k not in ("own", "total")}))
