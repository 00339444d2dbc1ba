"""The multi-label study: a model trained with each multi-label loss on one task.

Tasks (:data:`TASKS`): ``yeast`` (an MLP on the yeast features, the default)
and ``mnist-mosaic`` (LeNet-5 on long-tailed 2x2 MNIST mosaics,
:mod:`cdbloss.lab.data.mosaic`). A study's settings come from a config file
(``--config configs/multilabel/<task>.yaml``: the fields of
:class:`StudyConfig` plus ``out``, ``seeds`` and ``variants``); the flags
override it.

One run = one loss variant x one seed. Every run trains ``epochs`` epochs,
evaluates the validation split after each, keeps the epoch of the best
validation mAP (CDB reads its per-label difficulty from the same validation
pass) and reports the test metrics of that epoch. Each run's result is one
JSON file, written atomically; a file already there is skipped, so a study
resumes where it stopped. The data split is fixed (seed 0); the run seed sets
the initialisation and the batch order.

    python -m cdbloss.lab.experiments.multilabel_study run --out results/multilabel_yeast
    python -m cdbloss.lab.experiments.multilabel_study table --out results/multilabel_yeast
    python -m cdbloss.lab.experiments.multilabel_study run --config configs/multilabel/mnist_mosaic.yaml

The CDB variant reported as ``cdb-bce`` (and ``cdb-focal-bce``) is the one
(difficulty measure, and tau: the library's default sigmoid tau or 2) with the
best mean *validation* mAP over the seeds.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cdbloss.lab.data.mosaic import mnist_mosaic
from cdbloss.lab.data.yeast import MultiLabelSplits, fetch_yeast, parse_yeast_csv, yeast_splits
from cdbloss.lab.engine.config import load_yaml
from cdbloss.lab.engine.trainer import seed_everything
from cdbloss.lab.io import atomic_write_json, atomic_write_text
from cdbloss.lab.metrics_multilabel import multilabel_report
from cdbloss.lab.models.lenet import LeNet5
from cdbloss.lab.models.mlp import MLP
from cdbloss.losses import build_loss, is_multilabel, wants_difficulty
from cdbloss.multilabel import MultiLabelDifficulty

__all__ = [
    "MODELS",
    "TASKS",
    "VARIANTS",
    "StudyConfig",
    "load_study_config",
    "load_task",
    "load_yeast",
    "main",
    "run_one",
    "run_study",
    "summarize",
]

#: run name -> (loss name, options); the CDB measure is a validation choice
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "bce": ("bce", {}),
    "focal-bce": ("focal-bce", {}),
    "cb-bce": ("cb-bce", {}),
    "db-loss": ("db-loss", {}),
    "asl": ("asl", {}),
    "cdb-bce[balanced-accuracy]": ("cdb-bce", {"measure": "balanced-accuracy"}),
    "cdb-bce[f1]": ("cdb-bce", {"measure": "f1"}),
    "cdb-bce[balanced-accuracy-tau2]": ("cdb-bce", {"measure": "balanced-accuracy", "tau": 2.0}),
    "cdb-bce[f1-tau2]": ("cdb-bce", {"measure": "f1", "tau": 2.0}),
    "cdb-focal-bce[balanced-accuracy]": ("cdb-focal-bce", {"measure": "balanced-accuracy"}),
    "cdb-focal-bce[f1]": ("cdb-focal-bce", {"measure": "f1"}),
}


#: the models a study trains: ``mlp`` (one hidden layer of ``hidden`` units) or ``lenet5``
MODELS: tuple[str, ...] = ("mlp", "lenet5")


@dataclass(frozen=True)
class StudyConfig:
    """The protocol: task and its options, model, optimiser and epochs, frequency groups.

    ``head`` and ``tail``: a label with more than ``head`` training positives
    is in the head group, one with fewer than ``tail`` in the tail group.
    ``options``: loss name -> extra constructor options.
    """

    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 256
    head: int = 500
    tail: int = 150
    options: dict[str, Any] = field(default_factory=dict)
    task: str = "yeast"
    task_options: dict[str, Any] = field(default_factory=dict)
    model: str = "mlp"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {sorted(TASKS)}, got {self.task!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")


def _model(cfg: StudyConfig, x: torch.Tensor, c: int) -> nn.Module:
    if cfg.model == "lenet5":
        return LeNet5(c, in_channels=int(x.shape[1]), input_size=int(x.shape[-1]))
    return MLP(c, int(x[0].numel()), hidden=cfg.hidden, depth=1)


def _loss(name: str, options: dict[str, Any], y_train: np.ndarray) -> nn.Module:
    counts = y_train.sum(0).tolist()
    extra = {"num_samples": int(y_train.shape[0])} if name == "db-loss" else {}
    needs = name in ("cb-bce", "db-loss")
    return build_loss(
        name, y_train.shape[1], class_counts=counts if needs else None, **extra, **options
    )


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out: torch.Tensor = model(x)
    model.train()
    return out


def run_one(data: MultiLabelSplits, variant: str, seed: int, cfg: StudyConfig) -> dict[str, Any]:
    """Train one run; return its record (config, chosen epoch, val and test metrics)."""
    name, options = VARIANTS[variant]
    if not is_multilabel(name):
        raise ValueError(f"{name!r} is not a multi-label loss")
    seed_everything(seed)
    start = time.perf_counter()
    x_tr, y_tr = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_va, x_te = torch.from_numpy(data.x_val), torch.from_numpy(data.x_test)
    c = data.y_train.shape[1]
    model = _model(cfg, x_tr, c)
    loss_fn = _loss(name, {**options, **cfg.options.get(name, {})}, data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    counts = data.y_train.sum(0)
    best: dict[str, Any] = {"val_mAP": -1.0}
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(x_tr), generator=gen)
        for idx in torch.split(order, cfg.batch_size):
            opt.zero_grad()
            loss_fn(model(x_tr[idx]), y_tr[idx]).backward()
            opt.step()
        val_logits = _logits(model, x_va)
        val = multilabel_report(val_logits.numpy(), data.y_val, counts, 0.5, cfg.head, cfg.tail)
        if float(val["mAP"]) > best["val_mAP"]:  # type: ignore[arg-type]
            test = multilabel_report(
                _logits(model, x_te).numpy(), data.y_test, counts, 0.5, cfg.head, cfg.tail
            )
            best = {"val_mAP": val["mAP"], "epoch": epoch, "val": val, "test": test}
        if wants_difficulty(loss_fn):
            tracker = MultiLabelDifficulty(c)
            tracker.update(val_logits, torch.from_numpy(data.y_val))
            weights = loss_fn.update_weights(tracker)  # type: ignore[operator]
            best.setdefault("weights", [])
            best["weights"] = [round(float(w), 4) for w in weights]
    return {
        "variant": variant,
        "loss": name,
        "options": options,
        "seed": seed,
        "config": {k: v for k, v in cfg.__dict__.items()},
        "best_epoch": best["epoch"],
        "val": best["val"],
        "test": best["test"],
        "last_weights": best.get("weights"),
        "seconds": round(time.perf_counter() - start, 2),
    }


def _run_file(out: Path, variant: str, seed: int) -> Path:
    return out / f"{variant.replace('[', '__').replace(']', '')}__seed{seed}.json"


def run_study(
    out: Path,
    seeds: Sequence[int],
    variants: Sequence[str],
    cfg: StudyConfig,
    data: MultiLabelSplits,
) -> None:
    """Run every (variant, seed) whose result file is missing; each file is written atomically."""
    for variant in variants:
        for seed in seeds:
            path = _run_file(out, variant, seed)
            if path.is_file():
                continue
            record = run_one(data, variant, seed, cfg)
            atomic_write_json(path, record)
            print(f"{variant} seed {seed}: test mAP {record['test']['mAP']:.4f}", flush=True)


def _load(out: Path) -> dict[str, dict[int, dict[str, Any]]]:
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted(out.glob("*__seed*.json")):
        rec = json.loads(path.read_text())
        runs.setdefault(rec["variant"], {})[int(rec["seed"])] = rec
    return runs


def _chosen(runs: dict[str, dict[int, dict[str, Any]]]) -> dict[str, str]:
    """Reported name -> variant: for CDB, the measure with the best mean validation mAP."""
    chosen: dict[str, str] = {}
    for variant, by_seed in runs.items():
        name = variant.split("[")[0]
        val = float(np.mean([r["val"]["mAP"] for r in by_seed.values()]))
        prev = chosen.get(name)
        if prev is None or val > np.mean([r["val"]["mAP"] for r in runs[prev].values()]):
            chosen[name] = variant
    return chosen


METRICS = ("mAP", "macro_f1", "micro_f1", "mAP_head", "mAP_medium", "mAP_tail")


def _paired(a: dict[int, dict[str, Any]], b: dict[int, dict[str, Any]]) -> str:
    seeds = sorted(set(a) & set(b))
    d = [a[s]["test"]["mAP"] - b[s]["test"]["mAP"] for s in seeds]
    wins = sum(x > 0 for x in d)
    return f"{100 * np.mean(d):+.2f} ({wins}/{len(d)})"


def summarize(out: Path) -> str:
    """The markdown table: test metrics mean ± std over seeds, and paired mAP differences."""
    runs = _load(out)
    chosen = _chosen(runs)
    head = "| loss | variant (val) | seeds | " + " | ".join(f"test {m}" for m in METRICS)
    head += " | mAP vs BCE (wins) | mAP vs DB (wins) |"
    lines = [head, "|" + "---|" * (len(METRICS) + 5)]
    for name in sorted(
        chosen, key=lambda n: -np.mean([r["test"]["mAP"] for r in runs[chosen[n]].values()])
    ):
        by_seed = runs[chosen[name]]
        cells = []
        for m in METRICS:
            vals = [r["test"][m] for r in by_seed.values() if r["test"].get(m) is not None]
            cells.append(f"{100 * np.mean(vals):.2f} ± {100 * np.std(vals):.2f}" if vals else "n/a")
        vs = [
            _paired(by_seed, runs[chosen[ref]]) if ref in chosen and ref != name else "-"
            for ref in ("bce", "db-loss")
        ]
        variant = chosen[name][len(name) :].strip("[]") or "-"
        lines.append(f"| {name} | {variant} | {len(by_seed)} | " + " | ".join(cells + vs) + " |")
    return "\n".join(lines) + "\n"


def variants_table(out: Path) -> str:
    """Every variant's mean validation and test mAP (the CDB choices are read off the first)."""
    lines = ["| variant | seeds | val mAP | test mAP |", "|---|---|---|---|"]
    for variant, by_seed in sorted(_load(out).items()):
        val = 100 * np.mean([r["val"]["mAP"] for r in by_seed.values()])
        test = 100 * np.mean([r["test"]["mAP"] for r in by_seed.values()])
        lines.append(f"| {variant} | {len(by_seed)} | {val:.2f} | {test:.2f} |")
    return "\n".join(lines) + "\n"


