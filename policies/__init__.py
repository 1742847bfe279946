"""Arbiter's learning core: bandit policies behind one small protocol (see ``policies.base``).

numpy, msgspec (the decision types) and vowpal_wabbit_next; never imports grpc, sqlalchemy,
protos or server.
"""

from arbiter.policies.base import (
    Attributing,
    BlockScoring,
    Decision,
    Explaining,
    Explanation,
    ExplanationTable,
    Namespace,
    Policy,
    PolicyConfigError,
    Scores,
    SkippedUpdate,
)
from arbiter.policies.registry import POLICIES, create, restore

__all__ = ["POLICIES", "Attributing", "BlockScoring", "Decision", "Explaining", "Explanation",
           "ExplanationTable", "Namespace",
           "Policy", "PolicyConfigError", "Scores", "SkippedUpdate", "create", "restore"]
