"""Checkpoints, JSON files, and the random-number state a resumed run needs.

Checkpoints are written through :mod:`cdbloss.lab.io`'s one atomic writer.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cdbloss.lab.io import atomic_write

__all__ = [
    "CheckpointError",
    "get_rng_state",
    "load_checkpoint",
    "read_json",
    "save_checkpoint",
    "set_rng_state",
    "signals_deferred",
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit the run; the message names
    the file and says that deleting it restarts the run."""


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """``json.loads`` of a file, with an error that names the file when it is unreadable.

    Raises:
        ValueError: not UTF-8 or not valid JSON (the file, ``what`` it is, where it breaks).
    """
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{what} {str(p)!r} is unreadable: not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{what} {str(p)!r} is unreadable: not valid JSON at line {err.lineno}, "
            f"column {err.colno} ({err.msg})"
        ) from None


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` through an atomic rename: a crash mid-write keeps the previous checkpoint."""
    with atomic_write(path) as fh:
        torch.save(state, fh)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Uses ``weights_only=True``: tensors, containers and plain numbers only, so
    a crafted checkpoint cannot run code.

    Raises:
        CheckpointError: the file is not a checkpoint this code can read (truncated, empty,
            random bytes, or holding objects other than tensors and plain data); the
            message names the file and says that deleting it restarts the run.
    """
    p = Path(path)
    try:
        with warnings.catch_warnings():  # torch warns about old formats; the error says it all
            warnings.simplefilter("ignore")
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {str(p)!r} is unreadable ({_load_failure(err)}); deleting it "
            "restarts the run from scratch (a run keeps no older checkpoint)"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {str(p)!r} is unreadable (it holds a {type(state).__name__}, not "
            "a checkpoint's mapping); deleting it restarts the run from scratch"
        )
    return state


def _load_failure(err: Exception) -> str:
    """Why ``torch.load`` failed, in a few words, without torch's advice to load with
    ``weights_only=False`` (which would run whatever code the file carries)."""
    text = str(err)
    if "Unsupported global" in text:
        return "it holds objects other than tensors and plain data, refused for safety"
    return "truncated, empty or not a torch checkpoint"


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first one caught.

    A fused group writes its members' checkpoints and ``metrics.jsonl`` files one
    after the other; a stop (Ctrl-C, or the SIGTERM a sweep's launcher sends at its
    deadline) in the middle would leave the members' files at different epochs, and
    the next sweep would not group them again. Only the main thread can set signal
    handlers: elsewhere the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: object) -> None:
        caught.append(signum)

    # a handler set outside Python (getsignal gives None) could not be put back: left alone
    sigs = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
    saved = {s: signal.signal(s, hold) for s in sigs}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


def get_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and (if present) CUDA generator states."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    state: dict[str, Any] = {
        "python": random.getstate(),
        # numpy's state as tensors and plain numbers, so torch.load(weights_only=True) accepts it
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` captured."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
