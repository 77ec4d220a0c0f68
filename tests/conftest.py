"""Shared pytest configuration: async tests run on asyncio (kubernetes_asyncio needs it)."""

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only."""
    return "asyncio"
