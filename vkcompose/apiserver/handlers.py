"""The HTTP layer: path routing from the resource table, verbs, watch streams, Status errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
import yaml
from aiohttp import web

from vkcompose.apiserver import discovery, errors, protobuf, tables
from vkcompose.apiserver.auth import ANONYMOUS, Authenticator, UserInfo, allowed, forbidden_message
from vkcompose.apiserver.auth import user_from_peercert as _user_from_peercert
from vkcompose.apiserver.errors import APIError
from vkcompose.apiserver.registry import Matcher, Registry
from vkcompose.apiserver.resources import ResourceTable, ResourceType
from vkcompose.apiserver.watch import Event, Expired, Subscription, WatchHub
from vkcompose.podspec import selectors

__all__ = ["MAX_BODY", "APIHandler", "Reviews"]

log = logging.getLogger(__name__)

MAX_BODY = 3 * 1024 * 1024
_JSON = "application/json"
_PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
_WATCH_DEFAULT_TIMEOUT = 1800.0


def _json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=_JSON)


def _raw_response(raw: bytes, status: int = 200) -> web.Response:
    return web.Response(body=raw, status=status, content_type=_JSON)


def error_response(err: APIError) -> web.Response:
    """A ``Status`` response for ``err``."""
    return _json_response(err.body(), err.code)


class Reviews:
    """Hooks for TokenReview, SubjectAccessReview and TokenRequest (set by the server)."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator
        #: review_token(token, audiences) -> user or None (TokenReview)
        self.review_token: Callable[[str, list[str] | None], UserInfo | None] | None = None
        #: issue(namespace, service_account, sa_uid, audiences, expiration_seconds,
        #:       bound_object) -> (token, expiration RFC3339)
        self.issue_token: Callable[..., tuple[str, str]] | None = None


class _Target:
    """A parsed request path."""

    __slots__ = ("group", "name", "namespace", "rt", "subresource", "version", "watch_prefix")

    def __init__(
        self,
        rt: ResourceType,
        group: str,
        version: str,
        namespace: str | None,
        name: str,
        subresource: str,
        watch_prefix: bool,
    ) -> None:
        self.rt = rt
        self.group = group
        self.version = version
        self.namespace = namespace
        self.name = name
        self.subresource = subresource
        self.watch_prefix = watch_prefix


