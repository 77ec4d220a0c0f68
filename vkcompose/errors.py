"""The error taxonomy every middleware and backend speaks.

Errors carry a short machine ``reason`` (as Kubernetes status reasons do) and a human message.
Messages must never contain secret values.

>>> raise TemporaryError("backend busy", delay=2.0)
Traceback (most recent call last):
...
vkcompose.errors.TemporaryError: backend busy
"""

from __future__ import annotations


class VKComposeError(Exception):
    """Base class of all vkcompose errors.

    ``reason`` is a CamelCase word in the style of Kubernetes status reasons; subclasses set a
    default and callers may override it (e.g. ``CreateContainerConfigError``).
    """

    default_reason = "ProviderFailed"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason


class NotFound(VKComposeError):
    """The pod, container or object the operation names does not exist."""

    default_reason = "NotFound"


class InvalidInput(VKComposeError):
    """The operation or the pod it carries is invalid; retrying will not help until it changes."""

    default_reason = "InvalidInput"


class Unsupported(VKComposeError):
    """The backend does not offer the operation (HTTP 501 at the kubelet API)."""

    default_reason = "Unsupported"


class TemporaryError(VKComposeError):
    """A transient failure: retrying may succeed. ``delay`` is the backend's pushback in seconds."""

    default_reason = "ProviderFailed"

    def __init__(
        self, message: str = "", *, delay: float | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.delay = delay


class PermanentError(VKComposeError):
    """A failure that will not go away by retrying the same operation."""

    default_reason = "ProviderFailed"


__all__ = [
    "InvalidInput",
    "NotFound",
    "PermanentError",
    "TemporaryError",
    "Unsupported",
    "VKComposeError",
]
