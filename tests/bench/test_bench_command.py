"""``vkcompose bench`` end to end, as a real subprocess, on a few pods of the memory recipe.

Figures are not asserted, only that each is present, positive and consistent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from vkcompose.bench.run import BenchOptions, Stopper, run_benchmark
from vkcompose.bench.schema import SCHEMA, validate

ROOT = Path(__file__).resolve().parents[2]
BARE = str(ROOT / "benchmarks" / "recipes" / "bare_memory.py")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def bench(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vkcompose.cli", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "160"},
        check=False,
    )


def check_figures(fig: dict[str, Any], pods: int) -> None:
    assert fig["pods"]["created"] == fig["pods"]["running"] == pods
    assert fig["pods"]["gone"] == fig["pods"]["deletes_sent"] == pods
    assert fig["pods"]["failed"] == 0 and not fig["incomplete"] and not fig["interrupted"]
    for key in ("create_to_running", "delete_to_gone"):
        lat = fig["latency_seconds"][key]
        assert lat["count"] == pods
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert fig["throughput"]["create_to_running_pods_per_s"] > 0
    assert fig["throughput"]["delete_to_gone_pods_per_s"] > 0
    layers = {layer["layer"]: layer for layer in fig["pipeline"]["layers"]}
    assert layers["backend"]["calls"] > 0
    assert sum(layer["share"] for layer in layers.values()) == pytest.approx(1.0)
    kinds = {op["kind"] for op in fig["pipeline"]["backend_ops"]}
    assert {"pod.create", "pod.delete"} <= kinds
    node = fig["api_requests"]["node"]
    assert node["by_verb"]["patch pods/status"]["count"] >= pods  # at least one per pod
    assert fig["api_requests"]["load"]["by_verb"]["create pods"]["count"] == pods
    assert fig["ceiling"]["patches_per_s"] > 0 and fig["ceiling"]["throughput_ratio"] > 0
    proc = fig["process"]
    assert proc["cpu_seconds"] > 0 and proc["rss_peak_bytes"] >= proc["rss_start_bytes"] > 0


def test_json_and_plot(tmp_path: Path) -> None:
    plot = tmp_path / "bench.png"
    run = bench("memory", "--pods", "20", "--concurrency", "8", "--json", "--plot", str(plot))
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # silent with --json
    doc = orjson.loads(run.stdout)
    assert validate(doc, SCHEMA) == []
    assert doc["ratios"] is None and len(doc["results"]) == 1
    check_figures(doc["results"][0], 20)
    data = plot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    import matplotlib.image

    image = matplotlib.image.imread(plot)
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_compare_prints_ratios() -> None:
    run = bench("memory", "--compare", BARE, "--pods", "10", "--rounds", "1", "--churn")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "B/A" in out and "bare_memory.py" in out
    assert "throughput create→Running (pods/s)" in out
    assert "time per middleware" in out and "API requests per pod" in out
    ratio_line = next(line for line in out.splitlines() if "node API requests per pod" in line)
    assert ratio_line.rstrip(" │").endswith("x")
    assert "memory #1: create → Running (10)" in run.stderr  # progress, as lines on a pipe


def test_bad_template_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text("kind: Service\n")
    run = bench("memory", "--pod-template", str(path))
    assert run.returncode != 0
    assert "not a Pod manifest" in run.stderr and "Traceback" not in run.stderr


def test_ctrl_c_prints_what_was_measured() -> None:
    env = {**os.environ, "COLUMNS": "160"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vkcompose.cli", "bench", "memory", "--pods", "5000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    assert process.stderr is not None
    seen = bytearray()

    def read_stderr() -> None:
        assert process.stderr is not None
        while chunk := process.stderr.read1(4096):
            seen.extend(chunk)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while "create → Running".encode() not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out = process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    assert process.returncode == 130, bytes(seen).decode(errors="replace")[-2000:]
    assert "interrupted: figures cover what was measured so far" in out
    created = next(line for line in out.splitlines() if "pods Running / created" in line)
    assert "5,000 / 5,000" not in created  # it stopped early


@pytest.mark.anyio
async def test_two_nodes_go_through_the_scheduler() -> None:
    options = BenchOptions(pods=12, concurrency=4, nodes=2, ceiling_patches=20)
    with anyio.fail_after(60):
        (result,) = await run_benchmark(["memory"], options, stopper=Stopper())
    assert result.binding == "scheduler" and len(result.node_names) == 2
    assert result.running == result.gone == 12 and not result.incomplete
    assert result.ceiling_patches == 20
