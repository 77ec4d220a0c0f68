"""Reusable middlewares: each module exposes a pure core first, then a thin adapter."""