def _wants_table(request: web.BaseRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=Table" in accept


def _parse_bool(value: str | None) -> bool:
    return value in ("true", "1", "True")


class APIHandler:
    """The aiohttp request handler of the embedded API server."""

    def __init__(
        self,
        registry: Registry,
        hub: WatchHub,
        table: ResourceTable,
        authenticator: Authenticator,
        *,
        server_address: Callable[[], str],
        bookmark_interval: float = 60.0,
        require_auth: bool = True,
        reviews: Reviews | None = None,
    ) -> None:
        self.registry = registry
        self.hub = hub
        self.table = table
        self.authenticator = authenticator
        self.server_address = server_address
        self.bookmark_interval = bookmark_interval
        self.require_auth = require_auth
        self.reviews = reviews or Reviews(authenticator)
        self._watches: set[Subscription] = set()
        self._closing = False
        self._openapi_index: bytes | None = None

    # ------------------------------------------------------------------ app
    def make_server(self) -> web.Server:
        """The low-level aiohttp server (routing is done here, from the resource table)."""
        return web.Server(self.handle, handler_cancellation=True, access_log=None)

    def close_watches(self) -> None:
        """End every open watch stream (server shutdown)."""
        self._closing = True
        for sub in list(self._watches):
            sub.terminate()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Entry point: authenticate, route, turn errors into ``Status`` bodies."""
        try:
            user = self._authenticate(request)
            return await self._route(request, user)
        except APIError as err:
            return error_response(err)
        except web.HTTPRequestEntityTooLarge:
            return error_response(errors.too_large(MAX_BODY))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.path)
            return error_response(
                APIError(500, "an internal error occurred", reason="InternalError")
            )

    def _authenticate(self, request: web.BaseRequest) -> UserInfo:
        auth = request.headers.get("Authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                user = self.authenticator.authenticate_token(token.strip())
                if user is not None:
                    return user
            raise errors.unauthorized()
        transport = request.transport
        if transport is not None:
            user = _user_from_peercert(transport.get_extra_info("peercert"))
            if user is not None:
                return user
        if self.require_auth and request.path not in _PUBLIC_PATHS:
            raise errors.unauthorized()
        return ANONYMOUS

    def _authorize(
        self,
        user: UserInfo,
        verb: str,
        rt: ResourceType | None,
        namespace: str,
        path: str,
        name: str = "",
    ) -> None:
        if user is ANONYMOUS and (not self.require_auth or path in _PUBLIC_PATHS):
            return
        resource = rt.plural if rt else ""
        if not allowed(user, verb, resource, namespace):
            group = rt.group if rt else ""
            raise errors.forbidden(
                forbidden_message(user, verb, resource, group, namespace, path),
                resource,
                name,
                group,
            )

    # ------------------------------------------------------------------ routing
    async def _route(self, request: web.BaseRequest, user: UserInfo) -> web.StreamResponse:
        path = request.path
        parts = [p for p in path.split("/") if p]
        method = request.method
        if not parts or parts[0] not in ("api", "apis"):
            self._authorize(user, "get", None, "", path)
            return self._non_resource(path, parts, method)
        if parts[0] == "api":
            if len(parts) == 1:
                self._authorize(user, "get", None, "", path)
                return _json_response(discovery.api_versions(self.server_address()))
            group, version, rest = "", parts[1], parts[2:]
            if version != "v1":
                raise errors.path_not_found()
        else:
            if len(parts) == 1:
                self._authorize(user, "get", None, "", path)
                return _json_response(discovery.api_group_list(self.table))
            group = parts[1]
            if group not in self.table.group_versions() or not group:
                raise errors.path_not_found()
            if len(parts) == 2:
                self._authorize(user, "get", None, "", path)
                return _json_response(discovery.api_group(self.table, group))
            version, rest = parts[2], parts[3:]
            if version not in self.table.group_versions()[group]:
                raise errors.path_not_found()
        if not rest:
            self._authorize(user, "get", None, "", path)
            if method != "GET":
                raise errors.method_not_allowed()
            return _json_response(discovery.api_resource_list(self.table, group, version))
        target = self._target(group, version, rest)
        return await self._serve(request, user, target)

    def _target(self, group: str, version: str, rest: list[str]) -> _Target:
        watch_prefix = False
        if rest[0] == "watch":
            watch_prefix = True
            rest = rest[1:]
            if not rest:
                raise errors.path_not_found()
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            inner = self.table.lookup(group, version, rest[2])
            if inner is not None and inner.namespaced:
                namespace = rest[1]
                rest = rest[2:]
        rt = self.table.lookup(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise errors.path_not_found()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in rt.subresources:
            raise errors.path_not_found()
        if rt.namespaced and name and namespace is None:
            raise errors.path_not_found()
        return _Target(rt, group, version, namespace, name, sub, watch_prefix)

    def _non_resource(self, path: str, parts: list[str], method: str) -> web.StreamResponse:
        if method not in ("GET", "HEAD"):
            raise errors.path_not_found()
        if path == "/version":
            return _json_response(discovery.version_info())
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if parts[:2] == ["openapi", "v3"]:
            if len(parts) == 2:
                if self._openapi_index is None:
                    self._openapi_index = orjson.dumps(discovery.openapi_v3_index(self.table))
                return _raw_response(self._openapi_index)
            rest = parts[2:]
            if rest[0] == "api" and len(rest) == 2:
                group, version = "", rest[1]
            elif rest[0] == "apis" and len(rest) == 3:
                group, version = rest[1], rest[2]
            else:
                raise errors.path_not_found()
            if version not in self.table.group_versions().get(group, ()):
                raise errors.path_not_found()
            return _json_response(discovery.openapi_v3_document(self.table, group, version))
        if not parts:
            paths = [
                "/api",
                "/api/v1",
                "/apis",
                "/healthz",
                "/livez",
                "/openapi/v3",
                "/readyz",
                "/version",
            ]
            for group, versions in self.table.group_versions().items():
                if group:
                    paths += [f"/apis/{group}"] + [f"/apis/{group}/{v}" for v in versions]
            return _json_response({"paths": sorted(paths)})
        raise errors.path_not_found()

    # ------------------------------------------------------------------ verbs
    async def _serve(
        self, request: web.BaseRequest, user: UserInfo, t: _Target
    ) -> web.StreamResponse:
        method = request.method
        rt = t.rt
        q = request.query
        ns = t.namespace or ""
        path = request.path
        if _parse_bool(q.get("dryRun")) or q.get("dryRun") == "All":
            raise errors.bad_request("dryRun is not supported by this server")
        if rt.virtual:
            if method != "POST" or t.name:
                raise errors.method_not_allowed()
            self._authorize(user, "create", rt, ns, path)
            return await self._review(request, user, t)
        if method in ("GET", "HEAD"):
            is_watch = t.watch_prefix or _parse_bool(q.get("watch"))
            if not t.name:
                verb = "watch" if is_watch else "list"
                self._authorize(user, verb, rt, ns, path)
                match = self._matcher(rt, q.get("labelSelector", ""), q.get("fieldSelector", ""))
                if is_watch:
                    return await self._watch(request, rt, t.namespace, match)
                return self._list(request, rt, t.namespace, match)
            if is_watch:
                self._authorize(user, "watch", rt, ns, path, t.name)
                name = t.name
                base = self._matcher(rt, q.get("labelSelector", ""), q.get("fieldSelector", ""))

                def by_name(obj: dict[str, Any]) -> bool:
                    return bool(obj["metadata"].get("name") == name and (base is None or base(obj)))

                return await self._watch(request, rt, t.namespace, by_name)
            if t.subresource not in ("", "status"):
                raise errors.method_not_allowed()
            self._authorize(user, "get", rt, ns, path, t.name)
            stored = self.registry.get(rt, ns, t.name)
            if _wants_table(request):
                return self._table_response(request, rt, [stored.obj], stored.rv)
            return _raw_response(stored.raw)
        if method == "POST":
            if t.name and t.subresource in ("binding", "eviction", "token"):
                self._authorize(user, "create", rt, ns, path, t.name)
                return await self._post_subresource(request, t)
            if t.name:
                raise errors.method_not_allowed()
            if rt.namespaced and t.namespace is None:
                raise errors.method_not_allowed()
            self._authorize(user, "create", rt, ns, path)
            body = self.registry.check_body(rt, await self._read_body(request), t.namespace)
            stored = self.registry.create(rt, ns, body)
            return _raw_response(stored.raw, 201)
        if method == "PUT":
            if not t.name or t.subresource not in ("", "status", "finalize"):
                raise errors.method_not_allowed()
            self._authorize(user, "update", rt, ns, path, t.name)
            body = self.registry.check_body(rt, await self._read_body(request), t.namespace)
            stored = self.registry.update(rt, ns, t.name, body, t.subresource)
            return _raw_response(stored.raw)
        if method == "PATCH":
            if not t.name or t.subresource not in ("", "status"):
                raise errors.method_not_allowed()
            self._authorize(user, "patch", rt, ns, path, t.name)
            raw = await self._read_raw(request)
            stored = self.registry.patch(
                rt, ns, t.name, request.headers.get("Content-Type", ""), raw, t.subresource
            )
            return _raw_response(stored.raw)
        if method == "DELETE":
            if t.subresource:
                raise errors.method_not_allowed()
            options = await self._delete_options(request)
            if not t.name:
                self._authorize(user, "deletecollection", rt, ns, path)
                match = self._matcher(rt, q.get("labelSelector", ""), q.get("fieldSelector", ""))
                deleted = self.registry.delete_collection(rt, t.namespace, match, options)
                return self._list_response(
                    rt, [s.raw for s in deleted], self.registry.storage.revision(), None, None
                )
            self._authorize(user, "delete", rt, ns, path, t.name)
            stored, gone = self.registry.delete(rt, ns, t.name, options)
            if (rt.plural == "pods" and not rt.group) or not gone:
                return _raw_response(stored.raw)
            meta = stored.obj["metadata"]
            return _json_response(errors.success_status(meta["name"], rt.plural, meta.get("uid")))
        raise errors.method_not_allowed()

    def _matcher(self, rt: ResourceType, label_s: str, field_s: str) -> Matcher | None:
        if not label_s and not field_s:
            return None
        try:
            ls = selectors.parse_label_selector(label_s) if label_s else None
        except selectors.SelectorError as exc:
            raise errors.bad_request(f"unable to parse requirement: {exc}") from None
        try:
            fs = selectors.field_selector_for(rt.kind, field_s) if field_s else None
        except selectors.SelectorError as exc:
            raise errors.bad_request(str(exc)) from None  # e.g. field label not supported: x
        fields = None if fs is None else field_matcher(rt.kind, fs)

        def match(obj: dict[str, Any]) -> bool:
            if ls is not None and not ls.matches((obj.get("metadata") or {}).get("labels") or {}):
                return False
            return fields is None or fields(obj)

        return match

    # ------------------------------------------------------------------ bodies
    async def _read_raw(self, request: web.BaseRequest) -> bytes:
        length = request.content_length
        if length is not None and length > MAX_BODY:
            raise errors.too_large(MAX_BODY)
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY:
                raise errors.too_large(MAX_BODY)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _read_body(self, request: web.BaseRequest) -> Any:
        raw = await self._read_raw(request)
        ctype = request.headers.get("Content-Type", _JSON).split(";")[0].strip().lower()
        if not raw.strip():
            raise errors.bad_request("the request body is empty")
        if ctype in ("application/yaml", "application/apply-patch+yaml"):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise errors.bad_request(f"error decoding YAML: {exc}") from None
        if ctype == protobuf.CONTENT_TYPE:
            return protobuf.request_body(raw)
        if ctype not in (_JSON, "*/*", ""):
            raise APIError(
                415,
                f"the body of the request was in an unknown format - accepted "
                f"media types include: application/json, application/yaml "
                f"(got {ctype})",
            )
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(
                f"the object provided is unrecognized: json parse error: {exc}"
            ) from None

    async def _delete_options(self, request: web.BaseRequest) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if request.can_read_body:
            raw = await self._read_raw(request)
            if raw.strip():
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise errors.bad_request(f"error decoding DeleteOptions: {exc}") from None
                if not isinstance(body, dict):
                    raise errors.bad_request("DeleteOptions must be a JSON object")
                options.update(body)
        q = request.query
        if "gracePeriodSeconds" in q:
            try:
                options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            except ValueError:
                raise errors.bad_request("gracePeriodSeconds must be an integer") from None
        if "propagationPolicy" in q:
            options["propagationPolicy"] = q["propagationPolicy"]
        return options

    # ------------------------------------------------------------------ list / tables
    def _list(
        self,
        request: web.BaseRequest,
        rt: ResourceType,
        namespace: str | None,
        match: Matcher | None,
    ) -> web.StreamResponse:
        q = request.query
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise errors.bad_request("limit must be an integer") from None
        rv_param = q.get("resourceVersion", "")
        if rv_param and not rv_param.isdigit():
            raise errors.bad_request(f"invalid resource version: {rv_param}")
        result = self.registry.list(
            rt, namespace, match=match, limit=limit, continue_=q.get("continue", "")
        )
        if _wants_table(request):
            return self._table_response(
                request,
                rt,
                [s.obj for s in result.items],
                result.rv,
                result.continue_,
                result.remaining,
            )
        return self._list_response(
            rt, [s.raw for s in result.items], result.rv, result.continue_, result.remaining
        )

    def _list_response(
        self,
        rt: ResourceType,
        raws: list[bytes],
        rv: int,
        continue_: str | None,
        remaining: int | None,
    ) -> web.Response:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if continue_:
            meta["continue"] = continue_
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        head = (
            b'{"kind":"'
            + rt.list_kind.encode()
            + b'","apiVersion":"'
            + rt.group_version.encode()
            + b'","metadata":'
            + orjson.dumps(meta)
            + b',"items":['
        )
        parts = [head]
        for raw in raws:
            parts.append(raw)
            parts.append(b",")
        if raws:
            parts.pop()
        parts.append(b"]}")
        return _raw_response(b"".join(parts))  # one copy of a possibly large body

    def _table(
        self, request: web.BaseRequest, rt: ResourceType, objects: list[dict[str, Any]]
    ) -> dict[str, Any]:
        include = request.query.get("includeObject") or "Metadata"
        if include not in ("None", "Metadata", "Object"):
            raise errors.bad_request(f"includeObject: unsupported value {include!r}")
        return tables.to_table(rt.kind, objects, include_object=include)

    def _table_response(
        self,
        request: web.BaseRequest,
        rt: ResourceType,
        objects: list[dict[str, Any]],
        rv: int,
        continue_: str | None = None,
        remaining: int | None = None,
    ) -> web.Response:
        table = self._table(request, rt, objects)
        meta = table.setdefault("metadata", {})
        meta["resourceVersion"] = str(rv)
        if continue_:
            meta["continue"] = continue_
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        return _json_response(table)

    # ------------------------------------------------------------------ watch
    async def _watch(
        self,
        request: web.BaseRequest,
        rt: ResourceType,
        namespace: str | None,
        match: Matcher | None,
    ) -> web.StreamResponse:
        q = request.query
        rv_param = q.get("resourceVersion", "")
        if rv_param and not rv_param.isdigit():
            raise errors.bad_request(f"invalid resource version: {rv_param}")
        bookmarks = _parse_bool(q.get("allowWatchBookmarks"))
        send_initial = _parse_bool(q.get("sendInitialEvents"))
        if send_initial and not bookmarks:
            raise errors.invalid(
                "ListOptions",
                "",
                [
                    {
                        "reason": "FieldValueForbidden",
                        "message": "Forbidden: sendInitialEvents requires setting "
                        "allowWatchBookmarks to true",
                        "field": "allowWatchBookmarks",
                    }
                ],
                "meta.k8s.io",
            )
        try:
            # 0 asks for no timeout of its own, as an absent one does: the server's default
            timeout_s = float(q.get("timeoutSeconds") or 0) or _WATCH_DEFAULT_TIMEOUT
        except ValueError:
            raise errors.bad_request("timeoutSeconds must be an integer") from None
        table = _wants_table(request)
        if table:
            self._table(request, rt, [])  # validate includeObject before streaming
        initial: list[dict[str, Any]] = []
        expired: Expired | None = None
        sub: Subscription | None = None
        start_rv = self.registry.storage.revision()
        # sendInitialEvents defaults to true for resourceVersion "" and "0" only; false there
        # starts the watch at the current version with no synthetic ADDED events
        no_initial = q.get("sendInitialEvents", "").lower() == "false"
        if send_initial or (rv_param in ("", "0") and not no_initial):
            initial = [s.obj for s in self.registry.list(rt, namespace, match=match).items]
            sub = self.hub.subscribe(rt.key, namespace, None)
        elif rv_param in ("", "0"):
            sub = self.hub.subscribe(rt.key, namespace, None)
        else:
            try:
                sub = self.hub.subscribe(rt.key, namespace, int(rv_param))
            except Expired as exc:
                expired = exc
        resp = web.StreamResponse(headers={"Content-Type": _JSON, "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if expired is not None:
            await resp.write(_event_line("ERROR", errors.expired(str(expired)).body()))
            await resp.write_eof()
            return resp
        assert sub is not None
        self._watches.add(sub)
        try:
            await self._stream(
                request,
                resp,
                rt,
                sub,
                match,
                initial,
                start_rv,
                send_initial,
                bookmarks,
                timeout_s,
                table,
            )
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self._watches.discard(sub)
            sub.close()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write_eof()
        return resp

    def _bookmark(self, rt: ResourceType, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return _event_line(
            "BOOKMARK", {"kind": rt.kind, "apiVersion": rt.group_version, "metadata": meta}
        )

    async def _stream(
        self,
        request: web.BaseRequest,
        resp: web.StreamResponse,
        rt: ResourceType,
        sub: Subscription,
        match: Matcher | None,
        initial: list[dict[str, Any]],
        start_rv: int,
        send_initial: bool,
        bookmarks: bool,
        timeout_s: float,
        table: bool,
    ) -> None:
        def encode(type_: str, obj: dict[str, Any], event: Event | None) -> bytes:
            if table:
                return _event_line(type_, self._table(request, rt, [obj]))
            if event is not None:
                return event.line(type_)
            return b'{"type":"' + type_.encode() + b'","object":' + orjson.dumps(obj) + b"}\n"

        if initial:
            await resp.write(b"".join(encode("ADDED", obj, None) for obj in initial))
        if send_initial:
            await resp.write(self._bookmark(rt, start_rv, initial_end=True))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        next_bookmark = loop.time() + self.bookmark_interval
        last_rv = start_rv
        while True:
            if sub.queue:
                chunks: list[bytes] = []
                queue = sub.queue
                if match is None and not table:
                    # unfiltered JSON watch: each event's line is encoded once for all watchers
                    while queue:
                        event = queue.popleft()
                        chunks.append(event.line())
                    last_rv = event.rv
                while queue:
                    event = queue.popleft()
                    last_rv = event.rv
                    type_ = _filtered_type(event, match)
                    if type_ is not None:
                        chunks.append(encode(type_, event.obj, event))
                if chunks:
                    await resp.write(b"".join(chunks))
            if sub.overflowed or self._closing:
                return
            now = loop.time()
            if now >= deadline:
                if bookmarks:
                    await resp.write(self._bookmark(rt, max(last_rv, self._quiet_rv(sub))))
                return
            if bookmarks and now >= next_bookmark:
                await resp.write(self._bookmark(rt, max(last_rv, self._quiet_rv(sub))))
                next_bookmark = now + self.bookmark_interval
            wait_for = deadline - now
            if bookmarks:
                wait_for = min(wait_for, max(next_bookmark - now, 0.0))
            if not sub.queue:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(wait_for, 0.0)):
                        await sub.wait()
                # let the requests of this loop turn commit too: one write carries them all
                await asyncio.sleep(0)

    def _quiet_rv(self, sub: Subscription) -> int:
        # with an empty queue this watcher has seen every event committed so far
        return self.registry.storage.revision() if not sub.queue else 0

    # ------------------------------------------------------------------ subresources, reviews
    async def _post_subresource(self, request: web.BaseRequest, t: _Target) -> web.Response:
        body = await self._read_body(request)
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        ns = t.namespace or ""
        if t.subresource == "binding":
            self.registry.bind(ns, t.name, body)
            return _json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                },
                201,
            )
        if t.subresource == "eviction":
            self.registry.evict(ns, t.name, body)
            return _json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                },
                201,
            )
        return self._token_request(t, body)

    def _token_request(self, t: _Target, body: dict[str, Any]) -> web.Response:
        ns = t.namespace or ""
        sa = self.registry.get(t.rt, ns, t.name)
        issue = self.reviews.issue_token
        if issue is None:
            raise APIError(503, "token issuing is not configured", reason="ServiceUnavailable")
        spec = body.get("spec") or {}
        expiration = int(spec.get("expirationSeconds") or 3600)
        if expiration < 600:
            raise errors.invalid(
                "TokenRequest",
                t.name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "message": f"Invalid value: {expiration}: may not specify a duration less "
                        "than 10 minutes",
                        "field": "spec.expirationSeconds",
                    }
                ],
                "authentication.k8s.io",
            )
        audiences = list(spec.get("audiences") or [])
        token, expires = issue(
            ns,
            t.name,
            sa.obj["metadata"].get("uid", ""),
            audiences,
            expiration,
            spec.get("boundObjectRef"),
        )
        out = {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": t.name, "namespace": ns, "creationTimestamp": None},
            "spec": {**spec, "expirationSeconds": expiration, "audiences": audiences},
            "status": {"token": token, "expirationTimestamp": expires},
        }
        return _json_response(out, 201)

    async def _review(self, request: web.BaseRequest, user: UserInfo, t: _Target) -> web.Response:
        rt = t.rt
        body = self.registry.check_body(rt, await self._read_body(request), t.namespace)
        spec = body.get("spec") or {}
        if rt.kind == "TokenReview":
            token = spec.get("token") or ""
            audiences = list(spec.get("audiences") or []) or None
            review = self.reviews.review_token
            if not token:
                reviewed = None
            elif review is not None:
                reviewed = review(token, audiences)
            else:
                reviewed = self.authenticator.authenticate_token(token)
            if reviewed is None:
                body["status"] = {
                    "authenticated": False,
                    "user": {},
                    "error": "invalid bearer token",
                }
            else:
                body["status"] = {
                    "authenticated": True,
                    "user": reviewed.to_json(),
                    "audiences": spec.get("audiences") or [],
                }
        elif rt.kind == "SelfSubjectReview":
            body["status"] = {"userInfo": user.to_json()}
        else:
            if rt.kind == "SelfSubjectAccessReview":
                subject = user
            else:
                subject = UserInfo(
                    spec.get("user") or "", tuple(spec.get("groups") or ()), spec.get("uid") or ""
                )
            attrs_ = spec.get("resourceAttributes") or {}
            nonres = spec.get("nonResourceAttributes") or {}
            verb = attrs_.get("verb") or nonres.get("verb") or "get"
            ok = allowed(subject, verb, attrs_.get("resource") or "", attrs_.get("namespace") or "")
            status: dict[str, Any] = {"allowed": ok}
            if not ok:
                status["reason"] = "no built-in policy allows this"
            body["status"] = status
        body.setdefault("metadata", {})["creationTimestamp"] = None
        return _json_response(body, 201)


def _event_line(type_: str, obj: Any) -> bytes:
    return orjson.dumps({"type": type_, "object": obj}) + b"\n"


_PLAIN_FIELDS: dict[tuple[str, str], tuple[str, str]] = {
    **{
        (kind, f"{outer}.{inner}"): (outer, inner)
        for kind in ("Pod", "ConfigMap", "Secret", "Service", "Event", "Endpoints", "Lease")
        for outer, inner in (("metadata", "name"), ("metadata", "namespace"))
    },
    **{(kind, "metadata.name"): ("metadata", "name") for kind in ("Node", "Namespace")},
    **{
        ("Pod", f"{outer}.{inner}"): (outer, inner)
        for outer, inner in (
            ("spec", "nodeName"),
            ("spec", "restartPolicy"),
            ("spec", "schedulerName"),
            ("spec", "serviceAccountName"),
            ("status", "phase"),
            ("status", "nominatedNodeName"),
        )
    },
}
"""Selectable fields that are the text of one value two levels deep (the watch fast path);
the others are computed by :func:`~vkcompose.podspec.selectors.object_fields`."""


def field_matcher(kind: str, fs: selectors.FieldSelector) -> Callable[[dict[str, Any]], bool]:
    """``fs.matches(object_fields(kind, obj))`` as a function of ``obj``, reading only the
    selected fields when each is a plain value at a fixed path (watch fan-out runs this for
    every event and watcher).

    >>> from vkcompose.podspec.selectors import parse_field_selector
    >>> on_n1 = field_matcher("Pod", parse_field_selector("spec.nodeName=n1"))
    >>> on_n1({"spec": {"nodeName": "n1"}}), on_n1({"spec": {}})
    (True, False)
    """
    plain = [(_PLAIN_FIELDS.get((kind, f)), op == "=", v) for f, op, v in fs.requirements]
    direct = [(path, eq, v) for path, eq, v in plain if path is not None]
    if len(direct) < len(plain):
        return lambda obj: fs.matches(selectors.object_fields(kind, obj))

    def match(obj: dict[str, Any]) -> bool:
        for (outer, inner), eq, value in direct:
            got = obj.get(outer)
            have = got.get(inner) if isinstance(got, dict) else None
            if ((have if isinstance(have, str) else selectors.field_text(have)) == value) != eq:
                return False
        return True

    return match


def _filtered_type(event: Event, match: Matcher | None) -> str | None:
    """The event type a filtered watcher sees (objects entering or leaving the selection are
    ADDED or DELETED for it, as kube-apiserver's watch cache does)."""
    if match is None:
        return event.type
    now = match(event.obj)
    if event.type == "ADDED":
        return "ADDED" if now else None
    before = event.prev is not None and match(event.prev)
    if event.type == "DELETED":
        return "DELETED" if before or now else None
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    if before:
        return "DELETED"
    return None
