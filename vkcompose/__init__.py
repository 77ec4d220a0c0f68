"""vkcompose: composable virtual kubelets.

Every pod operation flows through a pipeline of small middlewares and ends in a small backend::

    from vkcompose import CreatePod, compose
    from vkcompose.backends.memory import MemoryBackend

    pipeline = compose(backend=MemoryBackend())
    await pipeline(CreatePod(pod=pod))

A recipe assembles node settings, middlewares and a backend into a :class:`VirtualNode`.
"""

from vkcompose._version import __version__
from vkcompose.capabilities import (
    KnowsPodIPs,
    PodLifecycle,
    SupportsAttach,
    SupportsExec,
    SupportsLogs,
    SupportsNodeStatus,
    SupportsNotify,
    SupportsPing,
    SupportsPortForward,
    SupportsStats,
)
from vkcompose.errors import (
    InvalidInput,
    NotFound,
    PermanentError,
    TemporaryError,
    Unsupported,
    VKComposeError,
)
from vkcompose.node.settings import VirtualNode
from vkcompose.ops import (
    AllocatePodIPs,
    Attach,
    CreatePod,
    DeletePod,
    Exec,
    ExecIO,
    GetNodeStatus,
    GetPodStatus,
    GetStats,
    ListPods,
    LogOptions,
    NodeInfo,
    Op,
    Ping,
    PortForward,
    ReadLogs,
    TerminalSize,
    UpdatePod,
)
from vkcompose.pipeline import Handler, Middleware, Pipeline, compose
from vkcompose.recipes import RecipeSettings

__all__ = [
    "AllocatePodIPs",
    "Attach",
    "CreatePod",
    "DeletePod",
    "Exec",
    "ExecIO",
    "GetNodeStatus",
    "GetPodStatus",
    "GetStats",
    "Handler",
    "InvalidInput",
    "KnowsPodIPs",
    "ListPods",
    "LogOptions",
    "Middleware",
    "NodeInfo",
    "NotFound",
    "Op",
    "PermanentError",
    "Ping",
    "Pipeline",
    "PodLifecycle",
    "PortForward",
    "ReadLogs",
    "RecipeSettings",
    "SupportsAttach",
    "SupportsExec",
    "SupportsLogs",
    "SupportsNodeStatus",
    "SupportsNotify",
    "SupportsPing",
    "SupportsPortForward",
    "SupportsStats",
    "TemporaryError",
    "TerminalSize",
    "Unsupported",
    "UpdatePod",
    "VKComposeError",
    "VirtualNode",
    "__version__",
    "compose",
]
