"""A reusable conformance suite for backends.

Subclass :class:`BackendConformance` in a test module and override the ``make_backend``
fixture (it returns — or yields, to clean up — the backend under test)::

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        async def make_backend(self, tmp_path):
            backend = MyBackend(tmp_path)
            yield backend
            await backend.aclose()

Every operation goes through a pipeline (``compose(backend=...)``), as the node would call it.
The suite checks: create → Running → delete; status notifications arrive in order and end in
the pod's last state; ``list_pods``; an unknown pod is ``NotFound``; delete is idempotent
(a second delete succeeds or raises ``NotFound``); logs when the backend ``SupportsLogs`` and
exec when it ``SupportsExec`` (otherwise the pipeline must refuse them with ``Unsupported``).

Hooks a backend may override: :meth:`BackendConformance.long_running_pod`,
:meth:`BackendConformance.exec_case`, :meth:`BackendConformance.log_pod` and the timeouts.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from vkcompose import capabilities
from vkcompose.errors import NotFound, Unsupported
from vkcompose.ops import (
    CreatePod,
    DeletePod,
    Exec,
    ExecIO,
    GetPodStatus,
    ListPods,
    LogOptions,
    ReadLogs,
)
from vkcompose.pipeline import Pipeline, compose
from vkcompose.podspec import Pod

__all__ = ["BackendConformance", "CollectingStream"]

_uids = itertools.count(1)


class CollectingStream:
    """A byte sink for exec output (``send`` appends to :attr:`data`)."""

    def __init__(self) -> None:
        self.data = b""

    async def send(self, item: bytes) -> None:
        """Collect ``item``."""
        self.data += item

    async def send_eof(self) -> None:
        """Nothing to do."""

    async def aclose(self) -> None:
        """Nothing to do."""


class BackendConformance:
    """Behaviour every backend should show. Override ``make_backend`` (a fixture)."""

    running_timeout: float = 15.0
    """Seconds a pod may take to reach Running (a hang guard, not a performance test)."""
    delete_timeout: float = 15.0
    namespace: str = "conformance"

    # --- hooks ---------------------------------------------------------------------------------

    @pytest.fixture
    def make_backend(self) -> Any:
        """The backend under test — override this fixture."""
        raise NotImplementedError("override the make_backend fixture")

    def long_running_pod(self, name: str) -> Pod:
        """A pod that runs until deleted."""
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "uid": f"conf-{next(_uids)}"},
            "spec": {
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 2,
                "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}],
            },
        }

    def exec_case(self) -> tuple[list[str], int, bytes]:
        """``(command, expected exit code, expected stdout)`` for the exec test."""
        return (["sh", "-c", "echo conformance; exit 3"], 3, b"conformance\n")

    def log_pod(self, name: str) -> tuple[Pod, bytes]:
        """A pod that writes to its log, and a fragment its log must contain."""
        pod = self.long_running_pod(name)
        pod["spec"]["containers"][0]["command"] = ["sh", "-c", "echo hello-logs; sleep 3600"]
        return pod, b"hello-logs"

    # --- helpers -------------------------------------------------------------------------------

    @pytest.fixture
    def pipeline(self, make_backend: Any) -> Pipeline:
        """The backend behind an empty pipeline."""
        return compose(backend=make_backend)

    async def wait_phase(self, pipeline: Pipeline, name: str, accept: Callable[[str], bool]) -> Pod:
        """Poll until the pod's phase satisfies ``accept`` (``running_timeout`` guards)."""
        pod: Pod = {}
        try:
            with anyio.fail_after(self.running_timeout):
                while True:
                    pod = await pipeline(GetPodStatus(namespace=self.namespace, name=name))
                    if accept((pod.get("status") or {}).get("phase", "")):
                        return pod
                    await anyio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"pod {name} never reached the phase; last: {pod}") from None

    async def wait_gone_or_terminal(self, pipeline: Pipeline, name: str) -> None:
        """After a delete the pod must disappear or reach a terminal phase (promptly)."""
        with anyio.fail_after(self.delete_timeout):
            while True:
                try:
                    pod = await pipeline(GetPodStatus(namespace=self.namespace, name=name))
                except NotFound:
                    return
                if pod["status"]["phase"] in ("Succeeded", "Failed"):
                    return
                await anyio.sleep(0.02)

    async def delete(self, pipeline: Pipeline, pod: Pod) -> None:
        """Delete ``pod`` with a short grace period."""
        with anyio.fail_after(self.delete_timeout):
            await pipeline(DeletePod(pod=pod, grace_period_seconds=1))

    # --- the suite -----------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_create_running_delete(self, pipeline: Pipeline) -> None:
        """A created pod reaches Running with a status; after delete it is gone or terminal."""
        pod = self.long_running_pod("lifecycle")
        await pipeline(CreatePod(pod=pod))
        running = await self.wait_phase(pipeline, "lifecycle", lambda p: p == "Running")
        assert running["metadata"]["name"] == "lifecycle"
        statuses = running["status"].get("containerStatuses") or []
        assert [s["name"] for s in statuses] == ["main"]
        assert "running" in statuses[0]["state"]
        await self.delete(pipeline, pod)
        await self.wait_gone_or_terminal(pipeline, "lifecycle")

    @pytest.mark.anyio
    async def test_notifications_are_ordered(self, pipeline: Pipeline) -> None:
        """Status changes are pushed in order: Pending before Running, none after the end."""
        if not isinstance(pipeline.backend, capabilities.SupportsNotify):
            assert not callable(getattr(pipeline.backend, "notify_pods", None))
            return
        seen: list[Pod] = []
        pipeline.backend.notify_pods(seen.append)
        pod = self.long_running_pod("notified")
        await pipeline(CreatePod(pod=pod))
        await self.wait_phase(pipeline, "notified", lambda p: p == "Running")
        with anyio.fail_after(self.running_timeout):
            while True:
                if any(p["status"]["phase"] == "Running" for p in seen):
                    break
                await anyio.sleep(0.02)
        order = {"Pending": 0, "Running": 1, "Succeeded": 2, "Failed": 2}
        phases = [order[p["status"]["phase"]] for p in seen if p["metadata"]["name"] == "notified"]
        assert phases == sorted(phases), [p["status"]["phase"] for p in seen]
        assert all(p["metadata"]["uid"] == pod["metadata"]["uid"] for p in seen)
        current = await pipeline(GetPodStatus(namespace=self.namespace, name="notified"))
        assert seen[-1]["status"]["phase"] == current["status"]["phase"]
        await self.delete(pipeline, pod)

    @pytest.mark.anyio
    async def test_list_pods(self, pipeline: Pipeline) -> None:
        """``list_pods`` returns every created pod with a status."""
        pods = [self.long_running_pod(f"listed-{i}") for i in range(3)]
        for pod in pods:
            await pipeline(CreatePod(pod=pod))
        listed = await pipeline(ListPods())
        names = sorted(p["metadata"]["name"] for p in listed)
        assert names == ["listed-0", "listed-1", "listed-2"]
        assert all("status" in p for p in listed)
        for pod in pods:
            await self.delete(pipeline, pod)

    @pytest.mark.anyio
    async def test_unknown_pod_is_not_found(self, pipeline: Pipeline) -> None:
        """Status, delete, logs and exec of an unknown pod raise ``NotFound``."""
        with pytest.raises(NotFound):
            await pipeline(GetPodStatus(namespace=self.namespace, name="no-such-pod"))
        with pytest.raises(NotFound):
            await pipeline(DeletePod(pod=self.long_running_pod("no-such-pod")))
        if pipeline.supports(Exec):
            with pytest.raises(NotFound):
                await pipeline(Exec(namespace=self.namespace, name="no-such-pod", command=["x"]))

    @pytest.mark.anyio
    async def test_delete_is_idempotent(self, pipeline: Pipeline) -> None:
        """Deleting twice: the second call succeeds or raises ``NotFound``."""
        pod = self.long_running_pod("twice")
        await pipeline(CreatePod(pod=pod))
        await self.wait_phase(pipeline, "twice", lambda p: p == "Running")
        await self.delete(pipeline, pod)
        with contextlib.suppress(NotFound):
            await self.delete(pipeline, pod)

    @pytest.mark.anyio
    async def test_logs(self, pipeline: Pipeline) -> None:
        """A running container's log contains what it wrote (or logs are ``Unsupported``)."""
        pod, fragment = self.log_pod("logged")
        if not isinstance(pipeline.backend, capabilities.SupportsLogs):
            with pytest.raises(Unsupported):
                await pipeline(ReadLogs(namespace=self.namespace, name="logged"))
            return
        await pipeline(CreatePod(pod=pod))
        await self.wait_phase(pipeline, "logged", lambda p: p == "Running")
        data = b""
        with anyio.fail_after(self.running_timeout):
            while fragment not in data:
                data = b""
                async for chunk in await self._open_logs(pipeline, "logged", LogOptions()):
                    data += chunk
                await anyio.sleep(0.05)
        tail = b""
        async for chunk in await self._open_logs(pipeline, "logged", LogOptions(tail_lines=0)):
            tail += chunk
        assert tail == b""
        await self.delete(pipeline, pod)

    async def _open_logs(
        self, pipeline: Pipeline, name: str, options: LogOptions
    ) -> AsyncIterator[bytes]:
        opened = await pipeline(
            ReadLogs(namespace=self.namespace, name=name, container="main", options=options)
        )
        if inspect.isawaitable(opened):  # a read_logs written as a coroutine
            opened = await opened
        return opened  # type: ignore[no-any-return]

    @pytest.mark.anyio
    async def test_exec(self, pipeline: Pipeline) -> None:
        """Exec returns the command's exit code and output (or exec is ``Unsupported``)."""
        command, code, output = self.exec_case()
        if not isinstance(pipeline.backend, capabilities.SupportsExec):
            with pytest.raises(Unsupported):
                await pipeline(Exec(namespace=self.namespace, name="x", command=command))
            return
        pod = self.long_running_pod("execd")
        await pipeline(CreatePod(pod=pod))
        await self.wait_phase(pipeline, "execd", lambda p: p == "Running")
        out = CollectingStream()
        io = ExecIO(stdout=out)  # type: ignore[arg-type]
        with anyio.fail_after(self.running_timeout):
            got = await pipeline(
                Exec(
                    namespace=self.namespace, name="execd", container="main", command=command, io=io
                )
            )
        assert got == code
        assert out.data == output
        await self.delete(pipeline, pod)
