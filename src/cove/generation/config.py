"""GenerationConfig is defined with the checkpoint files (cove.checkpoint.generation_config): models read
generation_config.json when they load, and models sit below generation. Re-exported here, where
transformers users look for it."""

from cove.checkpoint.generation_config import GENERATION_CONFIG_NAME, GenerationConfig

__all__ = ["GENERATION_CONFIG_NAME", "GenerationConfig"]
