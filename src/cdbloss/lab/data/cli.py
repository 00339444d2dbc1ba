"""``cdbloss data``: fetch sources, list protocols, and show a protocol's splits.

Commands::

    cdbloss data list
    cdbloss data fetch NAME [--root DIR] [--source PATH] [--offline]
    cdbloss data info NAME [--json] [--OPTION VALUE ...]

``NAME`` for ``fetch`` is a source (``mnist``, ``fashion-mnist``, ``cifar10``,
``cifar100``) or a protocol that uses one; its sources are tried in order
(local copies, the official URLs, then the fallbacks; see
:mod:`cdbloss.lab.data.mnist` and :mod:`cdbloss.lab.data.cifar`), and ``--offline``
(or ``CDBLOSS_OFFLINE=1``) keeps to the local ones. ``info`` accepts any option of the
protocol's factory, spelled with dashes (``--imbalance-factor 100``,
``--val-per-class 25``, ``--no-augment``); values are converted after the
factory's type annotations, and an unknown option lists the valid ones.

Example:
    $ cdbloss data info mnist-4v9 --ratio 0.995 --seed 0 --json
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from cdbloss.lab.data.base import PROTOCOLS, DataSplits, get_protocol
from cdbloss.lab.io import jsonable

__all__ = [
    "SOURCES",
    "add_parser",
    "fetch_source",
    "parse_protocol_options",
    "protocol_help",
    "split_counts",
    "summarize",
]

#: Fetchable sources, and the source each protocol reads.
SOURCES: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10", "cifar100")
_PROTOCOL_SOURCE = {
    "mnist-4v9": "mnist",
    "mnist-lt": "mnist",
    "fashion-mnist-lt": "fashion-mnist",
    "cifar-lt": "cifar10",
}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach the ``data`` command group to the top-level ``cdbloss`` parser."""
    data = subparsers.add_parser("data", help="datasets: fetch, list, info")
    sub = data.add_subparsers(dest="data_command", metavar="COMMAND")

    def _help(_args: argparse.Namespace) -> int:
        data.print_help()
        return 2

    data.set_defaults(func=_help)

    p_list = sub.add_parser("list", help="list the registered protocols and their options")
    p_list.set_defaults(func=_cmd_list)

    p_fetch = sub.add_parser(
        "fetch",
        help="download / verify / decode a source into the cache",
        description="Sources: " + ", ".join(SOURCES) + " (or a protocol name that uses one).",
    )
    p_fetch.add_argument("name", help="source or protocol name")
    p_fetch.add_argument(
        "--root", help="cache folder (default: $CDBLOSS_CACHE or ~/.cache/cdbloss)"
    )
    p_fetch.add_argument("--source", help="CIFAR only: an archive, folder or zip to use")
    p_fetch.add_argument(
        "--offline",
        action="store_true",
        help="no network: use local copies only (also CDBLOSS_OFFLINE=1)",
    )
    p_fetch.set_defaults(func=_cmd_fetch)

    p_info = sub.add_parser(
        "info",
        help="build a protocol's splits and print sizes and per-class counts",
        description="Any option of the protocol, e.g. --ratio 0.99 --seed 0, "
        "--imbalance-factor 100 --val-per-class 50; --json for JSON output.",
    )
    p_info.add_argument("name", help="protocol name (see `cdbloss data list`)")
    p_info.add_argument("options", nargs=argparse.REMAINDER, help="--OPTION VALUE ... [--json]")
    p_info.set_defaults(func=_cmd_info)


# ---------------------------------------------------------------------------
# Options


def _identifiers(annotation: object) -> set[str]:
    """Names in an annotation (a string under ``from __future__ import annotations``)."""
    if annotation is inspect.Parameter.empty:
        return set()
    text = annotation if isinstance(annotation, str) else str(annotation)
    return set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", text))


def _parse_bool(key: str, raw: str) -> bool:
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"--{key.replace('_', '-')} expects true or false, got {raw!r}")


def _convert(key: str, raw: str, annotation: object) -> Any:
    names = _identifiers(annotation)
    flag = f"--{key.replace('_', '-')}"
    if raw.lower() in ("none", "null") and ("None" in names or not names):
        return None
    if "bool" in names:
        return _parse_bool(key, raw)
    seq = names & {"Sequence", "list", "tuple"}
    if seq:
        parts = [p for p in raw.split(",") if p]
        inner = "int" if "int" in names else ("float" if "float" in names else "str")
        return [_convert(key, p, inner) for p in parts]
    if "int" in names and "float" not in names:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{flag} expects an integer, got {raw!r}") from None
    if "float" in names:
        try:
            v = float(raw)
        except ValueError:
            raise ValueError(f"{flag} expects a number, got {raw!r}") from None
        return int(v) if "int" in names and v.is_integer() and "." not in raw else v
    if names and not names - {"None", "Optional"}:
        return raw
    if not names:  # no annotation: guess
        for cast in (int, float):
            try:
                return cast(raw)
            except ValueError:
                pass
    return raw


