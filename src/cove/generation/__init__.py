"""Text generation: GenerationConfig, generate (greedy, sampling, beam search), logits processors, streamers,
the continuous batcher for serving, and the KV cache (defined beside the models, which write into it)."""

from cove.generation.config import GenerationConfig
from cove.generation.continuous import (
    ContinuousBatcher,
    GenerationHandle,
    GenerationResult,
    SamplingParams,
    TokenEvent,
)
from cove.generation.streamers import TextIteratorStreamer, TextStreamer
from cove.models.kv_cache import KVCache

__all__ = [
    "ContinuousBatcher",
    "GenerationConfig",
    "GenerationHandle",
    "GenerationResult",
    "KVCache",
    "SamplingParams",
    "TextIteratorStreamer",
    "TextStreamer",
    "TokenEvent",
]