def load_yeast(seed: int = 0) -> MultiLabelSplits:
    """The yeast protocol's fixed split (fetched and checked on first use)."""
    x, y = parse_yeast_csv(fetch_yeast().read_bytes())
    return yeast_splits(x, y, seed=seed)


#: task name -> the function that loads its fixed split from the task options
TASKS: dict[str, Callable[..., MultiLabelSplits]] = {
    "yeast": load_yeast,
    "mnist-mosaic": mnist_mosaic,
}


def load_task(cfg: StudyConfig) -> MultiLabelSplits:
    """The splits of ``cfg.task`` with ``cfg.task_options``."""
    return TASKS[cfg.task](**cfg.task_options)


#: keys a study config file may hold besides the :class:`StudyConfig` fields
RUN_KEYS: tuple[str, ...] = ("out", "seeds", "variants")


def load_study_config(path: Path) -> tuple[StudyConfig, dict[str, Any]]:
    """Read a study config file: the :class:`StudyConfig` and the run keys it gives.

    Raises:
        ValueError: an unknown key (naming the known ones), a bad task, model or variant.
    """
    raw = load_yaml(Path(path).read_text(), str(path))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a study config is a mapping, got {type(raw).__name__}")
    fields = set(StudyConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - fields - set(RUN_KEYS))
    if unknown:
        known = sorted(fields | set(RUN_KEYS))
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: {known}")
    bad = [v for v in raw.get("variants", []) if v not in VARIANTS]
    if bad:
        raise ValueError(f"{path}: unknown variant(s) {bad}; known: {list(VARIANTS)}")
    cfg = StudyConfig(**{k: v for k, v in raw.items() if k in fields})
    return cfg, {k: raw[k] for k in RUN_KEYS if k in raw}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``run`` (train the missing runs) or ``table`` (print or write the markdown table)."""
    p = argparse.ArgumentParser(prog="python -m cdbloss.lab.experiments.multilabel_study")
    p.add_argument("command", choices=("run", "table"))
    p.add_argument("--config", type=Path, default=None, help="a study config file (YAML)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--table-file", type=Path, default=None)
    args = p.parse_args(argv)
    cfg, given = load_study_config(args.config) if args.config else (StudyConfig(), {})
    if args.epochs is not None:
        cfg = replace(cfg, epochs=args.epochs)
    out = Path(args.out or given.get("out", "results/multilabel_yeast"))
    if args.command == "run":
        torch.set_num_threads(1)
        seeds = args.seeds or given.get("seeds", [0, 1, 2, 3, 4])
        variants = args.variants or given.get("variants", list(VARIANTS))
        run_study(out, seeds, variants, cfg, load_task(cfg))
    table = summarize(out) + "\n" + variants_table(out)
    if args.table_file is not None:
        atomic_write_text(args.table_file, table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