def parse_protocol_options(
    factory: Callable[..., DataSplits], tokens: Sequence[str]
) -> tuple[dict[str, Any], bool]:
    """Turn ``--key value`` tokens into keyword arguments of ``factory``.

    ``--key=value`` works too; ``--flag`` alone is ``True`` and ``--no-flag``
    is ``False`` for a boolean option; ``--json`` is taken out and returned.

    Returns:
        ``(kwargs, json_flag)``.

    Raises:
        ValueError: an unknown option (the message lists the valid ones), a
            value of the wrong type, or a required option left out.
    """
    sig = inspect.signature(factory)
    params = {
        n: p
        for n, p in sig.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    valid = ", ".join("--" + n.replace("_", "-") for n in params)
    kwargs: dict[str, Any] = {}
    as_json = False
    i = 0
    toks = list(tokens)
    while i < len(toks):
        tok = toks[i]
        i += 1
        if tok == "--json":
            as_json = True
            continue
        if not tok.startswith("--") or tok == "--":
            raise ValueError(f"unexpected argument {tok!r}; options look like --name value")
        body = tok[2:]
        raw: str | None
        if "=" in body:
            body, raw = body.split("=", 1)
        else:
            raw = None
        key = body.replace("-", "_")
        negated = False
        if key not in params and key.startswith("no_") and key[3:] in params:
            key, negated = key[3:], True
        if key not in params and not takes_any:
            raise ValueError(f"unknown option --{body} for this protocol; valid: {valid}")
        ann = params[key].annotation if key in params else inspect.Parameter.empty
        is_bool = "bool" in _identifiers(ann)
        if negated:
            if not is_bool or raw is not None:
                raise ValueError(f"--no-{key.replace('_', '-')} applies to on/off options only")
            kwargs[key] = False
            continue
        if raw is None:
            if is_bool and (i >= len(toks) or toks[i].startswith("--")):
                kwargs[key] = True
                continue
            if i >= len(toks):
                raise ValueError(f"--{body} needs a value")
            raw = toks[i]
            i += 1
        kwargs[key] = _convert(key, raw, ann)
    missing = [
        "--" + n.replace("_", "-")
        for n, p in params.items()
        if p.default is inspect.Parameter.empty and n not in kwargs
    ]
    if missing:
        raise ValueError(f"missing required option(s): {', '.join(missing)}")
    return kwargs, as_json


# ---------------------------------------------------------------------------
# Summaries


def _labels_of(ds: Any) -> list[int] | None:
    for attr in ("targets", "labels"):
        t = getattr(ds, attr, None)
        if t is None:
            continue
        if isinstance(t, torch.Tensor):
            return [int(v) for v in t.flatten().tolist()]
        if isinstance(t, np.ndarray):
            return [int(v) for v in t.ravel().tolist()]
        if isinstance(t, (list, tuple)):
            return [int(v) for v in t]
    return None


def split_counts(ds: Any, num_classes: int) -> dict[str, Any]:
    """``{"size": N, "per_class": [...] or None}`` of one split.

    Per-class counts come from the dataset's ``targets`` (or ``labels``)
    attribute; images are never loaded.
    """
    labels = _labels_of(ds)
    per_class = None
    if labels is not None:
        per_class = [0] * num_classes
        for y in labels:
            if not 0 <= y < num_classes:
                raise ValueError(f"label {y} outside [0, {num_classes}) in a split")
            per_class[y] += 1
    return {"size": len(ds), "per_class": per_class}


def summarize(name: str, splits: DataSplits, options: dict[str, Any]) -> dict[str, Any]:
    """A JSON-ready summary: options, per-split sizes and per-class counts, and ``info``."""
    c = splits.num_classes
    return {
        "protocol": name,
        "options": jsonable(options, finite=True),
        "num_classes": c,
        "class_names": list(splits.class_names),
        "class_counts": list(splits.class_counts),
        "splits": {
            "train": split_counts(splits.train, c),
            "val": split_counts(splits.val, c),
            "test": split_counts(splits.test, c),
        },
        "info": jsonable(splits.info, finite=True),
    }


def _print_table(summary: dict[str, Any]) -> None:
    sp = summary["splits"]
    print(f"protocol {summary['protocol']}  options {summary['options']}")
    print(
        "sizes: "
        + ", ".join(f"{k} {v['size']}" for k, v in sp.items())
        + f"; {summary['num_classes']} classes"
    )
    width = max(8, *(len(n) for n in summary["class_names"]))
    print(f"{'class':<{width}} {'train':>7} {'val':>7} {'test':>7}")
    for c, n in enumerate(summary["class_names"]):
        cells = [
            str(sp[s]["per_class"][c]) if sp[s]["per_class"] is not None else "?"
            for s in ("train", "val", "test")
        ]
        print(f"{n:<{width}} " + " ".join(f"{v:>7}" for v in cells))


# ---------------------------------------------------------------------------
# Commands


def fetch_source(
    name: str, root: str | None = None, source: str | None = None, offline: bool = False
) -> dict[str, Any]:
    """Fetch / verify / decode source ``name`` into the cache; return what was stored where.

    ``fetched_from`` in the result names the source that was used; ``offline``
    (or ``CDBLOSS_OFFLINE=1``) skips every source that needs the network.
    """
    from cdbloss.lab.data.download import NetSettings

    src = _PROTOCOL_SOURCE.get(name, name)
    if src in ("mnist", "fashion-mnist"):
        if source is not None:
            raise ValueError("--source applies to CIFAR; put your IDX files in --root instead")
        from cdbloss.lab.data.mnist import fetch_idx, load_idx_dataset

        fetched = fetch_idx(src, root, net=NetSettings.from_env(offline))
        arrays = load_idx_dataset(src, fetched.path.parent, download=False)
        return {
            "source": src,
            "fetched_from": fetched.origin,
            "folder": str(fetched.path),
            "files": arrays.sources,
        }
    if src in ("cifar10", "cifar100"):
        from cdbloss.lab.data.cifar import fetch_cifar, load_cifar

        if source is not None:
            origin, path = f"--source {source}", source
        else:
            fetched = fetch_cifar(src, root, net=NetSettings.from_env(offline))
            origin, path = fetched.origin, str(fetched.path)
        cifar = load_cifar(src, root, path)
        return {
            "source": src,
            "fetched_from": origin,
            "train": int(cifar.train_labels.shape[0]),
            "test": int(cifar.test_labels.shape[0]),
            **cifar.source,
        }
    raise ValueError(
        f"unknown source {name!r}; known: {', '.join(SOURCES)} "
        f"(or a protocol: {', '.join(sorted(_PROTOCOL_SOURCE))})"
    )


def _cmd_fetch(args: argparse.Namespace) -> int:
    result = fetch_source(args.name, args.root, args.source, args.offline)
    print(json.dumps(jsonable(result, finite=True), indent=2))
    return 0


def _cmd_list(_args: argparse.Namespace) -> int:
    for name, factory in sorted(PROTOCOLS.items()):
        opts = []
        for n, p in inspect.signature(factory).parameters.items():
            if p.kind not in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY,
            ):
                continue
            flag = "--" + n.replace("_", "-")
            opts.append(flag if p.default is inspect.Parameter.empty else f"[{flag} {p.default}]")
        print(f"{name}: {' '.join(opts)}")
    return 0


def protocol_help(name: str, factory: Callable[..., DataSplits]) -> str:
    """``cdbloss data info NAME --help``: the protocol's options (type and default) and its
    docstring, which says what each means."""
    lines = [f"usage: cdbloss data info {name} [--OPTION VALUE ...] [--json]", "", "options:"]
    for n, p in inspect.signature(factory).parameters.items():
        if p.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            continue
        flag = "--" + n.replace("_", "-")
        ann = (
            p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        )
        default = "required" if p.default is inspect.Parameter.empty else f"default {p.default!r}"
        lines.append(f"  {flag:<22} {ann or 'any'}, {default}")
    doc = inspect.getdoc(factory)
    if doc:
        lines += ["", doc]
    return "\n".join(lines)


def _cmd_info(args: argparse.Namespace) -> int:
    factory = get_protocol(args.name)
    if any(tok in ("-h", "--help") for tok in args.options):
        print(protocol_help(args.name, factory))
        return 0
    kwargs, as_json = parse_protocol_options(factory, args.options)
    splits = factory(**kwargs)
    summary = summarize(args.name, splits, kwargs)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table(summary)
    return 0
