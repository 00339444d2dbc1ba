from __future__ import annotations

import pytest

from cdbloss.lab.experiments.paper import paper_table_for
from cdbloss.lab.experiments.report import method_label


def _cdb(tau: object) -> dict[str, object]:
    return {"loss": {"name": "cdb-ce", "options": {"tau": tau}}, "train": {}}


@pytest.mark.parametrize(
    ("tau", "at_0995"),
    [(0.5, 4.03), (1.0, 3.94), (1.5, 3.54), (2.0, 3.65), (5.0, 3.78), (7.0, 4.13)],
)
def test_table2_rows_are_found_under_the_reports_labels(tau: float, at_0995: float) -> None:
    found = paper_table_for("mnist-4v9", {})
    assert found is not None
    name, table = found
    assert name.startswith("Tables 1 and 2")
    assert table[method_label(_cdb(tau))][0.995][0] == at_0995


def test_mnist_table_keeps_table1_and_has_one_dynamic_row() -> None:
    found = paper_table_for("mnist-4v9", {})
    assert found is not None
    table = found[1]
    assert table[method_label(_cdb("dynamic"))][0.99] == (2.39, 0.41)
    assert table["CE"][0.995] == (14.35, 1.10)
    assert paper_table_for("mnist-lt", {}) is None
