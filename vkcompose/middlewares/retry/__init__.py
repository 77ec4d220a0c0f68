"""Retry (tower style): classification and backoff policy, a shared budget, the middleware.

::

    from vkcompose.middlewares.retry import Retry, RetryBudget, RetryPolicy

    shared = RetryBudget(ttl=10.0, min_per_sec=10, retry_percent=0.2)
    retry = Retry(RetryPolicy(max_attempts=4), budget=shared, deadline=30.0)
    pipeline = compose(Tracing(), retry, DownwardAPI(), backend=backend)
"""

from vkcompose.middlewares.retry.budget import RetryBudget
from vkcompose.middlewares.retry.middleware import ATTEMPT_EVENT, Retry, error_type
from vkcompose.middlewares.retry.policy import (
    NEVER_RETRY,
    RetryPolicy,
    backoff_delay,
    plan_retry,
    pushback,
)

__all__ = [
    "ATTEMPT_EVENT",
    "NEVER_RETRY",
    "Retry",
    "RetryBudget",
    "RetryPolicy",
    "backoff_delay",
    "error_type",
    "plan_retry",
    "pushback",
]
