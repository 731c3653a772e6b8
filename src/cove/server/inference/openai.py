"""OpenAI-compatible shapes: /v1/embeddings and /v1/models (chat and completions are in ``chat.py``).

``model`` names a hub repo (``ns/name``, ``ns/name@revision``); under ``/models/{repo_id}/v1/...`` the path
names it and the body's ``model`` is ignored (InferenceClient sends ``"dummy"`` there).
"""

from __future__ import annotations

import base64
import time
from typing import Any

from cove.server.inference import hf
from cove.server.inference.engine import ServedModel
from cove.server.inference.errors import InferenceInputError

EMBEDDING_KEYS = {"model", "input", "encoding_format", "dimensions", "user"}


def embeddings(served: ServedModel, body: dict[str, Any], model_name: str) -> hf.Prepared:
    hf.check_keys(body, EMBEDDING_KEYS, "body field")
    if "input" not in body:
        raise InferenceInputError('The body needs "input": a string or a list of strings to embed.')
    inputs = body["input"]
    if isinstance(inputs, list) and inputs and all(isinstance(x, int | list) for x in inputs):
        raise InferenceInputError("input as token ids is not supported: send the text.")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise InferenceInputError(f"encoding_format={encoding!r}: use 'float' or 'base64'.")
    parameters: dict[str, Any] = {}
    if body.get("dimensions") is not None:
        parameters["dimensions"] = body["dimensions"]
    prepared = hf.embed(served, inputs, parameters, pooled=True, as_list=True)
    tokens = prepared.job.tokens
    vectors_of = prepared.shape

    def shape(result: Any) -> Any:
        vectors = vectors_of(result)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _encode(v, encoding)}
                for i, v in enumerate(vectors)
            ],
            "model": model_name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    return hf.Prepared(prepared.job, shape)


def _encode(vector: list[float], encoding: str) -> Any:
    if encoding == "float":
        return vector
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def model_entry(repo_id: str, created: float | None = None) -> dict[str, Any]:
    return {
        "id": repo_id,
        "object": "model",
        "created": int(created if created is not None else time.time()),
        "owned_by": repo_id.split("/")[0],
    }
