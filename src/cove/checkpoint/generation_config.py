"""GenerationConfig: the options of ``generate``, read from generation_config.json like transformers'.

It lives with the other checkpoint files (config.json's ``PretrainedConfig`` is beside it) because the models
read it when they load, and models sit below ``cove.generation``, which re-exports it."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cove.errors import GenerationError

logger = logging.getLogger("cove.generation")

GENERATION_CONFIG_NAME = "generation_config.json"

# keys generation_config.json files carry that change nothing in Cove's maths
_INERT_KEYS = {
    "transformers_version",
    "_from_model_config",
    "cache_implementation",
    "output_attentions",
    "output_hidden_states",
    "output_logits",
    "trust_remote_code",
    "watermarking_config",
    "compile_config",
    "low_memory",
    "use_model_defaults",
    "renormalize_logits",
    "forced_decoder_ids",
    "begin_suppress_tokens",
    "is_assistant",
    "num_beam_groups",
    "diversity_penalty",
    "typical_p",
    "epsilon_cutoff",
    "eta_cutoff",
    "min_p",
    "guidance_scale",
}
# of those, the ones that would change generation when set to something other than these values
_INERT_DEFAULTS: dict[str, Any] = {
    "num_beam_groups": 1,
    "diversity_penalty": 0.0,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "min_p": None,
    "guidance_scale": None,
    "renormalize_logits": False,
    "begin_suppress_tokens": None,
    "forced_decoder_ids": None,
}


@dataclass
class GenerationConfig:
    max_length: int = 20
    max_new_tokens: int | None = None
    min_length: int = 0
    min_new_tokens: int | None = None
    do_sample: bool = False
    num_beams: int = 1
    temperature: float = 1.0
    top_k: int | None = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    # token sequences generate never produces (OPUS-MT's generation_config.json bans the pad token)
    bad_words_ids: list[list[int]] | None = None
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    num_return_sequences: int = 1
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    stop_strings: str | list[str] | None = None
    # encoder-decoder models: the decoder's first token; tokens forced first and at max_length
    decoder_start_token_id: int | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | list[int] | None = None
    use_cache: bool = True
    return_dict_in_generate: bool = False
    output_scores: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)} - {"extra"}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "generation config") -> GenerationConfig:
        known = {k: v for k, v in data.items() if k in cls.field_names()}
        extra = {k: v for k, v in data.items() if k not in known}
        for key, value in extra.items():
            if key in _INERT_DEFAULTS and value != _INERT_DEFAULTS[key]:
                raise GenerationError(
                    f"{source}: {key}={value!r} is not supported by Cove's generate; remove it or set it "
                    f"to {_INERT_DEFAULTS[key]!r}."
                )
            if key not in _INERT_KEYS:
                logger.warning("%s: ignoring unknown generation option %r", source, key)
        config = cls(**known, extra=extra)
        return config

    @classmethod
    def from_pretrained(
        cls, folder: str | os.PathLike[str], config_file_name: str | None = None, **kwargs: Any
    ) -> GenerationConfig:
        """generation_config.json of a folder or hub name. Keywords: the download ones (``HubOptions``:
        token, revision, cache_dir, local_files_only, force_download, subfolder); the rest are generation
        options applied on top (an unknown one raises, naming it)."""
        from cove.hub.resolve import HubOptions, resolve

        hub = HubOptions.pop_from(kwargs)
        name = config_file_name or GENERATION_CONFIG_NAME
        path = resolve(folder, hub).folder(hub.subfolder) / name
        if not path.is_file():
            from cove.errors import MissingFileError

            raise MissingFileError(f"No {name} in {folder}.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GenerationError(f"{path} is not valid JSON ({exc}); fix or delete it.") from exc
        config = cls.from_dict(data, source=str(path))
        return config.update(**kwargs) if kwargs else config

    @classmethod
    def from_model_config(cls, model_config: Any) -> GenerationConfig:
        return cls(
            bos_token_id=getattr(model_config, "bos_token_id", None),
            eos_token_id=getattr(model_config, "eos_token_id", None),
            pad_token_id=getattr(model_config, "pad_token_id", None),
        )

    def update(self, **kwargs: Any) -> GenerationConfig:
        """A copy with ``kwargs`` applied; an option Cove does not know raises, naming it."""
        unknown = sorted(k for k in kwargs if k not in self.field_names())
        if unknown:
            raise GenerationError(
                f"Unknown generation option(s) {unknown}; Cove's generate supports {sorted(self.field_names())}."
            )
        new = copy.deepcopy(self)
        for key, value in kwargs.items():
            setattr(new, key, value)
        return new

    def to_dict(self) -> dict[str, Any]:
        out = {
            f.name: copy.deepcopy(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name != "extra"
        }
        out.update(copy.deepcopy(self.extra))
        return out

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> None:
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        (folder / GENERATION_CONFIG_NAME).write_text(text, encoding="utf-8")

    def eos_ids(self) -> list[int]:
        if self.eos_token_id is None:
            return []
        return [self.eos_token_id] if isinstance(self.eos_token_id, int) else list(self.eos_token_id)

    def validate(self) -> None:
        """Raise GenerationError naming any value generate cannot honour."""

        def bad(msg: str) -> GenerationError:
            return GenerationError(msg)

        if self.max_new_tokens is not None and (
            not isinstance(self.max_new_tokens, int) or self.max_new_tokens <= 0
        ):
            raise bad(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}.")
        if not isinstance(self.max_length, int) or self.max_length <= 0:
            raise bad(f"max_length must be a positive integer, got {self.max_length!r}.")
        if self.min_new_tokens is not None and self.min_new_tokens < 0:
            raise bad(f"min_new_tokens must be >= 0, got {self.min_new_tokens!r}.")
        if self.min_length < 0:
            raise bad(f"min_length must be >= 0, got {self.min_length!r}.")
        if not isinstance(self.num_beams, int) or self.num_beams < 1:
            raise bad(f"num_beams must be a positive integer, got {self.num_beams!r}.")
        if not isinstance(self.num_return_sequences, int) or self.num_return_sequences < 1:
            raise bad(f"num_return_sequences must be a positive integer, got {self.num_return_sequences!r}.")
        if self.num_beams > 1 and not self.do_sample and self.num_return_sequences > self.num_beams:
            raise bad(
                f"num_return_sequences={self.num_return_sequences} is larger than num_beams={self.num_beams}: "
                "beam search returns at most num_beams sequences."
            )
        if self.num_beams == 1 and not self.do_sample and self.num_return_sequences > 1:
            raise bad(
                f"num_return_sequences={self.num_return_sequences} with greedy search would repeat one sequence: "
                "set do_sample=True or num_beams >= num_return_sequences."
            )
        if self.do_sample:
            if not isinstance(self.temperature, (int, float)) or self.temperature <= 0:
                raise bad(
                    f"temperature must be > 0 when sampling, got {self.temperature!r} (use do_sample=False for "
                    "greedy decoding)."
                )
            if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
                raise bad(f"top_p must be in (0, 1], got {self.top_p!r}.")
            if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 0):
                raise bad(f"top_k must be a non-negative integer, got {self.top_k!r}.")
        elif self.top_p is not None and not 0 < self.top_p <= 1:
            raise bad(f"top_p must be in (0, 1], got {self.top_p!r}.")
        if not isinstance(self.repetition_penalty, (int, float)) or self.repetition_penalty <= 0:
            raise bad(f"repetition_penalty must be > 0, got {self.repetition_penalty!r}.")
        if not isinstance(self.no_repeat_ngram_size, int) or self.no_repeat_ngram_size < 0:
            raise bad(
                f"no_repeat_ngram_size must be a non-negative integer, got {self.no_repeat_ngram_size!r}."
            )
        if self.bad_words_ids is not None and not (
            isinstance(self.bad_words_ids, list)
            and self.bad_words_ids
            and all(
                isinstance(seq, list) and seq and all(isinstance(t, int) and t >= 0 for t in seq)
                for seq in self.bad_words_ids
            )
        ):
            raise bad(
                f"bad_words_ids must be a non-empty list of non-empty lists of token ids, got "
                f"{self.bad_words_ids!r:.200} (e.g. [[5], [7, 8]])."
            )
        if self.early_stopping not in (True, False, "never"):
            raise bad(f"early_stopping must be True, False or 'never', got {self.early_stopping!r}.")
        for token in self.eos_ids():
            if not isinstance(token, int) or token < 0:
                raise bad(
                    f"eos_token_id must be a non-negative int or a list of them, got {self.eos_token_id!r}."
                )
        if self.stop_strings is not None:
            strings = [self.stop_strings] if isinstance(self.stop_strings, str) else self.stop_strings
            if not strings or not all(isinstance(s, str) and s for s in strings):
                raise bad(
                    f"stop_strings must be a non-empty string or list of them, got {self.stop_strings!r}."
                )
