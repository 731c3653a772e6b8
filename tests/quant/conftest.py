from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def native_kernels():
    """Build (or load) the kernels once, before any test points COVE_CACHE at a temporary folder."""
    from cove.quant import kernels

    return kernels.backend()
