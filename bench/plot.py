"""A PNG of throughput and p99 latency over time, faults marked.

Needs matplotlib (the ``bench`` extra: ``pip install -e .[bench]``); without it
plot() returns None and the run goes on."""

from __future__ import annotations


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(results: list[dict], path: str) -> str | None:
    """One figure for one or more runs of the same scenario (e.g. raftkv and etcd)."""
    if not available():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    colors = {"raftkv": "tab:blue", "etcd": "tab:orange"}
    for r in results:
        t = [b["t"] for b in r["timeline"]]
        color = colors.get(r["system"])
        ax1.plot(t, [b["ops_per_s"] for b in r["timeline"]], label=r["system"], color=color)
        ax2.plot(t, [b["p99_ms"] if b["p99_ms"] is not None else float("nan") for b in r["timeline"]],
                 label=r["system"], color=color)
        for f in r.get("faults", []):
            if "at" not in f:
                continue
            for ax in (ax1, ax2):
                ax.axvline(f["at"], color=color, linestyle="--", alpha=0.7)
                if f.get("recovered_at") is not None:
                    ax.axvline(f["recovered_at"], color=color, linestyle=":", alpha=0.7)
    first = results[0]
    ax1.set_title(f"{first['workload']}, {first['nodes']} members, {first['clients']} clients, "
                  f"fault {first['fault']} (dashed: fault, dotted: member back)")
    ax1.set_ylabel("ok ops/s")
    ax2.set_ylabel("p99 latency (ms)")
    ax2.set_yscale("log")
    ax2.set_xlabel("seconds")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
