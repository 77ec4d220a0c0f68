"""Kubelet HTTP API: logs, exec/attach, port-forward, stats (and the protocols beneath them)."""
