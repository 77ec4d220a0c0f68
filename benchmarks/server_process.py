"""The embedded API server in a child process, so a benchmark's client and server each get
their own core (as a real control plane and kubelet would).

    with apiserver_process("memory") as (kubeconfig, pid):
        ...   # talk to it; ``pid`` lets you read the server's CPU time
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TLS = True
"""The embedded API server always serves TLS here (as it does by default)."""


def serve(data_dir: str, storage: str) -> None:
    """Child process: run the API server and print its kubeconfig path."""
    from vkcompose.apiserver import APIServer
    from vkcompose.apiserver.server import serve_forever
    from vkcompose.serve import tune_gc

    tune_gc()  # as `vkcompose apiserver` does

    def ready(server: APIServer) -> None:
        print(server.kubeconfig_path, flush=True)

    asyncio.run(serve_forever(Path(data_dir), port=0, storage=storage, tls=TLS, on_ready=ready))


@contextlib.contextmanager
def apiserver_process(storage: str = "memory") -> Iterator[tuple[str, int]]:
    """Start the server in a child process; yield (kubeconfig path, server pid)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, __file__, tmp, storage],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            assert proc.stdout is not None
            kubeconfig = proc.stdout.readline().strip()
            if not kubeconfig:
                raise RuntimeError("the API server did not start")
            yield kubeconfig, proc.pid
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
