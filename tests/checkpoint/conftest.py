import pytest


@pytest.fixture(autouse=True)
def _private_cove_cache(tmp_path_factory, monkeypatch):
    """GGUF loads cache their dequantized weights: keep these tests' entries out of the user's cache."""
    monkeypatch.setenv("COVE_CACHE", str(tmp_path_factory.mktemp("cove-cache")))
