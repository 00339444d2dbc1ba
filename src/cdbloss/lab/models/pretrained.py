"""Start a model from a local checkpoint file: ``model.pretrained: PATH`` in a config.

The file is read with ``torch.load(weights_only=True)`` (tensors and plain data only,
so a crafted file cannot run code) and its key layout is mapped onto the model's:

===========================================  ==========================================
the file holds                               taken as
===========================================  ==========================================
a flat state dict                            itself (torchvision's ``model.state_dict()``)
``{"state_dict": {...}, ...}``               the inner dict (3D-ResNets-PyTorch, e.g. the
                                             Kinetics ``resnext-101-kinetics.pth``; LDAM,
                                             most training scripts)
``{"model": {...}, ...}``                    the inner dict (a cdbloss ``checkpoint.pt``)
``{"state_dict_best": {...}}``,              the two networks merged (OLTR and classifier-
``{"feat_model": {...}, "classifier":        balancing code, the CDB authors' ImageNet-LT
{...}}`` inside either wrapper               code: a ResNet-10 trunk plus ``fc``)
keys starting with ``module.``               the prefix removed (``nn.DataParallel``,
                                             DDP); also ``_orig_mod.`` (``torch.compile``)
===========================================  ==========================================

Our models use the module names of the code their checkpoints come from, so no
name needs renaming once the wrapper and prefix are gone:

* ``resnet10`` and ``resnet18`` (:class:`~cdbloss.lab.models.resnet.ImageNetResNet`):
  torchvision's ResNet names (``conv1``, ``bn1``, ``layer1.0.conv1``,
  ``layer2.0.downsample.0``, ``fc``); torchvision's ``resnet18`` checkpoint fits
  ``resnet18`` exactly. Bottleneck ResNets (ResNet-50) are ``torchvision.resnet50``.
* ``resnext3d_101``: the 3D-ResNets-PyTorch ResNeXt names (the Kinetics checkpoint
  the CDB authors' EGTEA code starts from). Its checkpoints of PyTorch < 0.4.1 lack
  BatchNorm's ``num_batches_tracked`` counters; they are left at 0, not reported.
* ``resnet8`` ... ``resnet110``: the CIFAR ResNet names of the LDAM-DRW / CDB code
  (head ``linear``).
* ``torchvision.<arch>``: torchvision's own names.

What does not fit is one :class:`PretrainedError` line naming the file: the keys
the model needs and the file lacks, the keys the file has and the model does not,
and tensors of another shape. A classifier of another class count (Kinetics' 400
against EGTEA's 19) is refused with the advice to set ``model.reinit_head: true``,
which keeps the head the model was built with (freshly initialised) and loads the rest.

Example:
    >>> import os, tempfile, torch
    >>> from cdbloss.lab.models import build_model
    >>> src = build_model("resnet8", num_classes=100)
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "cifar100.pth")
    >>> torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, path)
    >>> dst = build_model("resnet8", num_classes=10)
    >>> report = load_pretrained(dst, path, reinit_head=True)
    >>> folder.cleanup()
    >>> report.head, report.stripped
    ('linear', ['module.'])
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

import torch
from torch import Tensor, nn

from .layers import NormedLinear

__all__ = [
    "LoadReport",
    "PretrainedError",
    "classifier_name",
    "load_pretrained",
    "map_state_dict",
    "read_state_dict",
]

#: Prefixes that wrappers add to every key: DataParallel / DDP, torch.compile.
_PREFIXES = ("module.", "_orig_mod.")
#: Keys of a training checkpoint that hold the model's state dict, tried in this order.
_WRAPPERS = ("state_dict", "model", "state_dict_best", "model_state_dict", "net")
#: The two networks of the OLTR / classifier-balancing checkpoints.
_PARTS = ("feat_model", "classifier")
_SHOWN = 4  # keys named per kind of mismatch; the rest are counted


class PretrainedError(ValueError):
    """A ``model.pretrained`` file that is missing, unreadable or does not fit the model;
    the message is one line that names the file."""


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    Attributes:
        path: the file.
        loaded: number of tensors copied into the model.
        stripped: the key prefixes removed (``"module."``...).
        wrapper: the checkpoint key the state dict sat under (``"state_dict"``...), or ``""``.
        head: the classifier's module name when it was kept fresh (``reinit_head``), else ``""``.
        skipped: keys of the file not loaded (the old head, when ``reinit_head``).
    """

    path: str
    loaded: int
    stripped: list[str] = field(default_factory=list)
    wrapper: str = ""
    head: str = ""
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the console."""
        parts = [f"{self.loaded} tensors from {self.path!r}"]
        if self.wrapper:
            parts.append(f"under {self.wrapper!r}")
        if self.stripped:
            parts.append(f"prefix {' + '.join(self.stripped)} removed")
        if self.head:
            parts.append(f"classifier {self.head!r} re-initialised")
        return "pretrained: " + ", ".join(parts)


def _failure(err: BaseException) -> str:
    text = str(err)
    if "Unsupported global" in text:
        return "it holds objects other than tensors and plain data, refused for safety"
    if isinstance(err, IsADirectoryError):
        return "it is a folder"
    if isinstance(err, PermissionError):
        return "permission denied"
    return "truncated, empty or not a torch checkpoint"


def _is_state_dict(obj: object) -> TypeGuard[Mapping[str, Tensor]]:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def _unwrap(obj: object, where: str) -> tuple[dict[str, Tensor], str]:
    """The flat state dict inside a loaded checkpoint, and the wrapper key it sat under."""
    wrapper = ""
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        for key in _WRAPPERS:
            if isinstance(obj.get(key), Mapping):
                obj, wrapper = obj[key], key
                break
    if isinstance(obj, Mapping) and all(isinstance(obj.get(p), Mapping) for p in _PARTS):
        merged: dict[str, Tensor] = {}
        for part in _PARTS:
            merged.update(_strip(dict(obj[part]))[0])
        obj = merged
        wrapper = f"{wrapper}/{'+'.join(_PARTS)}" if wrapper else "+".join(_PARTS)
    if not _is_state_dict(obj):
        keys = list(obj)[:6] if isinstance(obj, Mapping) else []
        what = f"a mapping with keys {keys}" if keys else f"a {type(obj).__name__}"
        raise PretrainedError(
            f"model.pretrained {where}: no state dict found (it holds {what}; expected "
            f"name -> tensor, or one under {list(_WRAPPERS)})"
        )
    return dict(obj), wrapper


def _strip(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Remove wrapper prefixes that every key carries (repeatedly: DDP around compile)."""
    stripped: list[str] = []
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                stripped.append(prefix)
                changed = True
    return state, stripped


