"""bench.png, drawn with matplotlib when it is installed (the `bench` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pewproc.ops.bench.report import MB, PARTS


def write_chart(report: dict[str, Any], path: Path) -> str:
    """bench.png: throughput by mode, CPU per stage against the floor, peak memory."""
    try:
        import matplotlib
    except ImportError:
        return ("note: matplotlib is not installed, so no bench.png "
                "(pip install 'pewproc[bench]')")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = report["files"]
    panels = 3 if "throughput" in report else 2
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 5), constrained_layout=True)
    axes = list(axes)
    if "throughput" in report:
        ax = axes.pop(0)
        modes = report["throughput"]["modes"]
        names = list(modes)
        values = [modes[n]["median"]["matches_per_s"] for n in names]
        low = [v - modes[n]["matches_per_s_min"] for n, v in zip(names, values, strict=True)]
        high = [modes[n]["matches_per_s_max"] - v for n, v in zip(names, values, strict=True)]
        bars = ax.bar(names, values, yerr=[low, high], capsize=4, color="#4c72b0")
        for bar, value, up in zip(bars, values, high, strict=True):
            ax.annotate(f"{value:.2f}\n({value / values[0]:.2f}x)",
                        (bar.get_x() + bar.get_width() / 2, value + up), ha="center",
                        va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points")
        ax.margins(y=0.15)
        ax.set_ylabel("matches per second (median; bars: min-max)")
        ax.set_title("End-to-end throughput")
    ax = axes.pop(0)
    groups = _chart_groups(files)
    colours = ("#8172b3", "#c44e52", "#dd8452", "#55a868", "#4c72b0", "#64b5cd", "#999999")
    for i, (_label, fs) in enumerate(groups):
        per10k = 10_000 / sum(f["events"] for f in fs)
        bottom = 0.0
        for stage, colour in zip((*PARTS, "other"), colours, strict=True):
            value = 1000 * per10k * sum(f["child"]["cpu_s"][stage] for f in fs)
            ax.bar(i - 0.2, value, 0.38, bottom=bottom, color=colour,
                   label=stage if i == 0 else None)
            bottom += value
        floor_bottom = 0.0
        for key, hatch in (("decompress_cpu_s", "//"), ("parse_gc_off_cpu_s", "..")):
            value = 1000 * per10k * sum(f["floor"][key] for f in fs)
            ax.bar(i + 0.2, value, 0.38, bottom=floor_bottom, color="white", edgecolor="black",
                   hatch=hatch, label=f"floor: {key.split('_')[0]}" if i == 0 else None)
            floor_bottom += value
        ax.plot([i - 0.4, i + 0.4], [floor_bottom] * 2, "k--", linewidth=1,
                label="floor, GC paused (target: 1.0x)" if i == 0 else None)
        gc_on = 1000 * per10k * sum(f["floor"]["cpu_s"] for f in fs)
        ax.plot([i - 0.4, i + 0.4], [gc_on] * 2, "k:", linewidth=1,
                label="floor, GC on" if i == 0 else None)
        ax.annotate(f"{bottom / floor_bottom:.2f}x", (i - 0.2, bottom), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    ax.set_ylabel("CPU ms per 10,000 events (left: child, right: floor)")
    ax.set_title("CPU per stage in a child vs the floor")
    ax.legend(fontsize=7)
    ax = axes.pop(0)
    for i, (_label, fs) in enumerate(groups):
        child = max(f["child"]["rss_peak_bytes"] for f in fs) / MB
        parse = max(f["rss_parse_only_peak_bytes"] for f in fs) / MB
        ax.bar(i - 0.2, child, 0.38, color="#4c72b0", label="child" if i == 0 else None)
        ax.bar(i + 0.2, parse, 0.38, color="#bbbbbb", label="parse only" if i == 0 else None)
        baseline = max(f["child"]["rss_baseline_bytes"] for f in fs) / MB
        ax.plot([i - 0.4, i + 0.4], [baseline] * 2, "k:", linewidth=1,
                label="after imports, before any match" if i == 0 else None)
        ax.annotate(f"{child / parse:.2f}x", (i - 0.2, child), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    ax.set_ylabel("peak RSS, MiB (worst file of the group)")
    ax.set_title("Peak memory: child vs parse-only child")
    ax.legend(fontsize=7)
    fig.suptitle(f"pewproc bench, {report['machine']['cpus_usable']} CPUs, "
                 f"{report['started_at'][:16]}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"


def _chart_groups(files: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    generated = [f for f in files if f["kind"] == "generated"]
    groups = [(f"generated\n({len(generated)} files)", generated)] if generated else []
    return groups + [(f["label"][:20], [f]) for f in files if f["kind"] != "generated"]

