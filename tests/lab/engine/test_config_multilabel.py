"""The single-label trainer's config refuses a multi-label loss, naming where to go instead."""

from __future__ import annotations

import pytest

from cdbloss.lab.engine.config import ConfigError, config_from_dict
from tests.lab.engine.conftest import tiny_config


@pytest.mark.parametrize("name", ["bce", "db-loss", "cdb-bce"])
def test_a_multilabel_loss_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"multi-label loss.*multilabel_study"):
        config_from_dict(tiny_config(loss__name=name))


def test_a_single_label_loss_still_passes() -> None:
    assert config_from_dict(tiny_config(loss__name="cdb-ce")).loss.name == "cdb-ce"
