"""Score-based generative models: noise levels, denoising score matching, Langevin sampling."""

from gflow.score.dsm import dsm_loss
from gflow.score.exact_score import ExactScore, gaussian_score, mixture_score
from gflow.score.langevin import AnnealedLangevin, TextProgress, step_sizes
from gflow.score.model import ScoreModel

__all__ = ["AnnealedLangevin", "ExactScore", "ScoreModel", "TextProgress", "dsm_loss",
           "gaussian_score", "mixture_score", "step_sizes"]
