"""Throughput and lag over time during a drain, as a PNG (matplotlib)."""

from pathlib import Path

# Throughput is the stored count's slope over this window: short enough to
# show the batches' rhythm, long enough not to be all spikes at 4 samples/s.
RATE_WINDOW_S = 1.0


def rates(samples) -> list[float]:
    """Records stored per second at each sample, over RATE_WINDOW_S."""
    out = []
    start = 0
    for i, s in enumerate(samples):
        while samples[start].t < s.t - RATE_WINDOW_S:
            start += 1
        first = samples[start]
        span = s.t - first.t
        out.append((s.stored - first.stored) / span if span > 0 else 0.0)
    return out


def plot_drain(samples, total: int, title: str, path: Path,
               markers: dict[str, float] | None = None,
               memory: bool = False) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on the machines this runs on
    import matplotlib.pyplot as plt

    panels = 3 if memory else 2
    fig, axes = plt.subplots(panels, 1, sharex=True,
                             figsize=(9, 2.6 * panels + 0.6))
    t = [s.t for s in samples]

    ax = axes[0]
    ax.plot(t, rates(samples), color="tab:blue")
    ax.set_ylabel("records stored / s")
    ax.set_title(title)
    ax.grid(alpha=0.3)

    ax = axes[1]
    ax.plot(t, [total - s.stored for s in samples], color="tab:red",
            label="records not yet stored")
    ax.set_ylabel("backlog (records)")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    behind = [(s.behind_ms or 0) / 1000 for s in samples]
    twin.plot(t, behind, color="tab:gray", linestyle="--",
              label="max MillisBehindLatest (s)")
    twin.set_ylabel("behind latest (s)")
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper right",
              fontsize=8)

    if memory:
        ax = axes[2]
        ax.plot(t, [s.rss_mib for s in samples], color="tab:green")
        ax.set_ylabel("worker RSS (MiB)")
        ax.grid(alpha=0.3)

    for label, at in (markers or {}).items():
        for ax in axes:
            ax.axvline(at, color="black", linestyle=":", linewidth=1)
        axes[0].annotate(label, (at, 0), xytext=(3, 3),
                         textcoords="offset points", fontsize=8)
    axes[-1].set_xlabel("seconds since the worker was started")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
