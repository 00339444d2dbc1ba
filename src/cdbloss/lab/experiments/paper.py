"""The paper's own numbers (Sinha et al., ACCV 2020), for side-by-side tables.

Values as restated in the project's PROTOCOLS.md. Keys are the report's method
labels (see :func:`cdbloss.lab.experiments.report.method_label`).
"""

from __future__ import annotations

__all__ = ["PAPER_TABLES", "PaperTable", "paper_table_for"]

PaperTable = dict[str, dict[float, tuple[float, float | None]]]

#: Table 1: MNIST 4-vs-9, test error % (mean, std) by majority ratio, 10 runs.
TABLE1: PaperTable = {
    "CE": {
        0.9: (1.50, 0.51),
        0.95: (2.36, 0.46),
        0.98: (5.09, 0.41),
        0.99: (8.59, 0.41),
        0.995: (14.35, 1.10),
    },
    "IFW": {
        0.9: (1.16, 0.40),
        0.95: (1.74, 0.31),
        0.98: (3.13, 0.74),
        0.99: (6.01, 0.56),
        0.995: (8.94, 0.70),
    },
    "Focal": {
        0.9: (1.74, 0.26),
        0.95: (2.78, 0.29),
        0.98: (6.67, 0.63),
        0.99: (11.11, 1.20),
        0.995: (17.17, 0.86),
    },
    "CB": {
        0.9: (1.07, 0.23),
        0.95: (1.79, 0.39),
        0.98: (3.58, 0.71),
        0.99: (5.88, 1.20),
        0.995: (8.61, 1.11),
    },
    "EQL": {
        0.9: (1.49, 0.34),
        0.95: (2.26, 0.41),
        0.98: (2.43, 0.14),
        0.99: (2.60, 0.33),
        0.995: (3.71, 0.41),
    },
    "L2RW": {
        0.9: (1.24, 0.69),
        0.95: (1.76, 1.12),
        0.98: (2.06, 0.85),
        0.99: (2.63, 0.65),
        0.995: (3.94, 1.23),
    },
    "CDB-CE (dyn. tau)": {
        0.9: (0.74, 0.14),
        0.95: (1.27, 0.33),
        0.98: (1.65, 0.26),
        0.99: (2.39, 0.41),
        0.995: (3.71, 0.27),
    },
}

#: Table 2: MNIST 4-vs-9, CDB-CE with a fixed tau, test error % (mean, std), 10 runs.
#: Its last row (the dynamic tau) repeats Table 1's CDB-CE row.
TABLE2: PaperTable = {
    "CDB-CE (tau=0.5)": {
        0.9: (1.06, 0.34),
        0.95: (1.43, 0.24),
        0.98: (1.93, 0.27),
        0.99: (2.59, 0.44),
        0.995: (4.03, 0.41),
    },
    "CDB-CE (tau=1)": {
        0.9: (0.90, 0.27),
        0.95: (1.38, 0.20),
        0.98: (1.86, 0.30),
        0.99: (2.49, 0.57),
        0.995: (3.94, 0.36),
    },
    "CDB-CE (tau=1.5)": {
        0.9: (0.85, 0.19),
        0.95: (1.35, 0.31),
        0.98: (1.71, 0.28),
        0.99: (2.31, 0.38),
        0.995: (3.54, 0.25),
    },
    "CDB-CE (tau=2)": {
        0.9: (0.75, 0.15),
        0.95: (1.21, 0.32),
        0.98: (1.75, 0.36),
        0.99: (2.23, 0.34),
        0.995: (3.65, 0.41),
    },
    "CDB-CE (tau=5)": {
        0.9: (0.88, 0.25),
        0.95: (1.19, 0.36),
        0.98: (2.00, 0.32),
        0.99: (2.51, 0.41),
        0.995: (3.78, 0.43),
    },
    "CDB-CE (tau=7)": {
        0.9: (0.96, 0.20),
        0.95: (1.20, 0.20),
        0.98: (2.04, 0.30),
        0.99: (2.64, 0.40),
        0.995: (4.13, 0.37),
    },
}

#: Table 3 (and the tau = 0 row of Table 4): CIFAR-100-LT top-1 % by imbalance factor.
TABLE3: PaperTable = {
    "CDB-CE (dyn. tau)": {
        200: (37.40, None),
        100: (42.57, None),
        50: (46.78, None),
        20: (54.22, None),
        10: (58.74, None),
    },
    "Focal": {
        200: (35.62, None),
        100: (38.41, None),
        50: (44.32, None),
        20: (51.95, None),
        10: (55.78, None),
    },
    "CB": {
        200: (36.23, None),
        100: (39.60, None),
        50: (45.32, None),
        20: (52.99, None),
        10: (57.99, None),
    },
    "L2RW": {
        200: (33.38, None),
        100: (40.23, None),
        50: (44.44, None),
        20: (51.64, None),
        10: (53.73, None),
    },
    "MWN": {
        200: (37.91, None),
        100: (42.09, None),
        50: (46.74, None),
        20: (54.37, None),
        10: (58.46, None),
    },
    "EQL": {
        200: (37.34, None),
        100: (40.54, None),
        50: (44.70, None),
        20: (54.12, None),
        10: (58.32, None),
    },
    "LDAM-DRW": {100: (42.04, None), 10: (58.71, None)},
    "CE": {
        200: (34.95, None),
        100: (38.21, None),
        50: (43.89, None),
        20: (51.34, None),
        10: (55.65, None),
    },
}

PAPER_TABLES: dict[str, tuple[str, PaperTable]] = {
    "mnist-4v9": ("Tables 1 and 2 (test error %)", {**TABLE1, **TABLE2}),
    "cifar-100-lt": ("Table 3 (top-1 %)", TABLE3),
}


def paper_table_for(protocol: str, options: dict[str, object]) -> tuple[str, PaperTable] | None:
    """The paper's table matching a data protocol, or None."""
    if protocol == "mnist-4v9":
        return PAPER_TABLES["mnist-4v9"]
    if protocol == "cifar-lt" and (
        options.get("num_classes") == 100 or options.get("dataset") == "cifar100"
    ):
        return PAPER_TABLES["cifar-100-lt"]
    return None
