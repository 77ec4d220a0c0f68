"""The pod controller: runs the pods bound to a node (or a fleet of nodes) through a pipeline.

One :class:`PodController` serves every node of a :class:`~vkcompose.node.settings.VirtualNode`
(they share a pipeline, a backend and its status notifier):

* **Informers** list + watch pods (per node with ``fieldSelector=spec.nodeName=<node>``, or one
  watch of all bound pods for a large fleet) and record the latest API version of each pod.
* A **work queue** keyed by ``(namespace, name)`` runs one sync at a time per pod, coalescing
  bursts; ``VirtualNode.workers`` workers; no global rate limit; per-pod exponential backoff on
  failures, each failure logged and reported as an Event — never dropped.
* A **sync** makes the backend match the API: create (once — see the reconciliation below),
  update when a mutable field changed, graceful delete, and writes the backend's status by a
  strategic-merge PATCH of ``pods/<name>/status`` when it differs from the API's.
* **Startup reconciliation** (before any worker runs): backend pods without an API pod are
  deleted, pods in both are adopted (never created again), the rest are created unless
  terminal. The same diff runs every ``resync_seconds``.

Deletion follows the kubelet: on ``deletionTimestamp`` the pod gets a ``Killing`` Event and a
DeletePod with ``deletionGracePeriodSeconds``; once the backend reports the containers
terminated (or forgets the pod), or the grace period has passed, the final status is written
and the API object is deleted with grace 0 and a UID precondition. A pod the backend never ran
is deleted from the API at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import anyio
import attrs
from anyio.abc import TaskGroup

from vkcompose import ops
from vkcompose.capabilities import SupportsNotify
from vkcompose.errors import InvalidInput, NotFound, Unsupported
from vkcompose.node import status as st
from vkcompose.node.events import NORMAL, WARNING, EventRecorder, rfc3339
from vkcompose.node.informer import Informer
from vkcompose.node.kube import Kube, KubeError, path_of
from vkcompose.node.plan import PodKey, key_of, plan, uid_of, update_fingerprint
from vkcompose.node.queue import Backoff, ShutDown, WorkQueue
from vkcompose.node.settings import VirtualNode
from vkcompose.node.spec_reuse import SpecReuse
from vkcompose.pipeline import Pipeline
from vkcompose.podspec import JSON, Pod

log = logging.getLogger(__name__)

CONTAINER_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
"""Error reasons reported on the containers (Waiting) rather than on the pod."""

__all__ = ["CONTAINER_REASONS", "PodController", "PodStats"]


@attrs.define(slots=True)
class _PodState:
    api: Pod | None = None
    """Latest API version of the pod (None once deleted from the API)."""
    backend_uid: str | None = None
    """UID of the pod the backend runs under this key (None: the backend does not run it)."""
    created_at: float = 0.0
    fingerprint: bytes | None = None
    """Update fingerprint of the spec the backend runs."""
    api_fingerprint: bytes | None = None
    """Update fingerprint of :attr:`api`."""
    backend_status: JSON | None = None
    """Latest status the backend reported."""
    backend_gone: bool = False
    """The backend finished stopping the pod (or no longer knows it)."""
    delete_started: float | None = None
    delete_deadline: float = 0.0
    delete_grace: int | None = None
    """The grace period the backend was last asked to stop the pod with."""
    delete_running: bool = False
    failing: bool = False
    started_event: bool = False
    patched: tuple[Pod, JSON] | None = None
    """The API pod a status was last written against, and that status."""
    checked: tuple[Pod, JSON] | None = None
    """The API pod and backend status last compared (nothing to write while both stay)."""
    hold_due: float | None = None
    """When a held "still starting" status is due (cancelled once a later one is written)."""
    status_path: str = ""
    """URL path of the pod's ``status`` subresource (made on the first write)."""
    absent: bool = False
    """The backend said it does not run the pod (its list lacked it, or NotFound): only then is
    a started run-once pod reported lost."""
    creating: str | None = None
    """UID of the pod this sync is creating: the backend may announce it before the create
    returns (its status is then kept for this sync to write)."""


