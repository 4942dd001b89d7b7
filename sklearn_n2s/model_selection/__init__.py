"""Choosing parameters without clean data: the self-supervised scorer, a no-split CV,
molecular cross-validation, the calibration helpers the demo and the CLI share, and
AutoDenoiser, which chooses the denoising family by the self-supervised loss."""

from ._auto import DEFAULT_GRIDS, AutoDenoiser, NoiseMultiples, mixture_risk, mixture_weight
from ._calibration import (
    RankPathSearch,
    calibrate,
    calibrate_rank_path,
    format_table,
    results_rows,
)
from ._mcv import MolecularCrossValidationScorer
from ._scorer import EstimatedRiskScorer, SelfSupervisedScorer, self_supervised_loss
from ._split import FullSplit

__all__ = [
    "DEFAULT_GRIDS",
    "AutoDenoiser",
    "EstimatedRiskScorer",
    "FullSplit",
    "MolecularCrossValidationScorer",
    "NoiseMultiples",
    "RankPathSearch",
    "SelfSupervisedScorer",
    "calibrate",
    "calibrate_rank_path",
    "format_table",
    "mixture_risk",
    "mixture_weight",
    "results_rows",
    "self_supervised_loss",
]
