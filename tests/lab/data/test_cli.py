"""``cdbloss data``: option mapping, info output, list, fetch errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from cdbloss.lab.cli import main
from cdbloss.lab.data.base import DataSplits
from cdbloss.lab.data.cli import parse_protocol_options, split_counts
from cdbloss.lab.data.idx import write_idx


def _factory(
    ratio: float,
    seed: int = 0,
    total: int = 5000,
    root: str | None = None,
    profile: Literal["exp", "step"] = "exp",
    verify: bool = True,
    dims: tuple[int, ...] = (1, 2),
) -> DataSplits:
    raise AssertionError("not called")


def test_options_are_converted_by_annotation() -> None:
    kw, as_json = parse_protocol_options(
        _factory,
        ["--ratio", "0.99", "--seed=3", "--total", "100", "--root", "/x", "--profile", "step",
         "--no-verify", "--dims", "3,4", "--json"],
    )  # fmt: skip
    assert kw == {
        "ratio": 0.99, "seed": 3, "total": 100, "root": "/x", "profile": "step",
        "verify": False, "dims": [3, 4],
    }  # fmt: skip
    assert isinstance(kw["seed"], int) and as_json
    kw, as_json = parse_protocol_options(_factory, ["--ratio", "1", "--verify", "--root", "none"])
    assert kw == {"ratio": 1.0, "verify": True, "root": None} and not as_json
    assert isinstance(kw["ratio"], float)
    kw, _ = parse_protocol_options(_factory, ["--ratio", "0.9", "--verify", "false"])
    assert kw["verify"] is False


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["--ratio", "0.9", "--bogus", "1"], r"unknown option --bogus .*valid: --ratio, --seed"),
        (["--seed", "1"], r"missing required option\(s\): --ratio"),
        (["--ratio", "abc"], "--ratio expects a number, got 'abc'"),
        (["--ratio", "0.9", "--seed", "1.5"], "--seed expects an integer"),
        (["--ratio", "0.9", "--verify", "maybe"], "--verify expects true or false"),
        (["--ratio", "0.9", "--no-seed"], "--no-seed applies to on/off options only"),
        (["--ratio"], "--ratio needs a value"),
        (["0.9"], "unexpected argument '0.9'"),
    ],
)
def test_option_errors(tokens: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_protocol_options(_factory, tokens)


def _synthetic_mnist(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 400), ("t10k", 200)):
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels)
        write_idx(
            folder / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 3, 3), dtype=np.uint8)
        )


def test_info_json_on_synthetic_mnist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _synthetic_mnist(tmp_path)
    rc = main(
        ["data", "info", "mnist-4v9", "--ratio", "0.9", "--total", "20", "--val-per-class", "5",
         "--test-per-class", "8", "--root", str(tmp_path), "--no-download", "--no-verify", "--json"]
    )  # fmt: skip
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == "mnist-4v9"
    assert out["class_counts"] == [2, 18]
    assert out["splits"]["train"] == {"size": 20, "per_class": [2, 18]}
    assert out["splits"]["val"] == {"size": 10, "per_class": [5, 5]}
    assert out["splits"]["test"] == {"size": 16, "per_class": [8, 8]}
    assert out["options"]["ratio"] == 0.9 and out["info"]["seed"] == 0
    assert len(out["info"]["sources"]["train_images"]["sha256"]) == 64


def test_info_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _synthetic_mnist(tmp_path)
    rc = main(
        ["data", "info", "mnist-lt", "--imbalance-factor", "4", "--val-per-class", "10",
         "--root", str(tmp_path), "--no-download", "--no-verify"]
    )  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    # 40 per class, 10 held out -> 30 .. floor(30 / 4) = 7; floor(30 * 4 ** (-c / 9)) sums to 160
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:]}
    assert "sizes: train 160, val 100, test 200; 10 classes" in out
    assert rows["0"] == ["30", "10", "20"]
    assert rows["9"] == ["7", "10", "20"]


def test_errors_become_exit_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _synthetic_mnist(tmp_path)
    rc = main(
        ["data", "info", "mnist-4v9", "--ratio", "0.3", "--root", str(tmp_path), "--no-verify"]
    )
    assert rc == 2
    assert "ratio (the majority share) must lie in (0.5, 1), got 0.3" in capsys.readouterr().err
    assert main(["data", "info", "no-such-protocol"]) == 2
    assert "known: [" in capsys.readouterr().err
    assert main(["data", "fetch", "imagenet"]) == 2
    assert (
        "unknown source 'imagenet'; known: mnist, fashion-mnist, cifar10, cifar100"
        in capsys.readouterr().err
    )


def test_fetch_cifar100_without_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch", "cifar100", "--root", str(tmp_path)]) == 2
    assert "cifar-100-python.tar.gz" in capsys.readouterr().err


def test_list_shows_protocols_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "mnist-4v9: --ratio [--seed 0] [--total 5000]" in out
    assert "cifar-lt:" in out and "fashion-mnist-lt:" in out and "mnist-lt:" in out


def test_split_counts_reads_targets_without_loading() -> None:
    class Listy:
        def __init__(self) -> None:
            self.targets = [0, 2, 2]

        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> object:
            raise AssertionError("images must not be loaded")

    assert split_counts(Listy(), 3) == {"size": 3, "per_class": [1, 0, 2]}

    class Opaque:
        def __len__(self) -> int:
            return 5

    assert split_counts(Opaque(), 2) == {"size": 5, "per_class": None}
