"""Evaluation of models on tasks: :mod:`~xlt.evaluation.scoring` (zero-shot
log-likelihood scoring, :func:`evaluate`) and :mod:`~xlt.evaluation.lm_eval` (results and
samples files in lm-evaluation-harness format). Loads no torch until a model is scored."""

from xlt.evaluation.lm_eval import write_lm_eval
from xlt.evaluation.scoring import encode_pair, evaluate, loglikelihoods

__all__ = ["encode_pair", "evaluate", "loglikelihoods", "write_lm_eval"]
