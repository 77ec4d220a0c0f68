"""Pure helpers over pod JSON (plain dicts as the API sends them). No I/O lives here."""

from typing import Any

JSON = dict[str, Any]
"""A Kubernetes object as a plain JSON dict."""

Pod = dict[str, Any]
"""A pod as a plain JSON dict (``metadata``, ``spec``, ``status``)."""

__all__ = ["JSON", "Pod"]
