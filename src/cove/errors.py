"""Every exception Cove raises.

Each one also subclasses the built-in it resembles, so callers can catch either
(``except FileNotFoundError`` catches ``EntryNotFoundError``). Messages say what was wrong,
with the value, and what to do.
"""

from __future__ import annotations


class CoveError(Exception):
    """Base class of every Cove error."""


# --- configuration, checkpoints, models -------------------------------------------------


class ConfigError(CoveError, ValueError):
    """A config.json value that Cove cannot honour (unknown model_type, unsupported option)."""


class CheckpointError(CoveError, ValueError):
    """A weights file that is missing keys, has unexpected keys, wrong shapes or is corrupt."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle-based weights file, refused without an explicit opt-in."""


class ModelNotFoundError(CoveError, FileNotFoundError):
    """A model name or path that resolves to nothing."""


class MissingFileError(CoveError, FileNotFoundError):
    """A file a model or tokenizer folder needs is not there."""


class RemoteCodeError(CoveError, ValueError):
    """``trust_remote_code=True``: Cove never runs code that comes with a repo."""


# --- tokenization ---------------------------------------------------------------------------


class TokenizerError(CoveError, ValueError):
    """Bad tokenizer files or bad arguments to a tokenizer call."""


# --- generation -----------------------------------------------------------------------------


class GenerationError(CoveError, ValueError):
    """Bad generation options or inputs (an unknown option, a prompt longer than the context)."""


class GenerationInputError(GenerationError):
    """A request the continuous batcher refuses at submit: an empty prompt, bad sampling parameters, or a
    prompt plus max_new_tokens past the model's context window (the message names the limit)."""


class QueueFullError(CoveError, RuntimeError):
    """The continuous batcher's rows and waiting queue are all taken; ``retry_after`` is a suggested wait in
    seconds (an estimate from the running requests' remaining tokens and the recent step time)."""

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


# --- pipelines ------------------------------------------------------------------------------


class PipelineError(CoveError, ValueError):
    """Bad pipeline task, parameters or inputs."""


# --- hub client and server ------------------------------------------------------------------


class HubError(CoveError, OSError):
    """Base class of hub errors, client and server side."""


class OfflineModeError(HubError, ConnectionError):
    """A network call was needed while offline mode (HF_HUB_OFFLINE=1) is on."""


class RepoNotFoundError(HubError, FileNotFoundError):
    """The repo does not exist, or the caller may not see it."""


class RevisionNotFoundError(HubError, FileNotFoundError):
    """The branch, tag or commit does not exist in the repo."""


class EntryNotFoundError(HubError, FileNotFoundError):
    """The file does not exist at that revision."""


# --- datasets -------------------------------------------------------------------------------


class DatasetError(CoveError, ValueError):
    """Bad dataset files, splits or operations."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset name, folder, data file or pattern that resolves to nothing."""


class DatasetIndexError(DatasetError, IndexError):
    """A row index outside the dataset."""


# --- metrics --------------------------------------------------------------------------------


class MetricError(CoveError, ValueError):
    """Unknown metric names and inputs a metric cannot score."""


# --- training -------------------------------------------------------------------------------


class TrainingError(CoveError, ValueError):
    """Bad training arguments or state."""


class MissingIntegrationError(TrainingError, RuntimeError):
    """A requested ``report_to`` integration (e.g. TensorBoard) is not installed (a RuntimeError, as in
    transformers)."""


# --- hub server and embedded store (issue 3) ---------------------------------------------


class HubRequestError(HubError, ValueError):
    """A bad request to the hub: a path escaping the repo, malformed JSON/NDJSON, a bad name."""


class BlobMismatchError(HubRequestError):
    """Uploaded bytes whose sha256 differs from the announced one; nothing is stored."""


class RepoExistsError(HubError, FileExistsError):
    """A repo, branch, tag, user or organisation with that name already exists."""


class CommitConflictError(HubError):
    """A commit whose parentCommit is no longer the branch head; refresh and retry."""


class AuthenticationError(HubError, PermissionError):
    """A token that is unknown, revoked or malformed."""


class HubPermissionError(HubError, PermissionError):
    """The caller may see the repo but not do this to it (e.g. a read token pushing)."""


class HubUnreachableError(HubError, ConnectionError):
    """The configured hub did not answer, and the cache could not stand in."""


# --- hub at scale: databases, object stores (issue 8) ---------------------------------------


class SchemaOutOfDateError(CoveError, RuntimeError):
    """The hub database's schema is older (or newer) than this Cove's: run `cove db upgrade`."""


class BlobStoreConfigError(CoveError, ValueError):
    """The blob store settings (COVE_BLOB_STORE, COVE_S3_*) are incomplete or the store is unreachable."""


class InvalidCardError(HubRequestError):
    """A README whose card metadata the hub refuses to store (too large, or text that is not clean UTF-8):
    the commit that brings it is refused and the repo stays unchanged."""


class CardTooLargeError(InvalidCardError):
    """A card's YAML is over the size cap, or expands (through anchors and aliases) past the value budget."""


# --- hub server hardening (issue 12) -------------------------------------------------------


class PayloadTooLargeError(HubRequestError):
    """A request body over the endpoint's cap (COVE_MAX_JSON_BYTES, COVE_MAX_UPLOAD_BYTES, ...): 413."""


class RequestBodyTimeoutError(HubError, TimeoutError):
    """A request body that stalled or trickled in below the minimum rate (COVE_BODY_*): 408."""


class InvalidRequestBodyError(HubRequestError):
    """A request body whose fields have the wrong types or values (e.g. "private": "false"): 422."""


class QuantizationError(CoveError, ValueError):
    """A quantization that is not supported, or a quantized model asked for what it cannot do (train, save)."""


class KernelBuildError(CoveError, RuntimeError):
    """Cove's native quantized kernels could not be built, and COVE_QUANT_KERNELS=native required them."""
