"""The report's figures (matplotlib, PNG): per-class accuracy against training
count, CDB weights and tau over epochs, the metric against fixed tau."""

from __future__ import annotations

import io
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from cdbloss.lab.experiments.report.labels import (
    _PAPER_NAMES,
    _fixed_tau,
    _paper_rule,
    _row_order,
    method_label,
    row_labels,
)
from cdbloss.lab.experiments.report.runs import RunRecord, _column_key, _fmt_col, _metric, _value
from cdbloss.lab.io import atomic_write_bytes


def _figures(runs: list[RunRecord], fig_dir: Path, tag: str) -> list[Path]:
    """Fig. 1 style per-class accuracy vs training count; CDB weights and tau; error vs tau.

    Written to ``fig_dir/{tag}_{name}.png``; returns the paths in drawing order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        path = fig_dir / f"{tag}_{name}.png"
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)

    col_key = _column_key(runs)
    # the figures of one column read the most imbalanced one
    target = max(_hardness(r, col_key) for r in runs)
    chosen = [r for r in runs if _hardness(r, col_key) == target]
    save(_per_class_figure(runs, chosen, col_key, target), "per_class_vs_count")
    plain, smoothed = _cdb_weight_runs(chosen)
    for group, name in ((plain, "cdb_weights_tau"), (smoothed, "cdb_weights_tau_momentum")):
        if group:
            save(_weights_figure(group[0], col_key, target), name)
    fig = _tau_figure(runs, col_key)
    if fig is not None:
        save(fig, "metric_vs_tau")
    return written


def _hardness(r: RunRecord, col_key: str | None) -> float:
    """The run's column value where it is a number (higher: more imbalanced), else 0."""
    v = r.data_options.get(col_key) if col_key else None
    if not isinstance(v, (int, float)):
        return 0.0
    return float(v)


def _mean_class_accuracy(group: list[RunRecord], c: int) -> float:
    """Mean test accuracy of class ``c`` over the runs that measured it (NaN if none did)."""
    values = [float(g.result["test"]["per_class_accuracy"][c]) for g in group]
    seen = [v for v in values if not math.isnan(v)]
    return statistics.fmean(seen) if seen else math.nan


def _per_class_figure(
    runs: list[RunRecord], chosen: list[RunRecord], col_key: str | None, target: float
) -> Any:
    """Per-class test accuracy against training count (paper Fig. 1), one line per row."""
    import matplotlib.pyplot as plt

    by_label: dict[str, list[RunRecord]] = defaultdict(list)
    labels = row_labels(runs, col_key)
    for r in chosen:
        by_label[labels[r.path]].append(r)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, group in sorted(by_label.items(), key=lambda kv: _row_order(kv[0])):
        counts = group[0].result["class_counts"]
        per_class = [_mean_class_accuracy(group, c) for c in range(len(counts))]
        order = sorted(range(len(counts)), key=lambda c: -counts[c])
        ax.plot(
            [counts[c] for c in order],
            [100 * per_class[c] for c in order],
            marker="o",
            ms=3,
            label=label,
        )
    ax.set_xscale("log")
    ax.set_xlabel("training images of the class")
    ax.set_ylabel("test accuracy of the class (%)")
    protocol = runs[0].protocol
    title = f"{protocol}" + (f", {col_key} = {_fmt_col(target)}" if col_key else "")
    ax.set_title(f"Per-class accuracy vs training count ({title})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def _cdb_weight_runs(chosen: list[RunRecord]) -> tuple[list[RunRecord], list[RunRecord]]:
    """The CDB runs that logged weights: under the paper's rule, and with momentum.

    Each list comes the paper's dynamic tau first, then the others in path
    order; the figures draw the first run of each.
    """

    def momentum(r: RunRecord) -> float:
        return float(r.config["loss"].get("options", {}).get("momentum") or 0.0)

    cdb = sorted(
        (
            r
            for r in chosen
            if r.config["loss"]["name"].startswith("cdb")
            and r.result.get("history")
            and "weights" in r.result["history"][0]
        ),
        key=lambda r: (
            r.config["loss"].get("options", {}).get("tau", "dynamic") != "dynamic",
            momentum(r) > 0,
        ),
    )
    plain = [r for r in cdb if _paper_rule(r.config["loss"].get("options", {}))]
    return plain, [r for r in cdb if momentum(r) > 0]


def _tau_figure(runs: list[RunRecord], col_key: str | None) -> Any:
    """The metric against fixed tau, one line per column (Table 2 / 4 as a plot); dotted:
    dynamic tau. None unless some column has two fixed tau values."""
    import matplotlib.pyplot as plt

    metric_name, how = _metric(runs[0].protocol)
    points: dict[Any, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    dynamic: dict[Any, list[float]] = defaultdict(list)
    for r in runs:
        if r.config["loss"]["name"] not in _PAPER_NAMES:
            continue
        opts = r.config["loss"].get("options", {})
        col = r.data_options.get(col_key) if col_key else "all"
        fixed_tau = _fixed_tau(r.config)
        if fixed_tau is not None:
            points[col][fixed_tau].append(_value(r.result, how))
        elif opts.get("tau", "dynamic") == "dynamic" and _paper_rule(opts):
            dynamic[col].append(_value(r.result, how))
    if not any(len(p) >= 2 for p in points.values()):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for col, pts in sorted(points.items(), key=lambda kv: str(kv[0])):
        taus = sorted(pts)
        line = ax.plot(
            taus,
            [statistics.fmean(pts[t]) for t in taus],
            marker="o",
            label=f"{col_key}={_fmt_col(col)}",
        )
        if dynamic.get(col):
            ax.axhline(statistics.fmean(dynamic[col]), color=line[0].get_color(), ls=":", lw=1)
    ax.set_xlabel("fixed tau (dotted: dynamic tau)")
    ax.set_ylabel(metric_name)
    ax.set_title(f"CDB-CE: {metric_name} against tau ({runs[0].protocol})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def _weights_figure(run: RunRecord, col_key: str | None, column: Any) -> Any:
    """The CDB class weights (and tau, dashed) of one run over its epochs."""
    import matplotlib.pyplot as plt

    hist = run.result["history"]
    epochs = [h["epoch"] for h in hist]
    weights = [h["weights"] for h in hist]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    names = run.result.get("class_names") or [str(c) for c in range(len(weights[0]))]
    for c in range(len(weights[0])):
        ax.plot(epochs, [w[c] for w in weights], lw=1, label=str(names[c]))
    ax.set_xlabel("epoch")
    ax.set_ylabel("CDB class weight")
    if "tau" in hist[0]:
        ax2 = ax.twinx()
        ax2.plot(epochs, [h["tau"] for h in hist], "k--", lw=1.5, label="tau")
        ax2.set_ylabel("tau (dashed)")
    ax.set_title(
        f"CDB weights over training: {method_label(run.config)}, seed {run.config['seed']}"
        + (f", {col_key} = {_fmt_col(column)}" if col_key else ""),
        fontsize=10,
    )
    if len(weights[0]) <= 20:
        ax.legend(fontsize=6, ncol=2)
    return fig
