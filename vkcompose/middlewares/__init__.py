"""Reusable middlewares: each module exposes a pure core first, then a thin adapter.

The recommended order (outermost first) and the reasons are in ``docs/middlewares.md``.
"""

from vkcompose.middlewares.circuit_breaker import CircuitBreaker
from vkcompose.middlewares.config_sources import ResolveConfigSources, StaticSources
from vkcompose.middlewares.container_env import ContainerEnv
from vkcompose.middlewares.downward_api import DownwardAPI
from vkcompose.middlewares.faults import FaultRule, Faults
from vkcompose.middlewares.limits import ConcurrencyLimit, RateLimit
from vkcompose.middlewares.metrics import Metrics, serve_metrics
from vkcompose.middlewares.redaction import (
    LearnSecrets,
    LogOps,
    RedactingFilter,
    RedactingSpanExporter,
    Redaction,
    SecretRegistry,
)
from vkcompose.middlewares.retry import Retry, RetryBudget, RetryPolicy
from vkcompose.middlewares.service_links import ServiceLinks, StaticServices
from vkcompose.middlewares.timeout import Timeout
from vkcompose.middlewares.timing import TimingRecorder, instrument
from vkcompose.middlewares.tracing import Tracing, configure_tracing
from vkcompose.middlewares.volumes import (
    FileSpec,
    KubeTokenSource,
    SourceSnapshot,
    TokenSource,
    VolumeMountError,
    Volumes,
    plan_volume,
    write_volume,
)

__all__ = [
    "CircuitBreaker",
    "ConcurrencyLimit",
    "ContainerEnv",
    "DownwardAPI",
    "FaultRule",
    "Faults",
    "FileSpec",
    "KubeTokenSource",
    "LearnSecrets",
    "LogOps",
    "Metrics",
    "RateLimit",
    "RedactingFilter",
    "RedactingSpanExporter",
    "Redaction",
    "ResolveConfigSources",
    "Retry",
    "RetryBudget",
    "RetryPolicy",
    "SecretRegistry",
    "ServiceLinks",
    "SourceSnapshot",
    "StaticServices",
    "StaticSources",
    "Timeout",
    "TimingRecorder",
    "TokenSource",
    "Tracing",
    "VolumeMountError",
    "Volumes",
    "configure_tracing",
    "instrument",
    "plan_volume",
    "serve_metrics",
    "write_volume",
]
