"""`make demo`'s script, end to end on a tiny synthetic MNIST (no download, two epochs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cdbloss.lab.data.idx import write_idx


def _synthetic_mnist(folder: Path) -> None:
    """IDX files shaped like MNIST's (28x28 digits 0-9), small and random."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 600), ("t10k", 300)):
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        write_idx(folder / f"{split}-images-idx3-ubyte", images)


def test_the_demo_trains_both_losses_prints_the_comparison_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from examples.mnist_demo import main

    import cdbloss.lab.data.cli

    fetched: list[str] = []
    monkeypatch.setattr(cdbloss.lab.data.cli, "fetch_source", lambda name: fetched.append(name))
    data = tmp_path / "mnist"
    data.mkdir()
    _synthetic_mnist(data)
    out = tmp_path / "demo"
    tiny = [
        f"data.options.root={data}",
        "data.options.download=false",
        "data.options.verify=false",
        "data.options.total=40",
        "data.options.val_per_class=5",
        "data.options.test_per_class=8",
        "data.options.ratio=0.9",
        "train.epochs=2",
        "train.val_every=1",
        "optim.milestones=[1]",
    ]
    fashion = tmp_path / "fashion"
    fashion.mkdir()
    _synthetic_mnist(fashion)
    tail = [
        f"data.options.root={fashion}",
        "data.options.download=false",
        "data.options.verify=false",
        "data.options.val_per_class=5",
        "data.options.imbalance_factor=5",
        "train.epochs=2",
        "optim.milestones=[1]",
        "optim.warmup_epochs=0",
        "sweep.variants=[{loss.name: ce}, {loss.name: balanced-softmax}, {loss.name: cdb-bs},"
        " {loss.name: cdb-ce, loss.options: {defer_until: 1}}]",
    ]
    tail_args = [a for t in tail for a in ("--tail", t)]
    assert main(["--out", str(out), "--workers", "1", *tiny, *tail_args]) == 0
    text = capsys.readouterr().out
    assert fetched == ["mnist", "fashion-mnist"]
    assert "2/4 training LeNet-5 on MNIST 4 vs 9, majority ratio 0.9, 2 epochs" in text
    assert "3/4 test accuracy (balanced test set, 8 images per class)" in text
    # the header names both digits with their training counts (4 of 40, 36 of 40)
    assert "4 (4 train)" in text and "9 (36 train)" in text
    assert "plain CE" in text and "CDB-CE (dynamic tau)" in text
    assert ("This is the effect the paper" in text) != ("did NOT beat plain CE" in text)
    assert (out / "report.md").is_file()
    # part 2: the long tail, every recommended recipe beside CE and Balanced Softmax
    assert "4/4 the long tail" in text
    for label in ("Balanced Softmax (counts known)", "cdb-bs (CDB over it)", "CDBLoss() deferred"):
        assert label in text
    assert (tmp_path / "demo_long_tail" / "report.md").is_file()

    # a second call reuses both runs and says so
    assert main(["--out", str(out), "--workers", "1", *tiny, *tail_args]) == 0
    assert "both runs were already finished" in capsys.readouterr().out


def test_a_bad_override_stops_the_demo_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from examples.mnist_demo import main

    import cdbloss.lab.data.cli

    monkeypatch.setattr(cdbloss.lab.data.cli, "fetch_source", lambda name: pytest.fail("fetched"))
    with pytest.raises(ValueError, match="epochs"):
        main(["--out", str(tmp_path / "demo"), "train.epochs=0"])
    assert not (tmp_path / "demo").exists()