@attrs.define
class PodStats:
    """Counters of a controller (for tests, benchmarks and the TUI)."""

    creates: int = 0
    updates: int = 0
    deletes: int = 0
    adopted: int = 0
    orphans_deleted: int = 0
    status_patches: int = 0
    api_deletes: int = 0
    failures: int = 0
    syncs: int = 0


def _meta(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("metadata") or {}


def _rv_int(pod: Mapping[str, Any] | None) -> int | None:
    rv = _meta(pod or {}).get("resourceVersion")
    return int(rv) if isinstance(rv, str) and rv.isdigit() else None


def _containers(pod: Mapping[str, Any]) -> list[str]:
    return [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]


SLICE_SECONDS = 0.05
"""How long workers may run syncs back to back before the event loop polls I/O again."""


class PodController:
    """Runs the pods bound to ``node_names`` through ``pipeline`` (see the module docstring)."""

    def __init__(
        self,
        node: VirtualNode,
        kube: Kube,
        *,
        pipeline: Pipeline | None = None,
        events: EventRecorder | None = None,
        node_names: Iterable[str] | None = None,
    ) -> None:
        self.node = node
        self.kube = kube
        self.pipeline = pipeline or node.pipeline
        self.events = events
        self.node_names = list(node_names or node.node_names())
        self._names = frozenset(self.node_names)
        self._infos = {n: node.node_info(n) for n in self.node_names}
        self._host_ips = (node.internal_ip,)
        self._pods: dict[PodKey, _PodState] = {}
        self.queue: WorkQueue[PodKey] = WorkQueue()
        self.backoff: Backoff[PodKey] = Backoff(
            base=node.retry_base_seconds, cap=node.retry_cap_seconds
        )
        self.stats = PodStats()
        self.spec_reuse = SpecReuse(self._held_spec)
        """Decodes pod watch lines, reusing the spec held when it did not change."""
        self.ready = anyio.Event()
        """Set once startup reconciliation is done and workers run."""
        self.informers = self._make_informers()
        self._notify = isinstance(self.pipeline.backend, SupportsNotify)
        self._loop_thread = threading.get_ident()
        self._tg: TaskGroup | None = None
        self._token: Any = None
        self._slice_start = time.perf_counter()
        self._slice_over = False

    # -- informers -----------------------------------------------------------------------------

    def _make_informers(self) -> list[Informer]:
        if self.node.effective_watch_mode(len(self.node_names)) == "node":
            return [
                Informer(
                    self.kube,
                    "/api/v1/pods",
                    field_selector=f"spec.nodeName={name}",
                    on_list=self._list_handler(frozenset([name])),
                    on_event=self._on_event,
                    name=f"pods@{name}",
                    decode=self.spec_reuse,
                )
                for name in self.node_names
            ]
        return [
            Informer(
                self.kube,
                "/api/v1/pods",
                field_selector="spec.nodeName!=",
                on_list=self._list_handler(self._names),
                on_event=self._on_event,
                name=f"pods@{self.node.name}[{len(self.node_names)}]",
                decode=self.spec_reuse,
            )
        ]

    def _held_spec(self, key: PodKey) -> Mapping[str, Any] | None:
        state = self._pods.get(key)
        api = state.api if state is not None else None
        return api.get("spec") if api is not None else None

    def drop_watches(self) -> None:
        """Close every pod watch connection (they resume; used by tests)."""
        for informer in self.informers:
            informer.drop_watch()

    def _list_handler(self, scope: frozenset[str]) -> Any:
        def on_list(items: list[Pod]) -> None:
            seen: set[PodKey] = set()
            for pod in items:
                if (pod.get("spec") or {}).get("nodeName") in self._names:
                    pod.setdefault("kind", "Pod")
                    pod.setdefault("apiVersion", "v1")
                    seen.add(key_of(pod))
                    self._upsert(pod)
            # pods of this scope that the list no longer has were deleted meanwhile
            for key, state in self._pods.items():
                if key in seen or state.api is None:
                    continue
                if (state.api.get("spec") or {}).get("nodeName") in scope:
                    state.api = None
                    self.queue.add(key)

        return on_list

    def _on_event(self, etype: str, pod: Pod) -> None:
        if (pod.get("spec") or {}).get("nodeName") not in self._names:
            return
        if etype == "DELETED":
            key = key_of(pod)
            state = self._pods.get(key)
            if state is not None and state.api is not None and uid_of(state.api) == uid_of(pod):
                state.api = None
                self.queue.add(key)
            return
        self._upsert(pod)

    def _upsert(self, pod: Pod) -> None:
        key = key_of(pod)
        state = self._pods.get(key)
        if state is None:
            state = self._pods[key] = _PodState()
        old = state.api
        if old is not None and uid_of(old) == uid_of(pod):
            new_rv, old_rv = _rv_int(pod), _rv_int(old)
            if new_rv is not None and old_rv is not None and new_rv < old_rv:
                return  # older than the version already held (a list raced the watch)
            if (
                state.api_fingerprint is not None
                and pod.get("spec") is old.get("spec")
                and _meta(pod).get("labels") == _meta(old).get("labels")
                and _meta(pod).get("annotations") == _meta(old).get("annotations")
            ):
                fingerprint = state.api_fingerprint  # the same spec (see SpecReuse)
            else:
                fingerprint = update_fingerprint(pod)
            state.api = pod
            state.patched = None  # compared by identity with the previous version
            unchanged = (
                _meta(old).get("deletionTimestamp") == _meta(pod).get("deletionTimestamp")
                and fingerprint == state.api_fingerprint
                # a readiness gate set by others changes Ready
                and st.gate_statuses(pod) == st.gate_statuses(old)
            )
            state.api_fingerprint = fingerprint
            if unchanged:
                # only status or metadata churn (e.g. our own status patches): a pending sync,
                # backoff timer or the periodic resync covers it
                return
        else:
            state.api = pod
            state.api_fingerprint = update_fingerprint(pod)
        self.queue.add(key)

    # -- backend status ------------------------------------------------------------------------

    def _on_backend_status(self, pod: Pod) -> None:
        if threading.get_ident() != self._loop_thread and self._token is not None:
            anyio.from_thread.run_sync(self._on_backend_status, pod, token=self._token)
            return
        key = key_of(pod)
        state = self._pods.get(key)
        if state is None:
            return
        expected = state.backend_uid or state.creating
        if expected is None:
            return
        uid = uid_of(pod)
        if uid and uid != expected:
            return  # an older incarnation
        state.backend_status = pod.get("status") or {}
        if state.creating is not None:
            return  # the sync creating the pod writes it next
        # a pod the backend already runs reports before a backlog of new pods is worked
        self.queue.add(key, urgent=True)

    # -- running -------------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """List, reconcile, then serve pods until cancelled."""
        self._loop_thread = threading.get_ident()
        self._token = anyio.lowlevel.current_token()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for informer in self.informers:
                    tg.start_soon(informer.run)
                t0 = time.monotonic()
                for informer in self.informers:
                    await informer.synced.wait()
                t1 = time.monotonic()
                if self._notify:
                    self.pipeline.backend.notify_pods(self._on_backend_status)  # type: ignore[attr-defined]
                await self._reconcile(startup=True)
                log.info(
                    "pods listed in %.2fs (%d), reconciled with the backend in %.2fs",
                    t1 - t0,
                    len(self._pods),
                    time.monotonic() - t1,
                )
                tg.start_soon(self.queue.run_timers)
                for _ in range(max(1, self.node.workers)):
                    tg.start_soon(self._worker)
                tg.start_soon(self._resync_loop)
                if not self._notify:
                    tg.start_soon(self._poll_loop)
                self.ready.set()
                task_status.started()
        finally:
            self.queue.shutdown()

    def is_idle(self) -> bool:
        """No sync queued, in flight, or scheduled for later (backoff or grace timers)."""
        return self.queue.idle()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self._sync(key)
            except Exception:  # last resort: never lose a key
                log.exception("sync of pod %s/%s failed", *key)
                self.stats.failures += 1
                self.queue.add_after(key, self.backoff.next_delay(key))
            finally:
                self.queue.done(key)
            if self._slice_over or time.perf_counter() - self._slice_start > SLICE_SECONDS:
                await self._yield_slice()

    async def _yield_slice(self) -> None:
        """Let the event loop poll sockets and timers: syncs that never wait (a backend that
        answers at once) would otherwise run back to back for the whole backlog."""
        if not self._slice_over:
            self._slice_over = True
            asyncio.get_running_loop().call_soon(self._new_slice)
        await anyio.lowlevel.checkpoint()

    def _new_slice(self) -> None:
        self._slice_over = False
        self._slice_start = time.perf_counter()

    # -- reconciliation ------------------------------------------------------------------------

    async def _backend_pods(self) -> list[Pod] | None:
        if not self.pipeline.supports(ops.ListPods):
            return None
        try:
            result: list[Pod] = await self.pipeline(ops.ListPods())
            return result
        except Unsupported:
            return None

    async def _reconcile(self, *, startup: bool) -> None:
        listed_at = time.monotonic()
        try:
            backend = await self._backend_pods()
        except Exception as exc:
            log.warning("listing the backend's pods failed: %s", exc)
            if not startup:
                return
            backend = None
        if backend is None:
            if startup:
                await self._adopt_by_status()
            for key in list(self._pods):
                self.queue.add(key)
            return
        api = {k: s.api for k, s in self._pods.items() if s.api is not None}
        result = plan(api, backend, node_names=self._names)
        listed = {key_of(p) for p in backend}
        for key, state in self._pods.items():
            state.absent = key not in listed
        for key, bpod in result.adopt.items():
            state = self._pods[key]
            if state.backend_uid is None:
                state.backend_uid = uid_of(bpod) or uid_of(state.api)
                source = bpod if bpod.get("spec") else state.api or {}
                state.fingerprint = update_fingerprint(source)
                state.created_at = listed_at
                if startup:
                    self.stats.adopted += 1
            if startup or not self._notify:
                state.backend_status = bpod.get("status") or state.backend_status
        for bpod in result.delete:
            known = self._pods.get(key_of(bpod))
            if known is not None and (known.delete_running or known.backend_uid == uid_of(bpod)):
                continue  # being handled by the pod's own sync
            self._start_orphan_delete(bpod)
        if not startup:
            in_backend = {key_of(p) for p in backend}
            for key, state in self._pods.items():
                if (
                    state.backend_uid is not None
                    and key not in in_backend
                    and state.created_at < listed_at
                    and state.delete_started is None
                    and not state.delete_running
                ):
                    # the backend lost the pod: it is created again unless terminal
                    log.warning("pod %s/%s vanished from the backend", *key)
                    state.backend_uid = None
                    state.backend_status = None
                    state.fingerprint = None
        for key in list(self._pods):
            self.queue.add(key)

    async def _adopt_by_status(self) -> None:
        """Without ListPods: ask the backend about each API pod before creating anything."""
        if not self.pipeline.supports(ops.GetPodStatus):
            for state in self._pods.values():
                state.absent = True  # nothing to ask: what the API has is all there is
            return
        limiter = anyio.CapacityLimiter(32)

        async def probe(key: PodKey, state: _PodState) -> None:
            async with limiter:
                try:
                    bpod = await self.pipeline(ops.GetPodStatus(namespace=key[0], name=key[1]))
                except NotFound:
                    state.absent = True
                    return
                except Exception as exc:
                    log.warning("status of %s/%s unknown at startup: %s", *key, exc)
                    return
                if bpod and (not uid_of(bpod) or uid_of(bpod) == uid_of(state.api)):
                    state.backend_uid = uid_of(state.api)
                    state.fingerprint = update_fingerprint(state.api or {})
                    state.backend_status = bpod.get("status")
                    self.stats.adopted += 1

        async with anyio.create_task_group() as tg:
            for key, state in self._pods.items():
                if state.api is not None:
                    tg.start_soon(probe, key, state)

    def _start_orphan_delete(self, bpod: Pod) -> None:
        assert self._tg is not None
        self._tg.start_soon(self._orphan_delete, bpod)

    async def _orphan_delete(self, bpod: Pod) -> None:
        grace = (bpod.get("spec") or {}).get("terminationGracePeriodSeconds")
        try:
            await self.pipeline(
                ops.DeletePod(pod=bpod, node=self._info(bpod), grace_period_seconds=grace)
            )
            self.stats.orphans_deleted += 1
        except NotFound:
            pass
        except Exception as exc:
            log.warning("deleting orphan pod %s/%s failed: %s", *key_of(bpod), exc)

    async def _resync_loop(self) -> None:
        while True:
            await anyio.sleep(self.node.resync_seconds)
            await self._reconcile(startup=False)

    async def _poll_loop(self) -> None:
        """Status polling for backends without notifications."""
        while True:
            await anyio.sleep(self.node.status_poll_seconds)
            await self.poll_once()

    async def poll_once(self) -> None:
        """Read every created pod's status from the backend; queue the changed ones."""
        try:
            backend = await self._backend_pods()
        except Exception as exc:
            log.warning("polling pod statuses failed: %s", exc)
            return
        if backend is not None:
            by_key = {key_of(p): p for p in backend}
            for key, state in self._pods.items():
                if state.backend_uid is None:
                    continue
                bpod = by_key.get(key)
                if bpod is None:
                    continue
                status = bpod.get("status") or {}
                if status != state.backend_status:
                    state.backend_status = status
                    self.queue.add(key)
            return
        if not self.pipeline.supports(ops.GetPodStatus):
            return
        limiter = anyio.CapacityLimiter(32)

        async def one(key: PodKey, state: _PodState) -> None:
            async with limiter:
                try:
                    bpod = await self.pipeline(ops.GetPodStatus(namespace=key[0], name=key[1]))
                except NotFound:
                    if state.delete_started is not None:
                        state.backend_gone = True
                        self.queue.add(key)
                    return
                except Exception as exc:
                    log.debug("status of %s/%s: %s", *key, exc)
                    return
                status = (bpod or {}).get("status") or {}
                if status != state.backend_status:
                    state.backend_status = status
                    self.queue.add(key)

        async with anyio.create_task_group() as tg:
            for key, state in list(self._pods.items()):
                if state.backend_uid is not None:
                    tg.start_soon(one, key, state)

    # -- the sync ------------------------------------------------------------------------------

    def _info(self, pod: Pod | None) -> ops.NodeInfo | None:
        return self._infos.get(((pod or {}).get("spec") or {}).get("nodeName", ""))

    def _event(self, pod: Pod, type_: str, reason: str, message: str) -> None:
        if self.events is None or (type_ == NORMAL and not self.node.pod_events):
            return
        self.events.emit(pod, type=type_, reason=reason, message=message)

    async def _sync(self, key: PodKey) -> None:
        state = self._pods.get(key)
        if state is None:
            return
        self.stats.syncs += 1
        api = state.api
        if state.backend_uid is not None and (api is None or uid_of(api) != state.backend_uid):
            # the API pod is gone (or was replaced by a new one of the same name)
            if not state.delete_running:
                self._begin_backend_delete(key, state, api, force=True)
            return
        if api is None:
            if not state.delete_running:
                self._pods.pop(key, None)
                self.backoff.forget(key)
            return
        if _meta(api).get("deletionTimestamp"):
            await self._sync_deleting(key, state, api)
            return
        if state.backend_uid is None:
            if st.is_terminal(api):
                return
            if st.ran_once(api):
                # a run-once pod that started and that the backend no longer has (lost, or
                # a node restart on a backend that keeps nothing) never runs twice: the
                # kubelet reports its containers terminated with status unknown
                if not state.absent:
                    return  # the backend could not be asked: the next resync looks again
                log.warning("run-once pod %s/%s is not in the backend: Failed", *key)
                await self._patch_status(
                    key, state, api, st.lost_run_once_status(api, now=rfc3339())
                )
                return
            if not await self._create(key, state, api):
                return
        elif st.is_terminal(api):
            # Succeeded or Failed in the API (e.g. a create reported failed that the backend
            # ran after all): the pod never runs again, so what still runs of it is stopped,
            # and no status takes it out of its phase (as the kubelet does)
            if state.delete_started is None:
                if state.backend_status is None:
                    await self._read_status(key, state)  # adopted without a status yet
                if state.backend_status is not None and not st.all_containers_terminated(
                    state.backend_status
                ):
                    self._begin_backend_delete(key, state, api, force=False)
            return
        else:
            fingerprint = state.api_fingerprint or update_fingerprint(api)
            if fingerprint != state.fingerprint and not await self._update(
                key, state, api, fingerprint
            ):
                return
        await self._write_status(key, state, api)

    async def _create(self, key: PodKey, state: _PodState, api: Pod) -> bool:
        retry = state.failing
        state.creating = uid_of(api)
        try:
            await self.pipeline(ops.CreatePod(pod=api, node=self._info(api)))
        except Exception as exc:
            state.creating = None  # now, not in finally: nothing announced during _failed is kept
            state.backend_status = None  # nor what the backend announced meanwhile
            await self._failed(key, state, api, exc, "create")
            return False
        finally:
            state.creating = None
        state.backend_uid = uid_of(api)
        state.created_at = time.monotonic()
        state.fingerprint = state.api_fingerprint or update_fingerprint(api)
        state.backend_gone = False
        self.stats.creates += 1
        self._recovered(key, state)
        self._event(api, NORMAL, "Created", f"Created pod on {self._backend_name()}")
        if state.backend_status is None and (retry or not self._notify):
            # a backend that already ran the pod when an earlier create failed may announce
            # nothing new: ask it, as for a backend without notifications
            await self._read_status(key, state)
        return True

    async def _update(self, key: PodKey, state: _PodState, api: Pod, fingerprint: bytes) -> bool:
        try:
            await self.pipeline(ops.UpdatePod(pod=api, node=self._info(api)))
        except Unsupported:
            state.fingerprint = fingerprint  # nothing a backend without updates can do
            return True
        except Exception as exc:
            await self._failed(key, state, api, exc, "update")
            return False
        state.fingerprint = fingerprint
        self.stats.updates += 1
        self._recovered(key, state)
        return True

    async def _read_status(self, key: PodKey, state: _PodState) -> None:
        if not self.pipeline.supports(ops.GetPodStatus):
            return
        try:
            bpod = await self.pipeline(ops.GetPodStatus(namespace=key[0], name=key[1]))
        except Exception as exc:
            log.debug("status of %s/%s: %s", *key, exc)
            return
        state.backend_status = (bpod or {}).get("status") or {}

    def _backend_name(self) -> str:
        return type(self.pipeline.backend).__name__

    def _recovered(self, key: PodKey, state: _PodState) -> None:
        self.backoff.forget(key)
        state.failing = False

    async def _failed(
        self, key: PodKey, state: _PodState, api: Pod, exc: BaseException, action: str
    ) -> None:
        """Report a failed create/update: status, Event, log; retry with backoff."""
        self.stats.failures += 1
        state.failing = True
        reason = getattr(exc, "reason", None) or st.PROVIDER_FAILED
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        container_level = isinstance(exc, InvalidInput) and reason in CONTAINER_REASONS
        log.warning("%s of pod %s/%s failed: %s: %s", action, *key, reason, message)
        if container_level:
            self._event(api, WARNING, "Failed", f"Error: {message}")
            status = st.failure_status(
                api,
                reason=reason,
                message=message,
                host_ips=self._host_ips,
                now=rfc3339(),
                container_reason=True,
            )
        else:
            self._event(api, WARNING, st.PROVIDER_FAILED, message)
            status = st.failure_status(
                api,
                reason=st.PROVIDER_FAILED,
                message=message,
                host_ips=self._host_ips,
                now=rfc3339(),
            )
        if action == "create":
            await self._patch_status(key, state, api, status)
        if status.get("phase") == "Failed" and action == "create":
            return  # terminal: a Failed pod never runs again
        delay = getattr(exc, "delay", None) or 0.0
        self.queue.add_after(key, self.backoff.next_delay(key, at_least=delay))

    async def _write_status(self, key: PodKey, state: _PodState, api: Pod) -> None:
        if state.backend_status is None or st.is_terminal(api):
            return  # nothing to write; or the pod ended, and its phase is final
        window = self.node.status_coalesce_seconds
        if (
            window > 0
            and st.still_starting(state.backend_status)
            and not _meta(api).get("deletionTimestamp")
        ):
            held = state.created_at + window - time.monotonic()
            if held > 0 and (api.get("status") or {}).get("phase", "Pending") == "Pending":
                # the backend is starting the pod: its next status usually follows within
                # milliseconds; write once with that (or this one when the window ends)
                due = self.queue.add_after(key, held)
                if due is not None:
                    state.hold_due = due
                return
        checked = state.checked
        if checked is not None and checked[0] is api and checked[1] is state.backend_status:
            return  # neither the API pod nor the backend status changed since the last look
        backend_status = state.backend_status
        if state.hold_due is not None:
            self.queue.cancel_after(key, state.hold_due)  # this write supersedes the held one
            state.hold_due = None
        info = self._info(api)
        desired = st.desired_status(
            api,
            state.backend_status,
            host_ips=info.host_ips if info else self._host_ips,
            now=rfc3339(),
            host_network=bool(info and info.host_network),
        )
        old = api.get("status") or {}
        written = await self._patch_status(key, state, api, desired)
        state.checked = (api, backend_status)  # only once the write (if any) went through
        if written and not state.started_event:
            running = st.newly_running(old, desired)
            if running:
                state.started_event = True
                self._event(api, NORMAL, "Started", f"Started container {', '.join(running)}")

    async def _patch_status(self, key: PodKey, state: _PodState, api: Pod, desired: JSON) -> bool:
        if state.patched is not None and state.patched[0] is api and state.patched[1] == desired:
            return False  # already written; the watch has not brought the result back yet
        patch = st.status_patch(
            api.get("status"), desired, strategic=self.kube.strategic_status_patch
        )
        if patch is None:
            return False
        body = {"metadata": {"uid": uid_of(api)}, "status": patch}
        if not state.status_path:
            state.status_path = path_of("pods", key[1], namespace=key[0], subresource="status")
        try:
            # the answer is not read: the watch delivers the same object (in order)
            await self.kube.patch_status(state.status_path, body, decode=False)
        except KubeError as exc:
            if exc.not_found or exc.replaced:
                return False  # the pod is gone or was replaced; the watch will tell
            raise
        self.stats.status_patches += 1
        state.patched = (api, desired)
        return True

    # -- deletion ------------------------------------------------------------------------------

    def _grace(self, api: Pod | None, force: bool) -> int | None:
        if api is None:
            return 0 if force else None
        meta = _meta(api)
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = (api.get("spec") or {}).get("terminationGracePeriodSeconds")
        return int(grace) if grace is not None else None

    async def _sync_deleting(self, key: PodKey, state: _PodState, api: Pod) -> None:
        if state.backend_uid is None or state.backend_gone:
            await self._delete_api_object(key, state, api)
            return
        now = time.monotonic()
        if state.delete_started is None:
            self._begin_backend_delete(key, state, api, force=False)
            return
        grace = self._grace(api, force=False)
        if grace is not None and (state.delete_grace is None or grace < state.delete_grace):
            # a second DELETE shortened the grace period: the kubelet stops the pod again
            # with the shorter one (also while a DeletePod is still stopping it), and the API
            # object goes when that one has passed
            self._begin_backend_delete(key, state, api, force=False, again=True)
            return
        if state.delete_running:
            if now < state.delete_deadline:
                # the delete task re-queues the pod when it ends; the deadline, if sooner
                self._wake_at_deadline(key, state, now)
                return
        elif not (
            st.all_containers_terminated(state.backend_status) or now >= state.delete_deadline
        ):
            if not self._notify:
                await self._check_gone(key, state)
                if not state.backend_gone:
                    self.queue.add_after(key, min(1.0, max(0.05, state.delete_deadline - now)))
            else:
                self._wake_at_deadline(key, state, now)
            return
        await self._delete_api_object(key, state, api)

    def _wake_at_deadline(self, key: PodKey, state: _PodState, now: float) -> None:
        """Make sure a sync runs once the grace period has passed (the queue keeps only the
        earliest schedule of a key: one made before, e.g. a status hold, may have been it)."""
        self.queue.add_after(key, state.delete_deadline - now + 0.001)

    async def _check_gone(self, key: PodKey, state: _PodState) -> None:
        if not self.pipeline.supports(ops.GetPodStatus):
            # nothing to ask: a backend that notifies tells when the pod has stopped; for one
            # that does not, its DeletePod answer is all there is to go by
            if not self._notify:
                state.backend_gone = True
            return
        try:
            bpod = await self.pipeline(ops.GetPodStatus(namespace=key[0], name=key[1]))
        except NotFound:
            state.backend_gone = True
            return
        except Exception:
            return
        state.backend_status = (bpod or {}).get("status") or {}

    def _begin_backend_delete(
        self, key: PodKey, state: _PodState, api: Pod | None, *, force: bool, again: bool = False
    ) -> None:
        """Ask the backend to stop the pod (``again``: with a grace period shortened since)."""
        grace = self._grace(api, force)
        now = time.monotonic()
        deadline = now + (grace if grace is not None else 30)
        state.delete_deadline = min(state.delete_deadline, deadline) if again else deadline
        state.delete_started = now
        state.delete_grace = grace
        state.delete_running = True
        target = api if api is not None and uid_of(api) == state.backend_uid else None
        if target is not None and not again:
            names = ", ".join(_containers(target))
            self._event(target, NORMAL, "Killing", f"Stopping container {names}")
        if target is None:
            # the API pod is gone: stop the one the backend runs (its last known version)
            target = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"namespace": key[0], "name": key[1], "uid": state.backend_uid},
            }
        if grace is not None:
            self._wake_at_deadline(key, state, now)
        assert self._tg is not None
        self._tg.start_soon(self._run_backend_delete, key, state, target, grace)

    async def _run_backend_delete(
        self, key: PodKey, state: _PodState, pod: Pod, grace: int | None
    ) -> None:
        try:
            await self.pipeline(
                ops.DeletePod(pod=pod, node=self._info(pod), grace_period_seconds=grace)
            )
        except NotFound:
            state.backend_gone = True
        except Exception as exc:
            self._delete_failed(key, state, pod, exc)
            return
        finally:
            state.delete_running = False
        self.stats.deletes += 1
        if not state.backend_gone:
            await self._check_gone(key, state)
        self._recovered(key, state)
        if state.api is None or uid_of(state.api) != uid_of(pod):
            # nothing left in the API to finish: forget the backend pod
            state.backend_uid = None
            state.backend_status = None
            state.delete_started = None
            state.delete_grace = None
            state.backend_gone = False
        self.queue.add(key)

    def _delete_failed(self, key: PodKey, state: _PodState, pod: Pod, exc: BaseException) -> None:
        self.stats.failures += 1
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        log.warning("delete of pod %s/%s failed: %s", *key, message)
        if pod.get("spec"):
            self._event(pod, WARNING, st.PROVIDER_FAILED, f"Failed to stop pod: {message}")
        state.delete_started = None  # start over
        delay = getattr(exc, "delay", None) or 0.0
        self.queue.add_after(key, self.backoff.next_delay(key, at_least=delay))

    async def _delete_api_object(self, key: PodKey, state: _PodState, api: Pod) -> None:
        if state.backend_uid is not None and state.backend_status is not None:
            await self._write_status(key, state, state.api or api)
        try:
            await self.kube.delete(
                path_of("pods", key[1], namespace=key[0]),
                options={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": uid_of(api)},
                },
            )
        except KubeError as exc:
            if not (exc.not_found or exc.conflict):
                raise
        self.stats.api_deletes += 1
        if not state.delete_running:
            # the backend was told to stop it (or never ran it): nothing left to do there
            state.backend_uid = None
            state.backend_status = None

    # -- introspection -------------------------------------------------------------------------

    def known(self) -> dict[PodKey, Pod | None]:
        """The API pods the controller knows (for tests)."""
        return {k: s.api for k, s in self._pods.items()}

    def running_in_backend(self) -> set[PodKey]:
        """Keys of pods the controller believes the backend runs."""
        return {k for k, s in self._pods.items() if s.backend_uid is not None}
