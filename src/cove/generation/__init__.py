"""Text generation: GenerationConfig, generate (greedy, sampling, beam search), logits processors, streamers,
and the KV cache (defined beside the models, which write into it)."""

from cove.generation.config import GenerationConfig
from cove.generation.streamers import TextIteratorStreamer, TextStreamer
from cove.models.kv_cache import KVCache

__all__ = ["GenerationConfig", "KVCache", "TextIteratorStreamer", "TextStreamer"]
