"""Kubernetes ``Status`` error bodies, raised as :class:`APIError` and rendered by the server."""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIError",
    "already_exists",
    "bad_request",
    "conflict",
    "expired",
    "forbidden",
    "invalid",
    "method_not_allowed",
    "not_found",
    "path_not_found",
    "status_body",
    "success_status",
    "too_large",
    "unauthorized",
    "unsupported_media_type",
]

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    504: "Timeout",
}


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``meta/v1 Status`` failure body as kube-apiserver writes it."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def success_status(name: str, kind: str, uid: str | None = None) -> dict[str, Any]:
    """The ``Status`` kube-apiserver returns for a completed delete of most resources."""
    details: dict[str, Any] = {"name": name, "kind": kind}
    if uid:
        details["uid"] = uid
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


class APIError(Exception):
    """An error answered with a Kubernetes ``Status`` body and HTTP ``code``."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        """The ``Status`` JSON body of this error."""
        return status_body(self.code, self.reason, self.message, self.details)


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(name: str, resource: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def not_found(resource: str, name: str, group: str = "") -> APIError:
    """``<resource> "<name>" not found`` (404 NotFound)."""
    return APIError(
        404,
        f'{_qualified(resource, group)} "{name}" not found',
        details=_details(name, resource, group),
    )


def path_not_found() -> APIError:
    """404 for a path that names no resource."""
    return APIError(404, "the server could not find the requested resource", details={})


def already_exists(resource: str, name: str, group: str = "") -> APIError:
    """``<resource> "<name>" already exists`` (409 AlreadyExists)."""
    return APIError(
        409,
        f'{_qualified(resource, group)} "{name}" already exists',
        reason="AlreadyExists",
        details=_details(name, resource, group),
    )


def conflict(resource: str, name: str, why: str, group: str = "") -> APIError:
    """``Operation cannot be fulfilled on ...`` (409 Conflict)."""
    return APIError(
        409,
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        details=_details(name, resource, group),
    )


STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> APIError:
    """``<Kind> "<name>" is invalid: ...`` (422 Invalid) with ``details.causes``."""
    summary = ", ".join(
        f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes
    )
    if len(causes) > 1:
        summary = "[" + summary + "]"
    details: dict[str, Any] = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = causes
    return APIError(
        422, f'{_qualified(kind, group)} "{name}" is invalid: {summary}', details=details
    )


def bad_request(message: str) -> APIError:
    """400 BadRequest."""
    return APIError(400, message)


def unauthorized() -> APIError:
    """401 Unauthorized, as for a request without valid credentials."""
    return APIError(401, "Unauthorized")


def forbidden(message: str, resource: str = "", name: str = "", group: str = "") -> APIError:
    """403 Forbidden."""
    return APIError(403, message, details=_details(name, resource, group) if resource else None)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> APIError:
    """405 MethodNotAllowed."""
    return APIError(405, message, details={})


def expired(message: str) -> APIError:
    """410 Gone with reason Expired (too old resourceVersion)."""
    return APIError(410, message, reason="Expired")


def too_large(limit: int) -> APIError:
    """413 RequestEntityTooLarge."""
    return APIError(413, f"Request entity too large: limit is {limit}")


def unsupported_media_type(content_type: str) -> APIError:
    """415 UnsupportedMediaType."""
    return APIError(
        415,
        f"the body of the request was in an unknown format - accepted media types "
        f"include: application/json-patch+json, application/merge-patch+json, "
        f"application/apply-patch+yaml, application/strategic-merge-patch+json "
        f"(got {content_type})",
    )
