"""Turn a folder of finished runs into the paper's tables (Markdown, CSV) and figures (PNG).

Reads every ``result.json`` under a folder; plots are a leaf: they read saved
results and never train. Runs that differ only in their seed are one cell:
mean +- std over seeds. Rows are methods, columns the data option that varies
(majority ratio, imbalance factor). Where the protocol matches one of the
paper's tables, the paper's number stands beside ours.

The package is split by what each part does:

- :mod:`.runs`: loading finished runs (:class:`RunRecord`, :func:`load_runs`, :class:`Cell`);
- :mod:`.labels`: row labels (:func:`method_label`, :func:`row_labels`) and the row order;
- :mod:`.stats`: paired differences by seed, :func:`sign_test`, :func:`best_fixed_tau`;
- :mod:`.tables`: the Markdown and CSV tables and ``runs.csv`` (:func:`run_rows`);
- :mod:`.figures`: the matplotlib figures;
- :mod:`.writer`: :func:`write_report`, which puts them together.
"""

from cdbloss.lab.experiments.report.labels import BEST_TAU_ROW, method_label
from cdbloss.lab.experiments.report.labels import row_labels as row_labels
from cdbloss.lab.experiments.report.runs import Cell, RunRecord, load_runs
from cdbloss.lab.experiments.report.stats import (
    best_fixed_tau,
    default_reference,
    paired_advantage,
    sign_test,
)
from cdbloss.lab.experiments.report.tables import RUN_FIELDS as RUN_FIELDS
from cdbloss.lab.experiments.report.tables import SELECT_FIELDS as SELECT_FIELDS
from cdbloss.lab.experiments.report.tables import run_rows as run_rows
from cdbloss.lab.experiments.report.writer import write_report

__all__ = [
    "BEST_TAU_ROW",
    "Cell",
    "RunRecord",
    "best_fixed_tau",
    "default_reference",
    "load_runs",
    "method_label",
    "paired_advantage",
    "sign_test",
    "write_report",
]
