"""One benchmark round, and rounds of one or two recipes, accumulated per recipe.

A round: a fresh in-memory embedded API server (with a server-side request counter), the
recipe's node(s) on it with a timed pipeline, the benchmark's namespace, ConfigMap and Secret,
then the measured phases — create N pods with C concurrent raw creates and wait until all are
Running; optionally churn (delete a quarter and create as many new pods at once); delete all
and wait until they are gone — then the API server's status-patch ceiling on the same server.
Latencies come from one watch of the benchmark's pods (client-side timestamps).

Interrupting (:class:`Stopper`) ends the measured phases at once; what was measured is kept,
and the pods are still deleted (briefly) so backends that run real processes stop them.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.abc
import attrs
import psutil

from vkcompose.apiserver import embedded_apiserver
from vkcompose.bench.ceiling import Ceiling, measure_ceiling
from vkcompose.bench.instrument import instrument_node
from vkcompose.bench.load import LoadClient, LoadError, PodTracker, watch_pods
from vkcompose.bench.pods import NAMESPACE, Pod, default_template, fixtures, pod_body
from vkcompose.bench.requests import RequestCounter
from vkcompose.middlewares.timing import TimingRecorder
from vkcompose.node.runtime import run_virtual_node
from vkcompose.recipes import RecipeSettings, build_node

__all__ = [
    "BenchOptions",
    "Progress",
    "RecipeResult",
    "Stopper",
    "run_benchmark",
    "run_round",
]

CLEANUP_SECONDS = 15.0
"""How long an interrupted round waits for its pods to be deleted."""


@attrs.define(kw_only=True)
class BenchOptions:
    """What to run: ``pods`` per round, ``concurrency`` of the load, ``nodes`` (replicas)."""

    pods: int = 1000
    concurrency: int = 16
    nodes: int = 1
    churn: bool = False
    churn_fraction: float = 0.25
    template: Pod = attrs.field(factory=default_template)
    template_name: str = "default"
    rounds: int = 1
    timeout_seconds: float = 600.0
    """Hang guard for each wait (all Running, all gone)."""
    ceiling_patches: int | None = None
    """Status patches for the ceiling (default: the pod count, between 200 and 5000)."""

    def ceiling_count(self) -> int:
        """How many status patches the ceiling measurement sends."""
        if self.ceiling_patches is not None:
            return self.ceiling_patches
        return max(200, min(self.pods, 5000))


class Progress(Protocol):
    """Where a round reports progress (a progress bar, or nothing)."""

    def phase(self, label: str, total: int) -> None:
        """A new phase of ``total`` steps starts."""

    def advance_to(self, completed: int) -> None:
        """``completed`` steps of the current phase are done."""


class NoProgress:
    """Reports nothing."""

    def phase(self, label: str, total: int) -> None:
        """Ignore."""

    def advance_to(self, completed: int) -> None:
        """Ignore."""


class _Prefixed:
    """Prefixes phase labels (recipe and round)."""

    def __init__(self, inner: Progress, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def phase(self, label: str, total: int) -> None:
        self.inner.phase(f"{self.prefix}: {label}", total)

    def advance_to(self, completed: int) -> None:
        self.inner.advance_to(completed)


class Stopper:
    """Ctrl-C: :meth:`interrupt` ends the measured phases of the running round."""

    def __init__(self) -> None:
        self.interrupted = False
        self._scopes: list[anyio.CancelScope] = []

    @contextlib.contextmanager
    def measured(self) -> Any:
        """A cancel scope that :meth:`interrupt` cancels (entered at once if interrupted)."""
        with anyio.CancelScope() as scope:
            if self.interrupted:
                scope.cancel()
            self._scopes.append(scope)
            try:
                yield scope
            finally:
                self._scopes.remove(scope)

    def interrupt(self) -> None:
        """Stop measuring (a second call also stops the cleanup)."""
        self.interrupted = True
        for scope in list(self._scopes):
            scope.cancel()


@attrs.define
class RecipeResult:
    """Everything measured for one recipe, summed over its rounds."""

    recipe: str
    binding: str = "bound"
    node_names: list[str] = attrs.field(factory=list)
    rounds: int = 0
    created: int = 0
    running: int = 0
    deletes_sent: int = 0
    gone: int = 0
    churned: int = 0
    failed: int = 0
    failures: list[str] = attrs.field(factory=list)
    create_to_running: list[float] = attrs.field(factory=list)
    delete_to_gone: list[float] = attrs.field(factory=list)
    running_seconds: float = 0.0
    """Sum over rounds of first create sent → last pod Running."""
    delete_seconds: float = 0.0
    """Sum over rounds of first delete sent → last pod gone."""
    churn_seconds: float = 0.0
    timings: dict[tuple[str, str], list[float]] = attrs.field(factory=dict)
    """``(layer, op kind) -> [calls, total seconds, self seconds]``."""
    layer_order: list[str] = attrs.field(factory=list)
    requests: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    ceiling_patches: int = 0
    ceiling_seconds: float = 0.0
    cpu_user: float = 0.0
    cpu_system: float = 0.0
    wall_seconds: float = 0.0
    rss_start: int = 0
    rss_peak: int = 0
    rss_end: int = 0
    rss_growth: int = 0
    """Sum over rounds of RSS when all pods run minus RSS before the creates."""
    rss_growth_pods: int = 0
    interrupted: bool = False
    incomplete: list[str] = attrs.field(factory=list)

    def add_timings(self, recorder: TimingRecorder) -> None:
        """Add a round's pipeline timings."""
        for timing in recorder.stats():
            if timing.layer not in self.layer_order:
                self.layer_order.append(timing.layer)
            entry = self.timings.setdefault((timing.layer, timing.kind), [0, 0.0, 0.0])
            entry[0] += timing.count
            entry[1] += timing.total
            entry[2] += timing.self_time

    def add_ceiling(self, ceiling: Ceiling) -> None:
        """Add a round's ceiling measurement."""
        self.ceiling_patches += ceiling.patches
        self.ceiling_seconds += ceiling.seconds