def read_state_dict(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], str]:
    """Read ``path`` onto the CPU with ``weights_only=True``; return its state dict and the
    wrapper key it sat under (see the module doc; prefixes are not removed yet).

    Raises:
        PretrainedError: missing, unreadable, or no state dict inside (one line, naming it).
    """
    p = Path(path)
    where = repr(str(p))
    if not p.exists():
        raise PretrainedError(f"model.pretrained {where} does not exist")
    try:
        with warnings.catch_warnings():  # torch warns about old formats; the error says it all
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:
        raise PretrainedError(f"model.pretrained {where} is unreadable ({_failure(err)})") from None
    return _unwrap(obj, where)


def classifier_name(model: nn.Module) -> str:
    """The module name of ``model``'s classifier: its last ``nn.Linear`` or
    :class:`~cdbloss.lab.models.layers.NormedLinear` (``fc``, ``linear``,
    ``classifier.4``...).

    Raises:
        ValueError: the model has no such layer.
    """
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, NormedLinear))]
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear classifier to re-initialise")
    return str(names[-1])


def _under(key: str, module: str) -> bool:
    return key.startswith(module + ".")


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


def map_state_dict(
    state: Mapping[str, Tensor], model: nn.Module, reinit_head: bool = False, where: str = "file"
) -> tuple[dict[str, Tensor], list[str], str, list[str]]:
    """Map ``state`` onto ``model``'s keys.

    Returns:
        ``(mapped, stripped_prefixes, head, skipped)``: the tensors to load, the prefixes
        removed, the head kept fresh (``""`` without ``reinit_head``) and the file's keys
        left out.

    Raises:
        PretrainedError: missing or unexpected keys, or shapes that differ, all in one line.
    """
    mapped, stripped = _strip(dict(state))
    target = model.state_dict()
    head = classifier_name(model) if reinit_head else ""
    skipped = sorted(k for k in mapped if head and _under(k, head))
    mapped = {k: v for k, v in mapped.items() if k not in skipped}
    needed = [k for k in target if not (head and _under(k, head))]
    # BatchNorm's step counters are absent from checkpoints of PyTorch < 0.4.1 and unused
    # with momentum set: leave them at 0 rather than refuse those files
    missing = [k for k in needed if k not in mapped and not k.endswith("num_batches_tracked")]
    unexpected = sorted(k for k in mapped if k not in target)
    shapes = [k for k in needed if k in mapped and tuple(mapped[k].shape) != tuple(target[k].shape)]
    if not (missing or unexpected or shapes):
        return mapped, stripped, head, skipped
    name = type(model).__name__
    if not reinit_head and shapes:
        try:
            fc = classifier_name(model)
        except ValueError:
            fc = ""
        if fc and all(_under(k, fc) for k in shapes) and not missing and not unexpected:
            w = f"{fc}.weight"
            file_c = mapped[w].shape[0] if w in mapped else "?"
            raise PretrainedError(
                f"model.pretrained {where}: the classifier {fc!r} has {file_c} outputs in the "
                f"file and {target[w].shape[0] if w in target else '?'} in {name}; set "
                "model.reinit_head: true to start it afresh and load the rest"
            )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing from the file ({_listing(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} not in {name} ({_listing(unexpected)})")
    if shapes:
        shown = [
            f"{k}: file {tuple(mapped[k].shape)}, model {tuple(target[k].shape)}"
            for k in shapes[:_SHOWN]
        ]
        more = f", ... ({len(shapes) - _SHOWN} more)" if len(shapes) > _SHOWN else ""
        problems.append(f"{len(shapes)} of another shape ({'; '.join(shown)}{more})")
    prefix = f" after removing {' + '.join(stripped)}" if stripped else ""
    raise PretrainedError(
        f"model.pretrained {where} does not fit {name}{prefix}: keys " + "; ".join(problems)
    )


def load_pretrained(
    model: nn.Module,
    source: str | os.PathLike[str] | tuple[dict[str, Tensor], str],
    reinit_head: bool = False,
    *,
    name: str | os.PathLike[str] | None = None,
) -> LoadReport:
    """Copy a checkpoint's weights into ``model`` (in place).

    Args:
        model: the freshly built model.
        source: a file path, or what :func:`read_state_dict` returned for a file (read
            early, so that a bad file stops a run before its data is loaded).
        reinit_head: leave the classifier (:func:`classifier_name`) as built.
        name: the file's path for messages when ``source`` is already read.

    Returns:
        A :class:`LoadReport`.

    Raises:
        PretrainedError: the file is missing or unreadable, or does not fit (one line).
    """
    if isinstance(source, tuple):
        state, wrapper = source
        path = str(name) if name is not None else "<state dict>"
    else:
        path = str(source)
        state, wrapper = read_state_dict(source)
    mapped, stripped, head, skipped = map_state_dict(state, model, reinit_head, repr(path))
    result = model.load_state_dict(mapped, strict=False)
    assert not result.unexpected_keys  # map_state_dict checked both directions
    return LoadReport(path, len(mapped), stripped, wrapper, head, skipped)
