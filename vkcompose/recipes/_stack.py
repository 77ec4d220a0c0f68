"""The middleware stack the built-in recipes share, in the documented order.

Outermost first (see ``docs/middlewares.md`` for why):

1. ``Redaction`` — remembers pods as submitted; redacts secret values from errors last.
2. ``Metrics`` — one count per op, after retries (served with ``--metrics-port``).
3. ``LogOps`` — one structured line per op (DEBUG level: quiet at 10,000 pods).
4. ``Tracing`` — one span per op; retries are span events.
5. ``Retry`` — full-jitter backoff within a shared budget and one 60 s deadline.
6. ``Timeout`` — bounds each attempt (streaming ops are exempt).
7. ``ContainerEnv`` — the kubelet's env, in the kubelet's order: ``DownwardAPI`` →
   ``ServiceLinks`` → ``ResolveConfigSources`` (field refs and service variables first, then
   ConfigMap/Secret values and the one final ``$(VAR)`` expansion), as one layer that compiles
   each container template once.
8. ``Volumes`` (process recipe) — materializes configMap/secret/downwardAPI/projected volumes.
9. ``redaction.learner()`` — innermost: learns the secret values the resolution produced.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vkcompose.middlewares.config_sources import SourceReader
from vkcompose.middlewares.container_env import ContainerEnv
from vkcompose.middlewares.metrics import Metrics
from vkcompose.middlewares.redaction import LogOps, Redaction, SecretRegistry
from vkcompose.middlewares.retry import Retry
from vkcompose.middlewares.service_links import ServiceReader
from vkcompose.middlewares.timeout import Timeout
from vkcompose.middlewares.tracing import Tracing
from vkcompose.middlewares.volumes.middleware import Volumes
from vkcompose.middlewares.volumes.tokens import TokenSource
from vkcompose.node.cluster import ClusterServices, ClusterTokens
from vkcompose.node.events import LateEventSink
from vkcompose.node.sources import ClusterSources
from vkcompose.pipeline import Middleware


def standard_middlewares(
    *,
    volumes_root: Path | None = None,
    sources: SourceReader | None = None,
    services: ServiceReader | None = None,
    tokens: TokenSource | None = None,
) -> list[Middleware]:
    """The default stack; with ``volumes_root``, pod volumes are materialized there.

    ``sources``, ``services`` and ``tokens`` default to the cluster-bound helpers the runtime
    feeds; benchmarks and tests pass static ones.
    """
    secrets = SecretRegistry()
    redaction = Redaction(secrets)
    sources = sources if sources is not None else ClusterSources()
    services = services if services is not None else ClusterServices()
    tokens = tokens if tokens is not None else ClusterTokens()
    events = LateEventSink()
    stack: list[Middleware] = [
        redaction,
        Metrics(),
        LogOps(secrets, level=logging.DEBUG),
        Tracing(redact=secrets.redact_text),
        Retry(deadline=60.0),
        Timeout(30.0, per_kind={"pod.delete": 120.0}),
        ContainerEnv(sources, services, events),
    ]
    if volumes_root is not None:
        stack.append(Volumes(volumes_root, sources, tokens=tokens, events=events, secrets=secrets))
    stack.append(redaction.learner())
    return stack
