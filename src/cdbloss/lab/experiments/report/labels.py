"""Row labels: :func:`method_label` from a run's config (loss, tau, rule changes,
sampler, second stage), :func:`row_labels` for runs that share one, and the
paper's row order."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from cdbloss.lab.engine.config import VOLATILE_KEYS, flatten_keys
from cdbloss.lab.experiments.report.runs import RunRecord

_LABELS = {
    "ce": "CE",
    "ifw": "IFW",
    "ifw-sqrt": "IFW (sqrt)",
    "focal": "Focal",
    "cb-ce": "CB",
    "cb-focal": "CB-Focal",
    "ldam": "LDAM",
    "ldam-drw": "LDAM-DRW",
    "balanced-softmax": "Balanced Softmax",
    "logit-adjusted": "Logit adjustment",
    "eql": "EQL",
    "cdb-ce": "CDB-CE",
    "cdb-focal": "CDB-Focal",
    "cdb-ce-paper": "CDB-CE",  # the paper's rule: what "cdb-ce" named before 2026-12-02
    "cdb-ce-authors": "CDB-CE authors' code",
    "cdb-bs": "CDB-BS",
    "cdb-bs-offset": "CDB-BS offset",
    "cdb-ce-offset": "CDB-CE offset",
    "dbm": "DBM",
    "dbm-bs": "DBM-BS",
}


#: names of CDB-CE under the paper's rule: ``cdb-ce`` in runs before 2026-12-02
_PAPER_NAMES = ("cdb-ce", "cdb-ce-paper")


#: registered CDB forms whose name already fixes tau and the reduction
_CDB_PRESETS = ("cdb-ce-authors",)


_ORDER = ["CE", "IFW", "IFW (sqrt)", "Focal", "CB", "CB-Focal", "EQL", "L2RW", "MWN", "LDAM", "LDAM-DRW",
          "Balanced Softmax", "Logit adjustment", "DBM", "DBM-BS", "CDB-CE authors' code", "CDB-CE",
          "CDB-Focal", "CDB-BS", "CDB-CE offset", "CDB-BS offset"]  # fmt: skip


def _row_order(label: str) -> tuple[int, list[Any]]:
    """The paper's row order: baselines first, CDB last; unknown labels after;
    then by name with numbers compared as numbers (epochs=80 before epochs=160)."""
    base = label.split(" (")[0].split(" [")[0]
    parts = [
        float(p) if p.replace(".", "", 1).isdigit() else p
        for p in re.split(r"(\d+(?:\.\d+)?)", label)
    ]
    natural = [(0, p, "") if isinstance(p, float) else (1, 0.0, p) for p in parts]
    return (_ORDER.index(base) if base in _ORDER else len(_ORDER), natural)


def method_label(config: dict[str, Any]) -> str:
    """A row label: the loss (and tau for CDB, the reduction if not the default, the meta method)."""
    loss, opts = config["loss"]["name"], config["loss"].get("options", {})
    method = config.get("train", {}).get("method", "standard")
    if method == "l2rw":
        return "L2RW" if loss == "ce" else f"L2RW ({_LABELS.get(loss, loss)})"
    if method == "mwn":
        return "MWN" if loss == "ce" else f"MWN ({_LABELS.get(loss, loss)})"
    label = str(_LABELS.get(loss, loss))
    if loss in _CDB_PRESETS:
        parts = _rule_changes(opts)
        if "tau" in opts:
            parts.insert(0, _tau_label(opts["tau"]))
        label += f" ({', '.join(parts)})" if parts else ""
    elif loss.startswith("cdb"):
        what = _tau_label(opts.get("tau", "dynamic"))
        label += f" ({', '.join([what, *_rule_changes(opts)])})"
    elif loss.startswith("dbm"):  # the margins' settings, where not the defaults
        parts = [f"{k.replace('_', ' ')} {float(opts[k]):g}" for k in _DBM_OPTIONS if k in opts]
        label += f" ({', '.join(parts)})" if parts else ""
    reduction = opts.get("reduction")
    if reduction and reduction != "mean":
        label += f" [{reduction}]"
    if config.get("train", {}).get("sampler", "uniform") == "cdb":
        label += " + CDB-S"
    stage2 = config.get("stage2", {}).get("method", "none")
    if stage2 != "none":  # a second stage started from this loss's run
        label += f" + {_STAGE2_LABELS.get(stage2, stage2)}"
    return label


#: DBM options a row label names (``max margin 0.1``)
_DBM_OPTIONS = ("max_margin", "power", "scale", "instance_scale")


#: Row-label suffixes of the second stages (:mod:`cdbloss.lab.engine.stage2`).
_STAGE2_LABELS = {
    "crt": "cRT",
    "lws": "LWS",
    "wb": "weight balancing",
    "tau-norm": "tau-norm",
    "logit-adjust": "post-hoc logit adjustment",
}


def _tau_label(tau: Any) -> str:
    if tau == "dynamic":
        return "dyn. tau"
    return str(tau) if isinstance(tau, str) else f"tau={tau:g}"


def row_labels(runs: list[RunRecord], col_key: str | None) -> dict[Path, str]:
    """A row label per run: :func:`method_label`, plus the settings that tell apart
    runs which share a label (e.g. ``CE (epochs=160, milestones=[120])``).

    Seeds and the column's data option never split rows; all else does, so
    runs with different settings are never averaged together.
    """
    ignore = {"seed", "name", "sweep", *VOLATILE_KEYS}
    if col_key:
        ignore.add(f"data.options.{col_key}")
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for r in runs:
        groups[method_label(r.config)].append(r)
    labels: dict[Path, str] = {}
    for label, group in groups.items():
        flats = {
            r.path: {k: json.dumps(v, sort_keys=True) for k, v in flatten_keys(r.config).items()}
            for r in group
        }
        keys = sorted({k for f in flats.values() for k in f} - ignore)
        varying = [k for k in keys if len({f.get(k) for f in flats.values()}) > 1]
        for r in group:
            if varying:
                extra = ", ".join(
                    f"{k.split('.')[-1]}={flats[r.path].get(k, '-')}" for k in varying
                )
                labels[r.path] = f"{label} ({extra})"
            else:
                labels[r.path] = label
    return labels


#: The row that picks, per column, the fixed tau with the best validation score.
BEST_TAU_ROW = "CDB-CE (best fixed tau on val)"


def _fixed_tau(config: dict[str, Any]) -> float | None:
    """The fixed tau of a plain CDB-CE run (None for dynamic tau, a variant, another method)."""
    method = config.get("train", {}).get("method", "standard")
    if config["loss"]["name"] not in _PAPER_NAMES or method != "standard":
        return None
    opts = config["loss"].get("options", {})
    tau = opts.get("tau", "dynamic")
    if not _paper_rule(opts) or isinstance(tau, bool) or not isinstance(tau, (int, float)):
        return None
    return float(tau)


def _rule_changes(loss_options: dict[str, Any]) -> list[str]:
    """How CDB loss options change the paper's weight rule, as label parts (none: the paper's).

    The moving average of the accuracies (``momentum``), the floor on the
    difficulty (``min_difficulty``), the solved threshold (``solved_accuracy``),
    the cap (``max_ratio``), the deferral (``defer_until``), the prior
    (``prior_strength``), the training-stream source and another base loss
    are this library's, not the paper's.
    """
    parts = []
    if loss_options.get("eps", 1e-4) != 1e-4:
        parts.append(f"eps {float(loss_options['eps']):g}")
    if loss_options.get("momentum"):
        parts.append(f"momentum {float(loss_options['momentum']):g}")
    if loss_options.get("min_difficulty"):
        parts.append(f"min. difficulty {float(loss_options['min_difficulty']):g}")
    if loss_options.get("solved_accuracy", 1.0) != 1.0:
        parts.append(f"solved at {float(loss_options['solved_accuracy']):g}")
    if loss_options.get("max_ratio") is not None:
        parts.append(f"cap {float(loss_options['max_ratio']):g}")
    if loss_options.get("defer_until"):
        parts.append(f"from epoch {int(loss_options['defer_until'])}")
    if loss_options.get("prior_strength"):
        parts.append(f"prior {float(loss_options['prior_strength']):g}")
    if loss_options.get("source", "val") != "val":
        parts.append(f"{loss_options['source']} accuracy")
    if loss_options.get("base", "ce") not in ("ce", "focal"):
        parts.append(f"over {loss_options['base']}")
    if loss_options.get("apply_as", "weight") != "weight":
        parts.append(f"as {loss_options['apply_as']}")
    if loss_options.get("offset_scale", 1.0) != 1.0:
        parts.append(f"offset x{float(loss_options['offset_scale']):g}")
    return parts


def _paper_rule(loss_options: dict[str, Any]) -> bool:
    """Whether CDB loss options keep the paper's weight rule (no momentum, floor or threshold)."""
    return not _rule_changes(loss_options)
