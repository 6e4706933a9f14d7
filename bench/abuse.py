"""``abuse``: what hostile and careless clients cost a member, next to etcd.

    python -m bench abuse                       # raftkv, then etcd; a side-by-side table
    python -m bench abuse --system raftkv --phase-seconds 5

One member (``--nodes`` for more; the abuse and the probe then go to the
leader) of each system, preloaded with ``--range-keys`` keys under
/abuse/range/. Then phases of ``--phase-seconds`` each: a baseline without
abuse, then each abuser alone (bench/abusers.py, in a child process of its
own): slow watchers of the busy prefix, a flood of held streams, slow and
stalled snapshot readers, a WatchProgressRequest flood never read, clients
ranging over all the preloaded keys. Every abuser is cleaned up (its
streams cancelled, its channels closed) at the end of its phase.

Throughout every phase a probe (``--probe-clients`` coroutines on one
grpc.aio channel, etcd's own stubs, one request in flight each) alternates a
put and a linearizable get of small keys under /abuse/probe/ (the prefix the
slow watchers and the progress flood watch), each with a deadline of
``--timeout``: its p50/p99 and answers per second say what the abuse costs
everyone else. Meanwhile the member's VmRSS is sampled (bench.soak's
sampler of /proc/<pid>): before the phase, its peak, the last sample under
abuse, and one a second after the abuser was cleaned up. After the last
phase, the member's RSS once settled (the least of the samples over
``--settle`` seconds): what it holds on to after all of it.

Results: ``<out>/<system>-<nodes>n-abuse-c<probe clients>.json`` per system
and, for both, ``compare-<nodes>n-abuse-c<probe clients>.md``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace

import click

from bench.abusers import KINDS, AbuseParams, AbuserProcess, prefix_end
from bench.scenario import ms, pct
from bench.soak import proc_sample, server_pid

log = logging.getLogger(__name__)

PHASES = ("baseline",) + KINDS
MiB = 1024 * 1024


@dataclass
class AbuseConfig:
    """One abuse run: the system, the phases, the probe, the abusers' strength."""
    system: str = "raftkv"
    nodes: int = 1
    phases: tuple[str, ...] = PHASES
    phase_seconds: float = 15.0
    probe_clients: int = 8
    probe_keys: int = 32
    probe_value_size: int = 256
    timeout: float = 5.0                # the probe's deadline per request
    range_keys: int = 50_000            # preloaded, for big-ranges (and the snapshot's size)
    range_value_size: int = 256
    warmup: float = 3.0                 # unmeasured probe before the first phase
    sample_every: float = 0.25
    settle: float = 5.0
    seed: int = 1
    abuse: AbuseParams = field(default_factory=lambda: AbuseParams(endpoint=""))

    @property
    def name(self) -> str:
        return f"{self.system}-{self.nodes}n-abuse-c{self.probe_clients}"


@dataclass
class ProbeStats:
    ops: int = 0
    errors: int = 0
    ops_per_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    put_p99_ms: float | None = None
    get_p99_ms: float | None = None
    longest_gap_s: float | None = None   # longest time without an answer, from the phase's start to its end
    first_error: str | None = None


@dataclass
class PhaseResult:
    phase: str
    seconds: float
    probe: ProbeStats
    rss_before_mb: float | None
    rss_peak_mb: float | None
    rss_end_mb: float | None             # the last sample under abuse
    rss_after_mb: float | None           # a second after the abuser was cleaned up
    member_cpu_s: float | None           # CPU the member used while the probe ran
    threads_peak: int | None
    fds_peak: int | None
    samples: int
    rss_series_mb: list[float] = field(default_factory=list)   # about one sample a second under abuse
    abuser: dict | None = None           # bench.abusers.AbuserStats, as the abuser reported it
    member_running: bool = True


# ---- the probe --------------------------------------------------------------------------------


@dataclass
class _Call:
    kind: str
    invoke: float
    ret: float | None                    # None: failed or timed out


