"""The curated public API is pinned: changing it is a deliberate act."""

import vkcompose

EXPECTED = {
    "AllocatePodIPs", "Attach", "CreatePod", "DeletePod", "Exec", "ExecIO", "GetNodeStatus",
    "GetPodStatus", "GetStats", "Handler", "InvalidInput", "KnowsPodIPs", "ListPods",
    "LogOptions", "Middleware", "NodeInfo", "NotFound", "Op", "PermanentError", "Ping",
    "Pipeline", "PodLifecycle", "PortForward", "ReadLogs", "RecipeSettings", "SupportsAttach",
    "SupportsExec", "SupportsLogs", "SupportsNodeStatus", "SupportsNotify", "SupportsPing",
    "SupportsPortForward", "SupportsStats", "TemporaryError", "TerminalSize", "Unsupported",
    "UpdatePod", "VKComposeError", "VirtualNode", "__version__", "compose",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(vkcompose.__all__) == EXPECTED


def test_every_name_resolves_and_is_documented() -> None:
    for name in vkcompose.__all__:
        value = getattr(vkcompose, name)
        if name != "__version__" and callable(value):
            assert value.__doc__, name