class _Sampler:
    """Samples the process's RSS (peak) while running."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = process.memory_info().rss

    def sample(self) -> int:
        rss = int(self.process.memory_info().rss)
        self.peak = max(self.peak, rss)
        return rss

    async def run(self) -> None:
        while True:
            self.sample()
            await anyio.sleep(0.25)


async def _each(
    items: Iterable[str], concurrency: int, action: Callable[[str], Awaitable[None]]
) -> None:
    """Run ``action`` over ``items`` with ``concurrency`` workers."""
    it = iter(items)

    async def worker() -> None:
        for item in it:
            await action(item)

    async with anyio.create_task_group() as tg:
        for _ in range(max(1, concurrency)):
            tg.start_soon(worker)


def _why(status: int, body: bytes) -> str:
    text = body[:160].decode(errors="replace")
    return f"HTTP {status}: {text}"


async def _watch_progress(progress: Progress, count: Callable[[], int], every: float = 0.1) -> None:
    while True:
        progress.advance_to(count())
        await anyio.sleep(every)


async def run_round(
    recipe: str,
    options: BenchOptions,
    result: RecipeResult,
    *,
    round_index: int,
    progress: Progress | None = None,
    stopper: Stopper | None = None,
) -> None:
    """Run one round of ``recipe`` and add its figures to ``result``."""
    progress = _Prefixed(progress or NoProgress(), f"{recipe} #{round_index}")
    stopper = stopper or Stopper()
    counter = RequestCounter()
    recorder = TimingRecorder()
    process = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="vkcompose-bench-") as state_dir:
        settings = RecipeSettings(
            replicas=options.nodes if options.nodes > 1 else None, state_dir=Path(state_dir)
        )
        node = build_node(recipe, settings)
        instrument_node(node, recorder)
        names = node.node_names()
        bound_to = names[0] if len(names) == 1 else None
        result.binding = "bound" if bound_to else "scheduler"
        result.node_names = names
        run_id = f"r{round_index}"
        async with embedded_apiserver(storage="memory", request_observer=counter.observe) as srv:
            node_client = await srv.api_client()
            load_api = await _load_client(srv.kubeconfig_path, max(100, options.concurrency * 2))
            load = LoadClient(load_api)
            try:
                for plural, obj in fixtures():
                    await load.ensure(plural, obj)
                async with anyio.create_task_group() as node_tg:
                    await node_tg.start(
                        functools.partial(run_virtual_node, node, api_client=node_client)
                    )
                    await _measure(
                        load,
                        options,
                        result,
                        counter=counter,
                        recorder=recorder,
                        process=process,
                        bound_to=bound_to,
                        run_id=run_id,
                        progress=progress,
                        stopper=stopper,
                    )
                    node_tg.cancel_scope.cancel()
            finally:
                await load.close()
                await load_api.close()
                await node_client.close()
                aclose = getattr(node.backend, "aclose", None)
                if aclose is not None:  # the runtime leaves the backend open
                    stops = "stop_pods" in inspect.signature(aclose).parameters
                    with anyio.CancelScope(shield=True):
                        # nothing the benchmark started may outlive it (after Ctrl-C too)
                        await (aclose(stop_pods=True) if stops else aclose())
        result.rounds += 1


async def _measure(
    load: LoadClient,
    options: BenchOptions,
    result: RecipeResult,
    *,
    counter: RequestCounter,
    recorder: TimingRecorder,
    process: psutil.Process,
    bound_to: str | None,
    run_id: str,
    progress: Progress,
    stopper: Stopper,
) -> None:
    tracker = PodTracker()
    sampler = _Sampler(process)
    if not result.rss_start:
        result.rss_start = sampler.sample()
    seq = itertools.count()

    def new_name() -> str:
        return f"bench-{run_id}-{next(seq)}"

    async def create(name: str) -> None:
        tracker.create_sent(name)
        body = pod_body(options.template, name, node_name=bound_to, run=run_id)
        try:
            status, reply = await load.request(
                "POST", f"/api/v1/namespaces/{NAMESPACE}/pods", body=body
            )
        except (OSError, TimeoutError) as error:
            tracker.create_failed(name, f"create: {error!r}")
            return
        if status != 201:
            tracker.create_failed(name, f"create: {_why(status, reply)}")

    async def delete(name: str) -> None:
        tracker.delete_about_to_send(name)
        try:
            status, reply = await load.request(
                "DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}", body={}
            )
        except (OSError, TimeoutError) as error:
            tracker.delete_failed(name, f"delete: {error!r}")
            return
        if status not in (200, 202):
            tracker.delete_failed(name, f"delete: {_why(status, reply)}")

    async def wait(what: str, condition: Callable[[], bool]) -> bool:
        with anyio.move_on_after(options.timeout_seconds):
            await tracker.wait_until(condition)
            return True
        result.incomplete.append(f"timed out after {options.timeout_seconds:g}s waiting {what}")
        return False

    before_requests = counter.snapshot()
    cpu_before = process.cpu_times()
    wall_before = time.perf_counter()
    live: list[str] = []
    async with anyio.create_task_group() as tg:
        await tg.start(watch_pods, load, tracker, run_id)
        tg.start_soon(sampler.run)
        recorder.reset()
        with stopper.measured():
            # -- create → Running
            names = [new_name() for _ in range(options.pods)]
            live.extend(names)
            rss_before = sampler.sample()
            progress.phase("create → Running", len(names))
            with _progress_of(tg, progress, lambda: len(tracker.running)) as done:
                first = time.perf_counter()
                await _each(names, options.concurrency, create)
                ok = await wait("for pods to be Running", lambda: tracker.awaiting_running == 0)
                done()
            result.running_seconds += _span(first, tracker.running.values())
            result.rss_growth += sampler.sample() - rss_before
            result.rss_growth_pods += len(tracker.running)
            # -- churn
            if ok and options.churn:
                k = max(1, int(len(live) * options.churn_fraction))
                old, live[:k] = live[:k], []
                fresh = [new_name() for _ in range(k)]
                live.extend(fresh)
                progress.phase("churn", 2 * k)
                first = time.perf_counter()
                with _progress_of(
                    tg,
                    progress,
                    lambda: (
                        sum(n in tracker.gone for n in old)
                        + sum(n in tracker.running for n in fresh)
                    ),
                ) as done:
                    async with anyio.create_task_group() as churn:
                        churn.start_soon(_each, old, max(1, options.concurrency // 2), delete)
                        churn.start_soon(_each, fresh, max(1, options.concurrency // 2), create)
                    ok = await wait(
                        "for churned pods",
                        lambda: tracker.awaiting_running == 0 and tracker.awaiting_gone == 0,
                    )
                    done()
                result.churn_seconds += time.perf_counter() - first
                result.churned += k
            # -- delete → gone
            if ok:
                progress.phase("delete → gone", len(live))
                first = time.perf_counter()
                start_gone = len(tracker.gone)
                with _progress_of(tg, progress, lambda: len(tracker.gone) - start_gone) as done:
                    await _each(list(live), options.concurrency, delete)
                    await wait("for pods to be gone", lambda: tracker.awaiting_gone == 0)
                    done()
                result.delete_seconds += _span(
                    first, (tracker.gone[n] for n in live if n in tracker.gone)
                )
        interrupted = stopper.interrupted
        cpu_after = process.cpu_times()
        result.wall_seconds += time.perf_counter() - wall_before
        result.cpu_user += cpu_after.user - cpu_before.user
        result.cpu_system += cpu_after.system - cpu_before.system
        after_requests = counter.snapshot()
        result.requests.update(after_requests - before_requests)
        result.add_timings(recorder)
        _collect(result, tracker)
        leftover = [n for n in tracker.created if n not in tracker.delete_sent]
        if leftover or tracker.awaiting_gone:
            result.interrupted = result.interrupted or interrupted
            await _cleanup(leftover, tracker, options, delete, stopper, progress)
        elif not interrupted:
            progress.phase("API server ceiling (status patches)", 1)
            with stopper.measured():
                try:
                    ceiling = await measure_ceiling(
                        load, patches=options.ceiling_count(), concurrency=options.concurrency
                    )
                except LoadError as error:
                    result.incomplete.append(f"ceiling: {error}")
                else:
                    result.add_ceiling(ceiling)
            progress.advance_to(1)
        result.interrupted = result.interrupted or stopper.interrupted
        result.rss_peak = max(result.rss_peak, sampler.peak)
        result.rss_end = sampler.sample()
        tg.cancel_scope.cancel()


def _collect(result: RecipeResult, tracker: PodTracker) -> None:
    result.created += len(tracker.created)
    result.running += len(tracker.running)
    result.deletes_sent += len(tracker.delete_sent)
    result.gone += len(tracker.gone)
    result.failed += len(tracker.failed)
    for name, why in itertools.islice(tracker.failed.items(), 5 - len(result.failures)):
        result.failures.append(f"{name}: {why}")
    result.create_to_running.extend(tracker.create_to_running())
    result.delete_to_gone.extend(tracker.delete_to_gone())


async def _cleanup(
    leftover: Sequence[str],
    tracker: PodTracker,
    options: BenchOptions,
    delete: Callable[[str], Awaitable[None]],
    stopper: Stopper,
    progress: Progress,
) -> None:
    """Delete what is left (unmeasured) so backends stop their pods; bounded in time."""
    progress.phase("cleaning up", len(leftover))
    with stopper.measured(), anyio.move_on_after(CLEANUP_SECONDS):
        await _each(leftover, options.concurrency, delete)
        await tracker.wait_until(lambda: tracker.awaiting_gone == 0)


def _span(first: float, ends: Iterable[float]) -> float:
    last = max(ends, default=first)
    return max(last - first, 0.0)


@contextlib.contextmanager
def _progress_of(tg: anyio.abc.TaskGroup, progress: Progress, count: Callable[[], int]) -> Any:
    """Report ``count()`` to ``progress`` until the block ends (``done()`` reports it last)."""
    scope = anyio.CancelScope()

    async def poll() -> None:
        with scope:
            await _watch_progress(progress, count)

    tg.start_soon(poll)

    def done() -> None:
        progress.advance_to(count())

    try:
        yield done
    finally:
        scope.cancel()


async def run_benchmark(
    recipes: Sequence[str],
    options: BenchOptions,
    *,
    progress: Progress | None = None,
    stopper: Stopper | None = None,
    results: list[RecipeResult] | None = None,
) -> list[RecipeResult]:
    """``options.rounds`` rounds of each recipe, interleaved (A, B, A, B …).

    The figures accumulate in ``results`` (one per recipe, appended to the given list, so a
    caller keeps what was measured even when this is cancelled).
    """
    stopper = stopper or Stopper()
    results = results if results is not None else []
    results.extend(RecipeResult(recipe=ref) for ref in recipes)
    for round_index in range(1, options.rounds + 1):
        for result in results:
            if stopper.interrupted:
                return results
            await run_round(
                result.recipe,
                options,
                result,
                round_index=round_index,
                progress=progress,
                stopper=stopper,
            )
    return results


async def _load_client(kubeconfig: Path, pool_size: int) -> Any:
    """A kubernetes_asyncio client whose connection pool fits the load's concurrency (the
    pool size is fixed when the client is built, so it is set on the configuration first)."""
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)
