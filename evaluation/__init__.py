"""Offline policy evaluation: estimators, a cross-fitted reward model, and reports.

Everything exported here works on plain numpy arrays (no gRPC, no server), so the replay CLI can
feed it from the SQL log, a Parquet export or a simulation alike. The log-facing modules are
imported on their own (they need SQLAlchemy, pyarrow): :mod:`evaluation.logdata` (streamed reads
of the joined log), :mod:`evaluation.replay` (progressive counterfactual replay),
:mod:`evaluation.summary` (estimates, comparisons, table/JSON/report), :mod:`evaluation.verdict`
(the one rule for "better" and the evaluability thresholds), :mod:`evaluation.export` (DSJson,
Parquet) and :mod:`evaluation.promote` (the promotion decision; ``cli.evaluate`` and
``cli.served`` run ``arbiter evaluate`` / ``export`` and talk to the server).
"""

from arbiter.evaluation._checks import EvaluationInputError
from arbiter.evaluation.estimators import (
    DM,
    DR,
    ESTIMATORS,
    IPS,
    SNDR,
    SNIPS,
    OffPolicyEstimator,
    SwitchDR,
    effective_sample_size,
    importance_weights,
)
from arbiter.evaluation.report_html import (
    Difference,
    Estimate,
    EvaluationReport,
    Headline,
    SegmentEstimate,
    WeightHistogram,
    cumulative_mean_curve,
    render_html,
    verdict_text,
)
from arbiter.evaluation.reward_model import RewardModel, fold_assignment

__all__ = [
    "DM",
    "DR",
    "ESTIMATORS",
    "IPS",
    "SNDR",
    "SNIPS",
    "Difference",
    "Estimate",
    "EvaluationInputError",
    "EvaluationReport",
    "Headline",
    "OffPolicyEstimator",
    "RewardModel",
    "SegmentEstimate",
    "SwitchDR",
    "WeightHistogram",
    "cumulative_mean_curve",
    "effective_sample_size",
    "fold_assignment",
    "importance_weights",
    "render_html",
    "verdict_text",
]
