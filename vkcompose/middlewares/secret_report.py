"""What a resolver filled in from Secrets, handed to the redaction learner.

:class:`~vkcompose.middlewares.config_sources.ResolveConfigSources` knows, while it resolves a
pod, exactly which env values hold Secret data (``secretKeyRef``, ``envFrom`` ``secretRef``,
and literal values that refer to those through ``$(VAR)``). It publishes that as a
:class:`SecretReport` in :data:`SECRET_REPORT` for the rest of its ``call_next``, so that
:class:`~vkcompose.middlewares.redaction.LearnSecrets` can register those values directly
instead of comparing the resolved pod with the original one env entry by env entry.

The learner trusts a report only for the very pod object it describes (``report.pod is
op.pod``) and only when every Secret reference of the pod as submitted is among the references
the resolver itself resolved (``refs``); otherwise it falls back to learning by name.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping

from vkcompose.podspec import Pod

SecretRefs = Mapping[str, tuple[frozenset[str], tuple[str, ...]]]
"""Container name → (names of env vars declared with ``secretKeyRef``, ``envFrom``
``secretRef`` prefixes), as :func:`~vkcompose.middlewares.redaction.secret_env_refs` reports."""


class SecretReport:
    """The Secret data a resolver put into ``pod``.

    ``refs`` are the Secret references it resolved (per container, the ``secretKeyRef`` var
    names and the ``envFrom`` ``secretRef`` prefixes); ``values`` are the env values of ``pod``
    that hold Secret data, exactly as they appear in the pod.
    """

    __slots__ = ("pod", "refs", "values")

    def __init__(self, pod: Pod, refs: SecretRefs, values: tuple[str, ...]) -> None:
        self.pod = pod
        self.refs = refs
        self.values = values

    def __repr__(self) -> str:
        return f"SecretReport(containers={sorted(self.refs)}, values={len(self.values)})"


SECRET_REPORT: contextvars.ContextVar[SecretReport | None] = contextvars.ContextVar(
    "vkcompose_secret_report", default=None
)
"""The report of the innermost resolver currently running ``call_next`` (``None`` outside)."""


__all__ = ["SECRET_REPORT", "SecretRefs", "SecretReport"]