async def _probe(channel, cfg: AbuseConfig, seconds: float) -> tuple[list[_Call], float, float, str | None]:
    """``cfg.probe_clients`` loops of put then linearizable get for
    ``seconds``; (every call, start, end, first error)."""
    from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    kv = rpc_pb2_grpc.KVStub(channel)
    prefix = cfg.abuse.busy_prefix
    value = b"p" * cfg.probe_value_size
    calls: list[_Call] = []
    first_error: list[str] = []
    began = time.monotonic()
    end = began + seconds

    async def client(n: int) -> None:
        rng = random.Random(cfg.seed * 1_000_003 + n)
        while time.monotonic() < end:
            key = prefix + b"k%03d" % rng.randrange(cfg.probe_keys)
            for kind in ("put", "get"):
                invoke = time.monotonic()
                try:
                    if kind == "put":
                        await kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=cfg.timeout)
                    else:
                        await kv.Range(rpc_pb2.RangeRequest(key=key), timeout=cfg.timeout)
                    calls.append(_Call(kind, invoke, time.monotonic()))
                except Exception as e:  # noqa: BLE001 - an error is a figure of the phase
                    calls.append(_Call(kind, invoke, None))
                    if not first_error:
                        first_error.append(_describe(e))
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(client(n) for n in range(cfg.probe_clients)))
    return calls, began, time.monotonic(), (first_error or [None])[0]


def _describe(e: BaseException) -> str:
    code = getattr(e, "code", None)
    if callable(code):   # a gRPC error
        return f"{code().name}: {e.details()}"
    return f"{type(e).__name__}: {e}"


def probe_stats(calls: list[_Call], began: float, end: float, first_error: str | None = None) -> ProbeStats:
    ok = sorted(c.ret - c.invoke for c in calls if c.ret is not None)
    by_kind = {k: sorted(c.ret - c.invoke for c in calls if c.ret is not None and c.kind == k) for k in ("put", "get")}
    answers = sorted([began] + [c.ret for c in calls if c.ret is not None] + [end])
    elapsed = end - began
    return ProbeStats(
        ops=len(ok), errors=sum(1 for c in calls if c.ret is None),
        ops_per_s=round(len(ok) / elapsed, 1) if elapsed > 0 else 0.0,
        p50_ms=ms(pct(ok, 0.50)), p99_ms=ms(pct(ok, 0.99)), max_ms=ms(ok[-1]) if ok else None,
        put_p99_ms=ms(pct(by_kind["put"], 0.99)), get_p99_ms=ms(pct(by_kind["get"], 0.99)),
        longest_gap_s=round(max(b - a for a, b in itertools.pairwise(answers)), 3),
        first_error=first_error)


# ---- memory ------------------------------------------------------------------------------------


class _Sampler:
    """The member's server process (bench.soak.proc_sample) every ``every`` seconds, on the loop."""

    def __init__(self, member, every: float) -> None:
        self.member = member
        self.every = every
        self.samples: list[dict] = []
        self._task: asyncio.Task | None = None

    def sample(self) -> dict | None:
        pid = server_pid(self.member)
        got = proc_sample(pid) if pid is not None else None
        if got is not None:
            got["t"] = time.monotonic()
            self.samples.append(got)
        return got

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> list[dict]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return self.samples


