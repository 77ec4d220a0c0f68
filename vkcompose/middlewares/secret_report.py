"""What a resolver filled in from Secrets, handed to the redaction learner.

:class:`~vkcompose.middlewares.config_sources.ResolveConfigSources` knows, while it resolves a
pod, exactly which env values hold Secret data (``secretKeyRef``, ``envFrom`` ``secretRef``,
and literal values that refer to those through ``$(VAR)``). It publishes that as a
:class:`SecretReport` in :data:`SECRET_REPORT` for the rest of its ``call_next``, so that
:class:`~vkcompose.middlewares.redaction.LearnSecrets` can register those values directly
instead of comparing the resolved pod with the original one env entry by env entry.

The learner trusts a report only for the very pod object it describes (``report.pod is
op.pod``) and only when every Secret reference of the pod as submitted reached the resolver:
either the resolver's input (``report.source``) was made from the submitted pod only by
rewrites that keep every Secret reference — :class:`~vkcompose.middlewares.downward_api.
DownwardAPI` and :class:`~vkcompose.middlewares.service_links.ServiceLinks` record theirs in
:data:`REFS_KEPT` while they call the rest of the pipeline (:func:`derives_from`) — or, failing
that, every reference of the submitted pod is among those the resolver resolved (``refs``).
Otherwise it falls back to learning by name.
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

    __slots__ = ("pod", "refs", "source", "values")

    def __init__(
        self, pod: Pod, refs: SecretRefs, values: tuple[str, ...], source: Pod | None = None
    ) -> None:
        self.pod = pod
        self.refs = refs
        self.values = values
        self.source = source
        """The pod the resolver was given (``None``: unknown)."""

    def __repr__(self) -> str:
        return f"SecretReport(containers={sorted(self.refs)}, values={len(self.values)})"


SECRET_REPORT: contextvars.ContextVar[SecretReport | None] = contextvars.ContextVar(
    "vkcompose_secret_report", default=None
)
"""The report of the innermost resolver currently running ``call_next`` (``None`` outside)."""


RefsKept = tuple[Pod, Pod, "RefsKept | None"]
"""``(rewritten pod, the pod it was made from, the enclosing rewrite)``."""

REFS_KEPT: contextvars.ContextVar[RefsKept | None] = contextvars.ContextVar(
    "vkcompose_secret_refs_kept", default=None
)
"""Pod rewrites in progress (innermost first) that kept every Secret reference: each container
has the same ``secretKeyRef`` env entries and ``envFrom`` ``secretRef`` sources as before."""


def derives_from(pod: Pod, original: Pod) -> bool:
    """Whether ``pod`` is ``original``, or was made from it only by rewrites in
    :data:`REFS_KEPT` (so it holds exactly the Secret references of ``original``)."""
    link = REFS_KEPT.get()
    while pod is not original:
        while link is not None and link[0] is not pod:
            link = link[2]
        if link is None:
            return False
        pod, link = link[1], link[2]
    return True


__all__ = ["REFS_KEPT", "SECRET_REPORT", "RefsKept", "SecretRefs", "SecretReport", "derives_from"]
