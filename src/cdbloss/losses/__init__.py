"""The CDB loss and the baseline losses, each a function plus a thin module."""

from cdbloss.losses._common import REDUCTIONS, Reduction
from cdbloss.losses.base import ClassWeightedLoss
from cdbloss.losses.cdb import CDBLoss, cdb_cross_entropy, cdb_loss, difficulty_offset
from cdbloss.losses.class_balanced import ClassBalancedLoss, class_balanced_loss
from cdbloss.losses.cross_entropy import (
    CrossEntropyLoss,
    InverseFrequencyLoss,
    inverse_frequency_cross_entropy,
    weighted_cross_entropy,
)
from cdbloss.losses.dbm import DBMLoss, dbm_class_margins, dbm_loss
from cdbloss.losses.equalization import EqualizationLoss, equalization_loss
from cdbloss.losses.focal import FocalLoss, focal_loss
from cdbloss.losses.ldam import LDAMLoss, drw_weights, ldam_loss, ldam_margins
from cdbloss.losses.logit_adjusted import (
    BalancedSoftmaxLoss,
    LogitAdjustedLoss,
    balanced_softmax_loss,
    logit_adjusted_loss,
)
from cdbloss.losses.multilabel import (
    AsymmetricLoss,
    BCELoss,
    ClassBalancedBCELoss,
    DistributionBalancedLoss,
    FocalBCELoss,
    MultiLabelCDBLoss,
    asymmetric_loss,
    binary_focal_loss,
    distribution_balanced_loss,
)
from cdbloss.losses.registry import (
    LOSSES,
    build_loss,
    is_multilabel,
    register_loss,
    wants_difficulty,
    wants_epoch,
)

__all__ = [
    "LOSSES",
    "REDUCTIONS",
    "AsymmetricLoss",
    "BCELoss",
    "BalancedSoftmaxLoss",
    "CDBLoss",
    "ClassBalancedBCELoss",
    "ClassBalancedLoss",
    "ClassWeightedLoss",
    "CrossEntropyLoss",
    "DBMLoss",
    "DistributionBalancedLoss",
    "EqualizationLoss",
    "FocalBCELoss",
    "FocalLoss",
    "InverseFrequencyLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "MultiLabelCDBLoss",
    "Reduction",
    "asymmetric_loss",
    "balanced_softmax_loss",
    "binary_focal_loss",
    "build_loss",
    "cdb_cross_entropy",
    "cdb_loss",
    "class_balanced_loss",
    "dbm_class_margins",
    "dbm_loss",
    "difficulty_offset",
    "distribution_balanced_loss",
    "drw_weights",
    "equalization_loss",
    "focal_loss",
    "inverse_frequency_cross_entropy",
    "is_multilabel",
    "ldam_loss",
    "ldam_margins",
    "logit_adjusted_loss",
    "register_loss",
    "wants_difficulty",
    "wants_epoch",
    "weighted_cross_entropy",
]