def cpu_seconds(pid: int | None) -> float | None:
    """User and system CPU seconds a process has used so far (all its threads), or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _mb(sample: dict | None) -> float | None:
    return round(sample["rss_kb"] / 1024, 1) if sample else None


async def settled_rss_mb(sampler: _Sampler, settle: float) -> float | None:
    """The least RSS over ``settle`` seconds after one: what the member
    holds on to, not garbage its runtime has yet to give back."""
    await asyncio.sleep(1.0)
    sampler.start()
    await asyncio.sleep(settle)
    samples = await sampler.stop()
    return round(min(s["rss_kb"] for s in samples) / 1024, 1) if samples else None


# ---- the run -----------------------------------------------------------------------------------


async def _preload(channel, cfg: AbuseConfig) -> float:
    """``cfg.range_keys`` keys under the range prefix, 100 a txn, 4 txns at a time; seconds taken."""
    from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    kv = rpc_pb2_grpc.KVStub(channel)
    value = b"r" * cfg.range_value_size
    prefix = cfg.abuse.range_prefix
    began = time.monotonic()
    batches = [range(i, min(cfg.range_keys, i + 100)) for i in range(0, cfg.range_keys, 100)]
    lock = asyncio.Semaphore(4)

    async def txn(batch: range) -> None:
        async with lock:
            await kv.Txn(rpc_pb2.TxnRequest(success=[
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=prefix + b"%08d" % i, value=value))
                for i in batch]), timeout=60)

    await asyncio.gather(*(txn(b) for b in batches))
    r = await kv.Range(rpc_pb2.RangeRequest(key=prefix, range_end=prefix_end(prefix), count_only=True), timeout=60)
    if r.count != cfg.range_keys:
        raise RuntimeError(f"preloaded {r.count} keys, not {cfg.range_keys}")
    return time.monotonic() - began


async def _phase(name: str, cfg: AbuseConfig, channel, member) -> PhaseResult:
    loop = asyncio.get_running_loop()
    sampler = _Sampler(member, cfg.sample_every)
    before = sampler.sample()
    abuser = None
    if name != "baseline":
        abuser = AbuserProcess(name, cfg.abuse)
        if not await loop.run_in_executor(None, abuser.wait_ready, cfg.abuse.ready_timeout + 30):
            log.warning("[%s] %s: the abuser did not report ready; probing anyway", cfg.system, name)
    sampler.start()
    cpu = cpu_seconds(server_pid(member))
    try:
        calls, began, end, first_error = await _probe(channel, cfg, cfg.phase_seconds)
    finally:
        cpu_after = cpu_seconds(server_pid(member))
        samples = await sampler.stop()
        stats = await loop.run_in_executor(None, abuser.finish) if abuser is not None else None
    rss_end = samples[-1] if samples else None
    await asyncio.sleep(1.0)
    after = sampler.sample()
    probe = probe_stats(calls, began, end, first_error)
    result = PhaseResult(
        phase=name, seconds=round(end - began, 2), probe=probe, rss_before_mb=_mb(before),
        rss_peak_mb=_mb(max(samples, key=lambda s: s["rss_kb"])) if samples else None,
        rss_end_mb=_mb(rss_end), rss_after_mb=_mb(after),
        member_cpu_s=round(cpu_after - cpu, 2) if cpu is not None and cpu_after is not None else None,
        threads_peak=max((s.get("threads", 0) for s in samples), default=None),
        fds_peak=max((s.get("fds", 0) for s in samples), default=None),
        samples=len(samples), rss_series_mb=_series(samples), abuser=stats, member_running=member.running)
    log.info("[%s] %-16s probe %6.1f ops/s p99 %s ms errors %d | member CPU %s s | RSS %s -> peak %s, end %s, "
             "after %s MiB%s", cfg.system, name, probe.ops_per_s, probe.p99_ms, probe.errors, result.member_cpu_s,
             result.rss_before_mb,
             result.rss_peak_mb, result.rss_end_mb, result.rss_after_mb,
             f" | abuser: {_abuser_line(stats)}" if stats else "")
    return result


def _series(samples: list[dict], step: float = 1.0) -> list[float]:
    out, last = [], None
    for s in samples:
        if last is None or s["t"] - last >= step - 1e-3:
            out.append(_mb(s))
            last = s["t"]
    return out


def _abuser_line(stats: dict) -> str:
    keys = ("ready", "ready_s", "streams", "answered", "requests", "bytes_read", "errors", "first_error")
    return ", ".join(f"{k}={stats.get(k)}" for k in keys if stats.get(k) not in (None, 0))


async def _drive(cfg: AbuseConfig, member, endpoint: str) -> dict:
    import grpc

    out: dict = {}
    async with grpc.aio.insecure_channel(endpoint) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        preload_s = await _preload(channel, cfg)
        log.info("[%s] preloaded %d keys of %d B in %.1f s", cfg.system, cfg.range_keys, cfg.range_value_size,
                 preload_s)
        out["preload_s"] = round(preload_s, 1)
        out["rss_loaded_mb"] = _mb(proc_sample(server_pid(member)) if server_pid(member) else None)
        if cfg.warmup > 0:   # connections made, keys created, caches warm: the baseline is not a cold start
            await _probe(channel, cfg, cfg.warmup)
        phases = []
        for name in cfg.phases:
            phases.append(await _phase(name, cfg, channel, member))
            if not member.running:
                log.warning("[%s] the member is gone after %s; no further phase", cfg.system, name)
                break
        out["phases"] = [asdict(p) for p in phases]
        out["rss_after_release_mb"] = (await settled_rss_mb(_Sampler(member, cfg.sample_every), cfg.settle)
                                       if member.running else None)
    out["member_running"] = member.running
    return out


def run_abuse(cfg: AbuseConfig, keep_dir: str | None = None) -> dict:
    """Every phase of ``cfg`` on a fresh cluster of ``cfg.system``; the result (JSON-able)."""
    import shutil

    from bench.harness import _reaping, make_cluster

    tmp = tempfile.mkdtemp(prefix=f"bench-abuse-{cfg.system}-", dir=keep_dir)
    result: dict = {"benchmark": "abuse", "scenario": cfg.name, "system": cfg.system, "nodes": cfg.nodes,
                    "probe_clients": cfg.probe_clients, "phase_seconds": cfg.phase_seconds,
                    "config": {k: v for k, v in asdict(cfg).items() if k not in ("abuse", "system", "nodes")}}
    try:
        cluster = make_cluster(cfg.system, cfg.nodes, tmp)
        with _reaping(tmp, result), cluster:
            cluster.start(timeout=60)
            leader = cluster.leader_index(timeout=30)
            member = cluster.members[leader]
            c = replace(cfg, abuse=replace(cfg.abuse, endpoint=member.endpoint))
            result["abuse"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in asdict(c.abuse).items()}
            result.update(asyncio.run(_drive(c, member, member.endpoint)))
    finally:
        if keep_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    result["passed"] = passed(result)
    return result


def passed(result: dict) -> bool:
    """The probe was answered in every phase and the member lived through all of them."""
    phases = result.get("phases", [])
    return (bool(phases) and len(phases) == len(result["config"]["phases"]) and result.get("member_running", False)
            and all(p["probe"]["ops"] > 0 and p["member_running"] for p in phases))


# ---- the report ----------------------------------------------------------------------------------


def _ratio(x, y) -> str:
    return f"{x / y:.2f}" if isinstance(x, (int, float)) and isinstance(y, (int, float)) and y > 0 else ""


def _cell(x) -> str:
    return "" if x is None else f"{x:.1f}" if isinstance(x, float) else str(x)


def table(a: dict, b: dict | None = None) -> str:
    """Markdown, a row per phase: probe p99, probe answers/s, peak and end RSS,
    for raftkv (``a``) and etcd (``b``) with the ratio; errors of both."""
    cols = [("probe p99 ms", lambda p: p["probe"]["p99_ms"]), ("probe ops/s", lambda p: p["probe"]["ops_per_s"]),
            ("peak RSS MiB", lambda p: p["rss_peak_mb"]), ("RSS at end MiB", lambda p: p["rss_end_mb"])]
    names = [a["system"]] + ([b["system"]] if b else [])
    head, rule = ["phase"], ["---"]
    for col, _ in cols:
        head += [f"{col} {n}" for n in names] + (["ratio"] if b else [])
        rule += ["---:"] * (len(names) + (1 if b else 0))
    head.append("probe errors " + " / ".join(names))
    rule.append("---:")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    rows_b = {p["phase"]: p for p in (b or {}).get("phases", [])}
    for p in a.get("phases", []):
        q = rows_b.get(p["phase"])
        cells = [p["phase"]]
        for _, get in cols:
            x = get(p)
            cells.append(_cell(x))
            if b:
                y = get(q) if q else None
                cells += [_cell(y), _ratio(x, y)]
        cells.append(" / ".join(str(r["probe"]["errors"]) if r else "" for r in ([p, q] if b else [p])))
        lines.append("| " + " | ".join(cells) + " |")
    x, y = a.get("rss_after_release_mb"), (b or {}).get("rss_after_release_mb")
    release = [f"RSS after release (settled) MiB: {a['system']} {_cell(x)}"]
    if b:
        release.append(f"{b['system']} {_cell(y)} (ratio {_ratio(x, y)})")
    loaded = ", ".join(f"{r['system']} {_cell(r.get('rss_loaded_mb'))}" for r in [a] + ([b] if b else []))
    return ("\n".join(lines) + "\n\n" + ", ".join(release) + f"; after the preload, before any phase: {loaded} MiB."
            + "\n\n" + work_table(a, b))


def work_table(a: dict, b: dict | None = None) -> str:
    """Markdown, a row per phase: the CPU the member and the abuser's
    process used, the member's peak threads, and what the abuser got done."""
    runs = [a] + ([b] if b else [])
    names = [r["system"] for r in runs]

    def col(title: str) -> str:
        return " | ".join(f"{title} {n}" for n in names)

    head = (f"| phase | {col('member CPU s')} | {col('abuser CPU s')} | {col('threads peak')} "
            f"| {col('abuser requests')} |")
    lines = [head, "|---|" + "---:|" * (4 * len(runs))]
    by = [{p["phase"]: p for p in r.get("phases", [])} for r in runs]
    for p in a.get("phases", []):
        rows = [d.get(p["phase"]) for d in by]
        cells = [p["phase"]]
        for get in (lambda q: q.get("member_cpu_s"), lambda q: (q.get("abuser") or {}).get("cpu_s"),
                    lambda q: q.get("threads_peak"), lambda q: (q.get("abuser") or {}).get("requests")):
            cells += [_cell(get(q)) if q else "" for q in rows]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _save(result: dict, out: str) -> str:
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{result['scenario']}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return path


