"""TGI's and TEI's shapes: ``/info`` (what ``InferenceClient.get_endpoint_info`` reads), TEI's ``/embed``.

TGI and TEI serve one model each. Cove serves every model under ``/models/{repo_id}/`` (``/generate``,
``/generate_stream``, ``/embed``, ``/info``, ``/health``), and the unprefixed routes serve the models the
settings name (``COVE_INFERENCE_MODEL``; ``COVE_INFERENCE_EMBED_MODEL`` for ``/embed``, falling back to it).
"""

from __future__ import annotations

from typing import Any

import cove
from cove.server.inference import hf
from cove.server.inference.engine import ServedModel, Target
from cove.server.inference.errors import InferenceInputError
from cove.server.settings import Settings

TEI_EMBED_KEYS = {"inputs", "normalize", "truncate", "truncation_direction", "prompt_name", "dimensions"}


def tei_embed(served: ServedModel, body: dict[str, Any]) -> hf.Prepared:
    """TEI's /embed: one pooled vector per input, normalised unless normalize=false."""
    hf.check_keys(body, TEI_EMBED_KEYS, "body field")
    if "inputs" not in body:
        raise InferenceInputError('The body needs "inputs": a string or a list of strings.')
    parameters = {k: v for k, v in body.items() if k != "inputs" and v is not None}
    return hf.embed(served, body["inputs"], parameters, pooled=True, normalize_default=True, as_list=True)


def info(target: Target, served: ServedModel | None, settings: Settings) -> dict[str, Any]:
    config = target.info.config
    limit = served.input_limit if served is not None else _config_limit(config)
    dtype = str(served.model.dtype) if served is not None and served.model is not None else None
    if dtype is None:
        stored = config.get("dtype") or config.get("torch_dtype")
        dtype = f"torch.{stored}" if isinstance(stored, str) else None
    out: dict[str, Any] = {
        "model_id": target.repo_id,
        "model_sha": target.commit,
        "model_dtype": dtype,
        "model_device_type": "cpu",
        "model_pipeline_tag": target.info.task,
        "max_concurrent_requests": settings.inference_max_queue,
        "max_input_length": limit,
        "max_client_batch_size": 1024,
        "version": cove.__version__,
        "sha": None,
        "docker_label": None,
        "router": "cove",
    }
    if target.info.task == "text-generation":
        out.update(
            max_best_of=1,
            max_stop_sequences=16,
            max_input_tokens=limit,
            max_total_tokens=limit,
            max_batch_size=settings.inference_max_rows,
            max_batch_total_tokens=None,
            waiting_served_ratio=None,
            max_waiting_tokens=None,
            validation_workers=None,
        )
    else:
        out.update(max_batch_tokens=settings.max_batch_tokens, max_batch_requests=None)
        if target.info.task in ("feature-extraction", "sentence-similarity"):
            pooling = "mean"
            if served is not None and getattr(served.pipelines.get("sentence-similarity"), "pooling", None):
                pooling = served.pipelines["sentence-similarity"].pooling.mode
            out["model_type"] = {"embedding": {"pooling": pooling}}
    return out


def _config_limit(config: dict[str, Any]) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None
