"""Choosing parameters without clean data: the self-supervised scorer, a no-split CV,
molecular cross-validation, and the calibration helpers the demo and the CLI share."""

from ._calibration import (
    RankPathSearch,
    calibrate,
    calibrate_rank_path,
    format_table,
    results_rows,
)
from ._mcv import MolecularCrossValidationScorer
from ._scorer import SelfSupervisedScorer, self_supervised_loss
from ._split import FullSplit

__all__ = [
    "FullSplit",
    "MolecularCrossValidationScorer",
    "RankPathSearch",
    "SelfSupervisedScorer",
    "calibrate",
    "calibrate_rank_path",
    "format_table",
    "results_rows",
    "self_supervised_loss",
]
