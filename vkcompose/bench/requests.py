"""Count the API requests a benchmark causes, on the server side, by client and verb.

:class:`RequestCounter` is an ``APIServer(request_observer=...)``: it sees every request the
embedded API server receives and files it under ``(client, "verb resource")`` with the verbs of
kube-apiserver's audit log (``get``/``list``/``watch``/``create``/``update``/``patch``/
``delete``/``deletecollection``). The client is told apart by ``User-Agent``: the node runtime
sends ``vkcompose/<version>``, the benchmark's own load generator :data:`LOAD_USER_AGENT`.

>>> classify("GET", "/api/v1/namespaces/b/pods", {"watch": "1"})
('watch', 'pods')
>>> classify("PATCH", "/api/v1/namespaces/b/pods/p-1/status", {})
('patch', 'pods/status')
>>> classify("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n", {})
('update', 'leases')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from aiohttp import web

__all__ = ["LOAD_USER_AGENT", "NODE", "RequestCounter", "classify", "client_of"]

LOAD_USER_AGENT = "vkcompose-bench-load"
"""User-Agent of the benchmark's load generator (pod creates/deletes, watch, ceiling)."""

NODE = "node"
LOAD = "load"
OTHER = "other"

_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def classify(method: str, path: str, query: Mapping[str, str]) -> tuple[str, str]:
    """``(verb, resource)`` of a request, as kube-apiserver's audit log names them."""
    parts = [p for p in path.split("/") if p]
    watch = query.get("watch") in ("1", "true", "True")
    rest: list[str] = []
    if parts[:1] == ["api"] and len(parts) >= 2:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        rest = parts[3:]
    if rest[:1] == ["watch"]:
        watch = True
        rest = rest[1:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return ("get", path if parts[:1] not in (["api"], ["apis"]) else "discovery")
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    if method in ("GET", "HEAD"):
        verb = "watch" if watch else ("get" if named else "list")
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _METHOD_VERBS.get(method, method.lower())
    return verb, resource


def client_of(user_agent: str) -> str:
    """Which side sent a request: ``node``, ``load`` or ``other``."""
    if user_agent == LOAD_USER_AGENT:
        return LOAD
    if user_agent.startswith("vkcompose/"):
        return NODE
    return OTHER


class RequestCounter:
    """Counts requests by ``(client, "verb resource")``; cheap enough to leave on."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def observe(self, request: web.BaseRequest) -> None:
        """The ``request_observer`` hook of the embedded API server."""
        verb, resource = classify(request.method, request.path, request.query)
        client = client_of(request.headers.get("User-Agent", ""))
        self.counts[(client, f"{verb} {resource}")] += 1

    def snapshot(self) -> Counter[tuple[str, str]]:
        """A copy of the counts so far (subtract two snapshots to count a phase)."""
        return Counter(self.counts)
