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
    # Largest request body where files travel (NDJSON commit, LFS object upload), in bytes.
    max_upload_bytes: int = 10 * 1024**3
    # Largest body of every JSON endpoint (create, settings, preupload, LFS batch/verify, paths-info, ...).
    max_json_bytes: int = 1024**2
    # validate-yaml gets whole READMEs, so a larger cap. A large card (validated, or in a commit) is parsed
    # in a child process, stopped past yaml_timeout_seconds.
    max_yaml_bytes: int = 8 * 1024**2
    yaml_timeout_seconds: float = 10.0
    # Slow bodies: each read waits at most body_idle_timeout_seconds for bytes, and the whole body must
    # arrive within body_deadline_seconds + size / body_min_bytes_per_second (size: Content-Length, or
    # the bytes received so far when chunked), so a client trickling bytes cannot hold a request forever.
    body_idle_timeout_seconds: float = 30.0
    body_deadline_seconds: float = 60.0
    body_min_bytes_per_second: int = 100_000
    # Lifetimes of the signed LFS transfer URLs (the batch API hands them out; they carry no token).
    lfs_download_url_seconds: int = 3600
    lfs_upload_url_seconds: int = 3 * 3600
    # preupload answers: "auto" (regular for hf_hub >= 1 clients up to regular_max_bytes, since they would
    # upload "lfs" files through Xet, which Cove does not speak; lfs for older clients), "lfs" or "regular".
    upload_mode: str = "auto"
    regular_max_bytes: int = 2 * 1024**3
    # Files at least this large are answered "lfs" when LFS is the chosen transport.
    lfs_threshold_bytes: int = 10 * 1024**2
    tree_page_size: int = 1000
    list_page_size: int = 1000
    import_bundled: bool = True

    # --- at scale (README "The hub at scale") ---
    # Apply schema migrations at start: default yes for SQLite (the embedded hub), no for a shared database,
    # where `cove db upgrade` moves the schema and the server only checks it.
    auto_migrate: bool | None = None
    # Blobs: "disk" (under the data dir) or "s3" (any S3-compatible store, shared by replicas).
    blob_store: str = "disk"
    s3_endpoint_url: str | None = None
    s3_bucket: str = "cove"
    s3_prefix: str = ""
    s3_region: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    # Answer GETs of LFS files with a redirect to a presigned S3 URL instead of streaming them through.
    s3_presign_downloads: bool = False
    # Hex secret that signs LFS transfer URLs; replicas behind one address must share it
    # (default: a random one kept in the data dir).
    secret: str | None = None

    # --- website accounts (README "Accounts and signing in") ---
    # How long a browser stays signed in (the session cookie's and the session row's lifetime).
    session_days: float = 14.0
    # Sign-in attempts: after login_max_failures wrong passwords for one user name, or from one client
    # address, within login_window_seconds, sign-in answers 429 until the oldest failure leaves the window.
    login_max_failures: int = 5
    login_window_seconds: int = 300

    # --- the inference API (README "Inference API"; cove.server.inference) ---
    # Models stay loaded until their parameters together pass this many MB; then the least recently used
    # are evicted (after finishing the requests they hold).
    inference_memory_mb: int = 4096
    # Encoder tasks: concurrent requests of one model are batched up to this many (padded) tokens per
    # forward, waiting at most max_batch_wait_ms for companions after the first arrives.
    max_batch_tokens: int = 16384
    max_batch_wait_ms: float = 5.0
    # Requests waiting per model; past it the answer is 429 with Retry-After.
    inference_max_queue: int = 256
    # Generation: sequences decoded together per model (continuous batching).
    inference_max_rows: int = 16
    # Anonymous callers may use public models unless this is on.
    inference_require_token: bool = False
    # Largest request body of the inference routes, in bytes.
    max_inference_bytes: int = 8 * 1024**2
    # New tokens a generation gets when the request names no limit (TGI: 100; chat: the rest of the context up to this).
    inference_default_max_tokens: int = 1024
    # dtype models load in ("auto", "float32", "bfloat16"; None: the checkpoint's, float32 where bf16 is slow).
    inference_dtype: str | None = None
    # Quantized weights for served models: "int8" / "int4" quantize every model's linear layers on load
    # (cove.quant), "gguf" keeps GGUF models' blocks as stored (other models load in float); None: float.
    inference_quantization: str | None = None
    # The models TGI's and TEI's unprefixed routes serve (/generate, /generate_stream, /info; /embed), as
    # those servers serve one; every model is also served under /models/{repo_id}/... .
    inference_model: str | None = None
    inference_embed_model: str | None = None
    # A model that failed to load answers its error for this long before a request tries again.
    inference_load_retry_seconds: float = 30.0
    # A caller's model lookup (token, repo, revision -> commit) is reused for this long (0: every request).
    inference_resolve_cache_seconds: float = 2.0
    # Encoder workers compute on one OpenMP thread each (their own thread only): on a busy machine a
    # two-thread team waits for its slowest thread at every op; several models' workers run in parallel.
    inference_worker_one_thread: bool = True

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.expanduser() / 'hub.sqlite'}"
