"""A state-machine test of the pod controller against the embedded API server.

Random sequences of creates, image updates, deletes, failing backend creates, dropped watches and
controller restarts; after every step the system must settle to: the API's pods and the
backend's pods are the same set (same UIDs), and every API status shows the backend's phase.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.from_thread
from hypothesis import HealthCheck, settings
from hypothesis import strategies as stx
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from nodekit import FAST, make_pod

from vkcompose.apiserver import embedded_apiserver
from vkcompose.backends.memory import MemoryBackend
from vkcompose.node.kube import STRATEGIC_PATCH, Kube, KubeError, connect, path_of
from vkcompose.node.runtime import NodeRuntime, virtual_node
from vkcompose.node.settings import VirtualNode

NAMES = stx.sampled_from(["a", "b", "c"])


class Env:
    """Owns the server, backend and runtime in one task (cancel scopes stay in their task)."""

    def __init__(self) -> None:
        self.kube: Kube | None = None
        self.backend: MemoryBackend | None = None
        self.rt: NodeRuntime | None = None
        self.restart = anyio.Event()
        self.restarted = anyio.Event()
        self.stopping = False

    async def main(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with (
            embedded_apiserver(tls=False, bookmark_interval=0.2) as server,
            MemoryBackend() as backend,
        ):
            self.backend = backend
            self.kube = await connect(server.kubeconfig_path)
            first = True
            try:
                while not self.stopping:
                    node = VirtualNode(name="vk-sm", backend=backend, **FAST)
                    async with virtual_node(node, kube=self.kube) as rt:
                        self.rt = rt
                        if first:
                            first = False
                            task_status.started()
                        else:
                            self.restarted.set()
                        await self.restart.wait()
                        self.restart = anyio.Event()
            finally:
                await self.kube.close()

    async def do_restart(self) -> None:
        self.restarted = anyio.Event()
        self.restart.set()
        await self.restarted.wait()

    async def stop(self) -> None:
        self.stopping = True
        self.restart.set()

    async def api_pods(self) -> dict[str, dict[str, Any]]:
        assert self.kube is not None
        doc = await self.kube.get(path_of("pods", namespace="default"))
        return {p["metadata"]["name"]: p for p in doc["items"]}

    async def settled(self) -> bool:
        assert self.backend is not None
        api = await self.api_pods()
        backend = {p["metadata"]["name"]: p for p in await self.backend.list_pods()}
        if {n: p["metadata"]["uid"] for n, p in api.items()} != {
            n: p["metadata"]["uid"] for n, p in backend.items()
        }:
            return False
        for name, pod in api.items():
            if pod["metadata"].get("deletionTimestamp"):
                return False
            if pod["status"].get("phase") != backend[name]["status"]["phase"]:
                return False
            if pod["status"].get("podIP") != backend[name]["status"].get("podIP"):
                return False
        return True

    async def wait_settled(self) -> None:
        with anyio.fail_after(15):
            while not await self.settled():  # noqa: ASYNC110 (polling two systems)
                await anyio.sleep(0.02)


class PodLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        self.portal = self._portal_cm.__enter__()
        self.env = Env()
        self.future, _ = self.portal.start_task(self.env.main)

    def teardown(self) -> None:
        try:
            self.portal.call(self.env.stop)
            self.future.result(timeout=20)
        finally:
            self._portal_cm.__exit__(None, None, None)

    def _call(self, coro_fn: Any, *args: Any) -> Any:
        return self.portal.call(coro_fn, *args)

    @rule(name=NAMES, faulty=stx.booleans(), image=stx.sampled_from(["x:1", "x:2"]))
    def create(self, name: str, faulty: bool, image: str) -> None:
        annotations = (
            {"sim.vkcompose.io/fail-create": "flaky", "sim.vkcompose.io/fail-create-times": "2"}
            if faulty
            else {}
        )

        async def go() -> None:
            assert self.env.kube is not None
            try:
                await self.env.kube.create(
                    path_of("pods", namespace="default"),
                    make_pod(name, node="vk-sm", image=image, annotations=annotations),
                )
            except KubeError as exc:
                assert exc.conflict  # exists (maybe still terminating)

        self._call(go)

    @rule(name=NAMES, grace=stx.sampled_from([0, 1, None]))
    def delete(self, name: str, grace: int | None) -> None:
        async def go() -> None:
            assert self.env.kube is not None
            options = {} if grace is None else {"gracePeriodSeconds": grace}
            try:
                await self.env.kube.delete(
                    path_of("pods", name, namespace="default"), options=options
                )
            except KubeError as exc:
                assert exc.not_found

        self._call(go)

    @rule(name=NAMES, image=stx.sampled_from(["x:1", "x:2", "x:3"]))
    def update_image(self, name: str, image: str) -> None:
        async def go() -> None:
            assert self.env.kube is not None
            try:
                await self.env.kube.patch(
                    path_of("pods", name, namespace="default"),
                    {"spec": {"containers": [{"name": "app", "image": image}]}},
                    content_type=STRATEGIC_PATCH,
                )
            except KubeError as exc:
                assert exc.not_found or exc.status == 422

        self._call(go)

    @rule()
    def drop_watches(self) -> None:
        async def go() -> None:
            assert self.env.rt is not None
            self.env.rt.pods.drop_watches()

        self._call(go)

    @rule()
    def restart_controller(self) -> None:
        self._call(self.env.do_restart)

    @invariant()
    def api_matches_backend(self) -> None:
        self._call(self.env.wait_settled)

        async def images_match() -> None:
            assert self.env.backend is not None
            api = await self.env.api_pods()
            for bpod in await self.env.backend.list_pods():
                name = bpod["metadata"]["name"]
                assert (
                    bpod["spec"]["containers"][0]["image"]
                    == (api[name]["spec"]["containers"][0]["image"])
                )

        for _ in range(50):
            try:
                self._call(images_match)
                return
            except AssertionError:
                self._call(anyio.sleep, 0.05)
        self._call(images_match)


PodLifecycle.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPodLifecycle = PodLifecycle.TestCase
