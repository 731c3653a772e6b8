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
    # Worker threads per loaded encoder model (0: one per CPU core this process may use), each taking its own
    # batches from the model's queue: with one OpenMP thread each they keep every core busy without the
    # barrier waits of one multi-threaded forward. (A causal LM decodes in one continuous batch: its steps
    # stream every weight from memory, so two half batches would cost twice the traffic of one.)
    inference_workers: int = 0

    @property
    def workers_per_model(self) -> int:
        if self.inference_workers > 0:
            return self.inference_workers
        import os

        return max(
            1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        )

    # --- spaces (README "Spaces"; cove.server.spaces, docs/decisions/space-sandbox.md) ---
    # Whether the hub builds and runs space apps: "on", "off" (repos only), or "admins" (only spaces
    # whose owner is a site admin run). The default is "admins": apps are served on the hub's own origin, so a
    # space's page script runs with its visitor's hub session (docs/decisions/space-sandbox.md); "on" is for
    # hubs whose users all trust each other's code.
    spaces: str = "admins"
    # A running space with no visitor for this long sleeps (its process stops) and wakes on the next visit.
    space_sleep_s: float = 48 * 3600.0
    # Space apps running at once; starting one more puts the least recently visited to sleep.
    max_running_spaces: int = 4
    # Per-space limits of the sandboxed app: address space (MB), CPU seconds per process (0: none),
    # processes and threads of the space's uid.
    space_memory_mb: int = 4096
    space_cpu_seconds: int = 0
    space_max_processes: int = 256
    # A build (venv + pip) past this is stopped (BUILD_ERROR); an app that does not listen within
    # space_start_timeout_s is a RUNTIME_ERROR.
    space_build_timeout_s: float = 1200.0
    space_start_timeout_s: float = 180.0
    # Spaces run as uid space_uid_base + (repo row id % 60000), each its own, when the hub runs as root.
    space_uid_base: int = 200_000
    # Where builds, venvs, app folders and logs live (default: <data_dir>/spaces; the shared wheel cache
    # is its wheels/ folder).
    spaces_dir: Path | None = None
    # The hub as the space relay reaches it (default: the address the hub's own requests arrive on).
    space_hub_url: str | None = None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.expanduser() / 'hub.sqlite'}"

    @property
    def resolved_spaces_dir(self) -> Path:
        return (self.spaces_dir or self.data_dir / "spaces").expanduser()
