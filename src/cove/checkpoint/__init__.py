"""Checkpoint files: config.json, safetensors (single and sharded), `.bin` behind an opt-in, weight maps."""
