"""The state of the CDB weights: seeding, empty passes, settings in checkpoints, dtypes."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from cdbloss import CDBLoss, CDBSampler, CDBWeighting, ClassDifficulty
from cdbloss.cdb import EmptyTrackerWarning


def test_first_update_sets_the_average_instead_of_blending_into_a_prior() -> None:
    w = CDBWeighting(3, momentum=0.9)
    w.update(torch.tensor([1.0, 0.0, 0.0]))
    assert torch.equal(w.accuracy, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    w.update(torch.tensor([0.6, 0.9, 0.9]))  # then it averages
    torch.testing.assert_close(w.accuracy, torch.tensor([0.96, 0.09, 0.09], dtype=torch.float64))


def test_first_measured_update_after_an_empty_pass_sets_the_average() -> None:
    w = CDBWeighting(3, momentum=0.9)
    with pytest.warns(EmptyTrackerWarning, match="counted no sample"):
        w.update(ClassDifficulty(3))
    assert torch.equal(w.weight, torch.ones(3))  # nothing measured: uniform, said aloud
    assert bool(w.accuracy.isnan().all())
    fresh = torch.tensor([0.6, 0.9, 0.9])
    w.update(fresh)
    assert torch.equal(w.accuracy, fresh.double())


def test_a_tracker_that_counted_samples_does_not_warn() -> None:
    tracker = ClassDifficulty(3)
    tracker.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptyTrackerWarning)
        CDBLoss(3).update_weights(tracker)


def test_settings_travel_in_the_state_dict_and_a_mismatch_is_refused_by_name() -> None:
    loss = CDBLoss(3, momentum=0.9, tau=1.0)
    loss.update_weights(torch.tensor([0.9, 0.5, 0.2]))
    state = loss.state_dict()
    assert state["weighting._extra_state"].dtype == torch.uint8  # JSON bytes: safetensors-safe
    assert loss.weighting.settings()["momentum"] == 0.9
    CDBLoss(3, momentum=0.9, tau=1.0).load_state_dict(state)  # same settings: loads
    with pytest.raises(
        ValueError,
        match=r"tau: checkpoint 1.0 != this 'dynamic', momentum: checkpoint 0.9 != this 0.5",
    ):
        CDBLoss(3, momentum=0.5, tau="dynamic").load_state_dict(state)
    with pytest.raises(ValueError, match=r"base: checkpoint 'ce' != this 'focal'"):
        CDBLoss(3, momentum=0.9, tau=1.0, base="focal").load_state_dict(state)


def test_a_checkpoint_written_before_settings_were_saved_still_loads() -> None:
    loss = CDBLoss(3)
    loss.update_weights(torch.tensor([0.9, 0.5, 0.2]))
    old = {k: v for k, v in loss.state_dict().items() if not k.endswith("_extra_state")}
    fresh = CDBLoss(3)
    fresh.load_state_dict(old)  # strict: no missing key reported
    assert torch.equal(fresh.weight, loss.weight)
    sampler = CDBSampler([0, 1, 2, 2], tau=1.0)
    state = sampler.state_dict()
    state["weighting"] = {
        k: v for k, v in state["weighting"].items() if not k.endswith("_extra_state")
    }
    sampler.load_state_dict(state)


def test_half_keeps_the_averaging_state_in_float64() -> None:
    loss = CDBLoss(3)
    loss.update_weights(torch.tensor([0.9001, 0.5, 0.2]))
    loss.half()
    assert loss.weighting.accuracy.dtype == torch.float64
    assert math.isclose(float(loss.weighting.accuracy[0]), 0.9001, rel_tol=0, abs_tol=1e-6)
    assert loss.weight.dtype == torch.float16  # the applied weights follow the module


def test_sampler_has_a_repr() -> None:
    text = repr(CDBSampler([0, 0, 1, 2], tau=1.0, seed=3))
    assert text.startswith("CDBSampler(num_classes=3, num_samples=4, seed=3")
    assert "CDBWeighting(num_classes=3, tau=1.0" in text
