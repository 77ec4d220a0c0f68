"""Shared pytest configuration: async tests run on asyncio (kubernetes_asyncio needs it), and
hypothesis never fails a test for being slow on a busy machine (behaviour is what we test)."""

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "vkcompose",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("vkcompose")


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only."""
    return "asyncio"