@click.command("abuse")
@click.option("--system", type=click.Choice(["raftkv", "etcd", "both"]), default="both", show_default=True,
              help="both: raftkv, then etcd, and a side-by-side table.")
@click.option("--nodes", default=1, show_default=True, help="Members; the abuse and the probe go to the leader.")
@click.option("--phases", default=",".join(PHASES), show_default=True, help="Comma-separated, run in this order.")
@click.option("--phase-seconds", default=15.0, show_default=True, help="Probe time per phase.")
@click.option("--probe-clients", default=8, show_default=True, help="Probe requests in flight.")
@click.option("--timeout", default=5.0, show_default=True, help="The probe's deadline per request, seconds.")
@click.option("--range-keys", default=50_000, show_default=True, help="Keys preloaded for big-ranges.")
@click.option("--range-value-size", default=256, show_default=True)
@click.option("--slow-watchers", default=100, show_default=True)
@click.option("--flood-streams", default=512, show_default=True, help="Half Watch, half LeaseKeepAlive.")
@click.option("--snapshot-readers", default=4, show_default=True, help="Half slow, half stalled.")
@click.option("--snapshot-read-every", default=1.0, show_default=True, help="The slow readers: a chunk this often.")
@click.option("--progress-clients", default=1, show_default=True)
@click.option("--range-clients", default=4, show_default=True)
@click.option("--settle", default=5.0, show_default=True, help="Seconds over which RSS after release is settled.")
@click.option("--out", default="results", show_default=True)
@click.option("--quiet", is_flag=True)
def abuse(system: str, nodes: int, phases: str, phase_seconds: float, probe_clients: int, timeout: float,
          range_keys: int, range_value_size: int, slow_watchers: int, flood_streams: int, snapshot_readers: int,
          snapshot_read_every: float, progress_clients: int, range_clients: int, settle: float, out: str,
          quiet: bool) -> None:
    """Probe latency and member RSS under each abuse alone, raftkv next to etcd."""
    chosen = tuple(p for p in phases.split(",") if p)
    unknown = [p for p in chosen if p not in PHASES]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: phases are {', '.join(PHASES)}", param_hint="--phases")
    if not quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = AbuseParams(endpoint="", slow_watchers=slow_watchers, flood_streams=flood_streams,
                         snapshot_readers=snapshot_readers, snapshot_read_every=snapshot_read_every,
                         progress_clients=progress_clients, range_clients=range_clients)
    got = {}
    for name in (["raftkv", "etcd"] if system == "both" else [system]):
        cfg = AbuseConfig(system=name, nodes=nodes, phases=chosen, phase_seconds=phase_seconds,
                          probe_clients=probe_clients, timeout=timeout, range_keys=range_keys,
                          range_value_size=range_value_size, settle=settle, abuse=params)
        got[name] = run_abuse(cfg)
        click.echo(f"results: {_save(got[name], out)}", err=True)
    if len(got) == 2:
        md = table(got["raftkv"], got["etcd"])
        name = got["raftkv"]["scenario"].replace("raftkv-", "compare-", 1)
        with open(os.path.join(out, f"{name}.md"), "w") as f:
            f.write(md + "\n")
    else:
        md = table(next(iter(got.values())))
    click.echo(md)
    raise SystemExit(0 if all(passed(r) for n, r in got.items() if n == "raftkv" or len(got) == 1) else 1)
