"""cdbloss: the Class-wise Difficulty-Balanced loss (Sinha et al., ACCV 2020) for PyTorch.

Five lines in your own loop::

    loss_fn = cdbloss.CDBLoss(num_classes=C)          # weights start uniform
    tracker = cdbloss.ClassDifficulty(num_classes=C)
    ...  # train an epoch with loss_fn(logits, target)
    tracker.reset(); [tracker.update(model(x), y) for x, y in val_loader]
    loss_fn.update_weights(tracker)                   # w_c = (1 - A_c) ** tau
"""

from __future__ import annotations

from cdbloss.cdb import CDBWeighting, EmptyTrackerWarning, SwingWarning
from cdbloss.decoupled import (
    ClassScale,
    MaxNorm,
    class_balanced_indices,
    max_norm_,
    posthoc_logit_adjust,
    tau_normalize,
)
from cdbloss.difficulty import ClassDifficulty
from cdbloss.losses import (
    LOSSES,
    REDUCTIONS,
    BalancedSoftmaxLoss,
    CDBLoss,
    ClassBalancedLoss,
    CrossEntropyLoss,
    DBMLoss,
    EqualizationLoss,
    FocalLoss,
    InverseFrequencyLoss,
    LDAMLoss,
    LogitAdjustedLoss,
    MultiLabelCDBLoss,
    balanced_softmax_loss,
    build_loss,
    cdb_cross_entropy,
    cdb_loss,
    class_balanced_loss,
    dbm_loss,
    difficulty_offset,
    drw_weights,
    equalization_loss,
    focal_loss,
    inverse_frequency_cross_entropy,
    ldam_loss,
    ldam_margins,
    logit_adjusted_loss,
    weighted_cross_entropy,
)
from cdbloss.multilabel import MultiLabelDifficulty
from cdbloss.sampler import CDBSampler
from cdbloss.weighting import (
    cdb_weights,
    class_balanced_weights,
    dynamic_tau,
    inverse_frequency_weights,
    normalize_weights,
)

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "REDUCTIONS",
    "BalancedSoftmaxLoss",
    "CDBLoss",
    "CDBSampler",
    "CDBWeighting",
    "ClassBalancedLoss",
    "ClassDifficulty",
    "ClassScale",
    "CrossEntropyLoss",
    "DBMLoss",
    "EmptyTrackerWarning",
    "EqualizationLoss",
    "FocalLoss",
    "InverseFrequencyLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "MaxNorm",
    "MultiLabelCDBLoss",
    "MultiLabelDifficulty",
    "SwingWarning",
    "__version__",
    "balanced_softmax_loss",
    "build_loss",
    "cdb_cross_entropy",
    "cdb_loss",
    "cdb_weights",
    "class_balanced_indices",
    "class_balanced_loss",
    "class_balanced_weights",
    "dbm_loss",
    "difficulty_offset",
    "drw_weights",
    "dynamic_tau",
    "equalization_loss",
    "focal_loss",
    "inverse_frequency_cross_entropy",
    "inverse_frequency_weights",
    "ldam_loss",
    "ldam_margins",
    "logit_adjusted_loss",
    "max_norm_",
    "normalize_weights",
    "posthoc_logit_adjust",
    "tau_normalize",
    "weighted_cross_entropy",
]
