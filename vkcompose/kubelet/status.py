"""``metav1.Status`` error responses of the kubelet API, and the mapping from vkcompose errors.

>>> status_body(404, "pod default/web not found")["reason"]
'NotFound'
>>> from vkcompose.errors import Unsupported
>>> http_status(Unsupported("no exec"))
501
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web

from vkcompose.errors import InvalidInput, NotFound, TemporaryError, Unsupported

__all__ = ["REASONS", "http_status", "status_body", "status_response"]

REASONS: Final = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    500: "InternalError",
    501: "NotImplemented",
    503: "ServiceUnavailable",
}


def status_body(code: int, message: str, *, reason: str | None = None) -> dict[str, Any]:
    """A failure ``Status`` with ``code`` and ``message``."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, "Unknown"),
        "code": code,
    }


def status_response(
    code: int, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    """An HTTP response carrying :func:`status_body`."""
    return web.Response(
        status=code,
        body=orjson.dumps(status_body(code, message)),
        content_type="application/json",
        headers=headers,
    )


def http_status(error: BaseException) -> int:
    """The HTTP status a pipeline error maps to (NotFound 404, InvalidInput 400, Unsupported
    501, TemporaryError 503, anything else 500)."""
    match error:
        case NotFound():
            return 404
        case InvalidInput():
            return 400
        case Unsupported():
            return 501
        case TemporaryError():
            return 503
    return 500
