"""Arbiter's learning core: bandit policies behind one small protocol (see ``policies.base``).

numpy, msgspec (the decision types) and vowpal_wabbit_next; never imports grpc, sqlalchemy,
protos or server.
"""

from arbiter.policies.base import Decision, Namespace, Policy, PolicyConfigError, SkippedUpdate
from arbiter.policies.registry import POLICIES, create, restore

__all__ = ["POLICIES", "Decision", "Namespace", "Policy", "PolicyConfigError", "SkippedUpdate", "create",
           "restore"]
