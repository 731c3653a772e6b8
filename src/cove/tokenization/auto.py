"""AutoTokenizer: the front door, as in transformers."""

from __future__ import annotations

import os
from typing import Any

from cove.tokenization.tokenizer import PreTrainedTokenizerFast


class AutoTokenizer:
    """Load the tokenizer of a model folder or name: ``AutoTokenizer.from_pretrained("bert-folder")``."""

    def __init__(self) -> None:
        raise OSError("AutoTokenizer is a factory: use AutoTokenizer.from_pretrained(name_or_path).")

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], **kwargs: Any) -> PreTrainedTokenizerFast:
        """Read tokenizer.json (or vocab.txt, or vocab.json + merges.txt) and tokenizer_config.json.

        ``name_or_path`` is a local folder or a name that `cove.hub.resolve.resolve_model_dir` knows
        (e.g. the bundled ``sentence-transformers/all-MiniLM-L6-v2``). Keyword arguments override config
        values (``model_max_length=128``, ``padding_side="left"``, ``pad_token="[PAD]"``, ...).
        """
        from cove.tokenization.loading import load_tokenizer

        return load_tokenizer(name_or_path, **kwargs)
