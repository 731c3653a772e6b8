"""Server settings, from COVE_* environment variables or arguments (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path("~/.cove").expanduser()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COVE_", extra="ignore")

    data_dir: Path = default_data_dir()
    database_url: str | None = None  # defaults to SQLite in the data dir
    # Largest request body (NDJSON commit, LFS object upload), in bytes.
    max_upload_bytes: int = 10 * 1024**3
    # preupload answers: "auto" (regular for hf_hub >= 1 clients up to regular_max_bytes, since they would
    # upload "lfs" files through Xet, which Cove does not speak; lfs for older clients), "lfs" or "regular".
    upload_mode: str = "auto"
    regular_max_bytes: int = 2 * 1024**3
    # Files at least this large are answered "lfs" when LFS is the chosen transport.
    lfs_threshold_bytes: int = 10 * 1024**2
    tree_page_size: int = 1000
    list_page_size: int = 1000
    import_bundled: bool = True

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.expanduser() / 'hub.sqlite'}"
