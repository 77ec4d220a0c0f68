"""Backends: where pods actually run (a simulator, local processes, …)."""
