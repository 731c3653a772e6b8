"""text2text-generation: an encoder-decoder (T5, BART, Marian) turns each input text into output text.

Outputs follow transformers 4.x's Text2TextGenerationPipeline (transformers 5 removed it): a string gives a
list of ``{"generated_text"}`` records (one per returned sequence); a list of strings gives one record per
input, or a list of records per input when ``num_return_sequences`` > 1. ``return_tensors=True`` gives
``{"generated_token_ids"}`` instead. The summarization and translation pipelines are this one with other keys
(``summary_*``, ``translation_*``) and a task prefix.

Generation options, lowest priority first: the pipeline's defaults (``max_new_tokens=256``, ``num_beams=4``),
the model's generation_config.json values that differ from generate's defaults, the model config's
``task_specific_params[task]`` (its ``prefix`` is prepended to every input), then the call's options. As in
transformers 4.57, a model-set ``max_length`` replaces the default ``max_new_tokens``. One deliberate
difference: a ``max_length`` from ``task_specific_params`` or from the call also replaces it (transformers 4.57
keeps ``max_new_tokens=256``, which silently overrides the asked ``max_length``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from cove.errors import ConfigError, PipelineError
from cove.pipelines.base import Feature, Pipeline, check_text

PIPELINE_DEFAULTS = {"max_new_tokens": 256, "num_beams": 4}


@dataclass
class Text2TextGenerationParams:
    return_text: bool = True  # as in transformers 4.57: text unless return_tensors=True
    return_tensors: bool = False
    truncation: bool | str = False
    clean_up_tokenization_spaces: bool = False
    seed: int | None = None
    generate_kwargs: dict[str, Any] = field(default_factory=dict)
    # the options generate runs with: the pipeline's, then the call's; made by make_params
    generation_config: Any = field(default=None, repr=False)


class Text2TextGenerationPipeline(Pipeline):
    task = "text2text-generation"
    auto_model = "AutoModelForSeq2SeqLM"
    Params: ClassVar[type] = Text2TextGenerationParams
    return_name: ClassVar[str] = "generated"

    def __init__(self, model: Any = None, tokenizer: Any = None, **kwargs: Any):
        self.task_name = kwargs.pop("task_name", None) or self.task
        self.prefix = ""
        self.base_generation: Any = None
        try:
            super().__init__(model, tokenizer, **kwargs)
        except ConfigError as exc:  # e.g. a BERT folder: AutoModelForSeq2SeqLM has no class for it
            raise PipelineError(
                f"The {self.task_name!r} pipeline needs an encoder-decoder model (T5, BART, Marian): {exc}"
            ) from exc

    @classmethod
    def resolve_default_model(cls) -> Any:
        raise PipelineError(
            f"The {cls.task!r} pipeline has no default model yet: pass model='<name or folder>' of an "
            "encoder-decoder (T5, BART or Marian), or push one to the hub and pass its name."
        )

    # -- generation options --------------------------------------------------------------------

    def pipeline_generation_config(self) -> Any:
        """The pipeline's defaults under the model's own values, then task_specific_params (transformers 4.57's
        Pipeline.__init__ order)."""
        from cove.generation.config import GenerationConfig

        model = self.model
        if not getattr(model.config, "is_encoder_decoder", False) or not hasattr(model, "generate"):
            raise PipelineError(
                f"The {self.task_name!r} pipeline needs an encoder-decoder model (T5, BART, Marian); "
                f"{type(model).__name__} is not one: use 'text-generation' for decoder-only models."
            )
        own = model.generation_config or GenerationConfig.from_model_config(model.config)
        unset = GenerationConfig()
        config = GenerationConfig(**PIPELINE_DEFAULTS)  # type: ignore[arg-type]
        for name in GenerationConfig.field_names():
            value = getattr(own, name)
            if getattr(config, name) == getattr(unset, name) and value != getattr(unset, name):
                setattr(config, name, value)
        if (
            config.max_length != unset.max_length
            and config.max_new_tokens == PIPELINE_DEFAULTS["max_new_tokens"]
        ):
            config.max_new_tokens = None
        prefix = getattr(model.config, "prefix", None)
        task_params = getattr(model.config, "task_specific_params", None) or {}
        if self.task_name in task_params:
            options = dict(task_params[self.task_name])
            prefix = options.pop("prefix", prefix)
            config = with_options(config, options, f"config.task_specific_params[{self.task_name!r}]")
        self.prefix = prefix or ""
        if config.pad_token_id is None and self.tokenizer.pad_token_id is not None:
            config.pad_token_id = self.tokenizer.pad_token_id
        return config

    def make_params(self, base: Any, overrides: dict[str, Any]) -> Any:
        from cove.generation.config import GenerationConfig

        if self.base_generation is None:
            self.base_generation = self.pipeline_generation_config()
        overrides = dict(overrides)
        generation = {k: overrides.pop(k) for k in list(overrides) if k in GenerationConfig.field_names()}
        given = overrides.pop("generation_config", None)
        if given is not None and not isinstance(given, GenerationConfig):
            raise PipelineError(f"generation_config takes a GenerationConfig, got a {type(given).__name__}.")
        params = super().make_params(base, overrides)
        params.generate_kwargs = {**base.generate_kwargs, **generation}
        start = given or base.generation_config or self.base_generation
        params.generation_config = with_options(start, generation, "the call")
        check_lengths(params.generation_config)
        return params

    # -- the three stages ----------------------------------------------------------------------

    def encoder_limit(self) -> int | None:
        """The longest input the encoder takes: its position table, or the tokenizer's model_max_length (T5's
        relative positions have no table)."""
        from cove.tokenization.tokenizer import LARGE_INTEGER

        limits = [getattr(self.model.config, "max_position_embeddings", None)]
        if self.tokenizer.model_max_length < LARGE_INTEGER:
            limits.append(self.tokenizer.model_max_length)
        known = [int(x) for x in limits if x]
        return min(known) if known else None

    def preprocess(self, item: Any, params: Any) -> list[Feature]:
        text = self.prefix + check_text(item, self.task_name)
        limit = self.encoder_limit()
        kwargs: dict[str, Any] = {}
        if params.truncation and limit is not None:
            kwargs = {"truncation": params.truncation, "max_length": limit}
        enc = self.tokenizer(text, **kwargs)
        ids = list(enc["input_ids"])
        if limit is not None and len(ids) > limit:
            raise PipelineError(
                f"An input is {len(ids)} tokens, longer than the {limit} the encoder takes ({text[:60]!r}...): "
                "pass truncation=True to cut it, or shorten it."
            )
        if not ids:
            raise PipelineError(f"{self.task_name} got an input that tokenizes to nothing ({item!r}).")
        return [Feature({"input_ids": ids, "attention_mask": [1] * len(ids)})]

    def forward(self, batch: dict[str, Any], params: Any) -> list[Any]:
        config = params.generation_config
        out = self.model.generate(
            batch["input_ids"],
            attention_mask=batch["attention_mask"],
            generation_config=config,
            seed=params.seed,
        )
        sequences = out.tolist() if hasattr(out, "tolist") else out.sequences.tolist()
        per_row = len(sequences) // len(batch["input_ids"])
        eos = set(config.eos_ids())
        return [
            [trim(seq, eos) for seq in sequences[i * per_row : (i + 1) * per_row]]
            for i in range(len(batch["input_ids"]))
        ]

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: Any) -> Any:
        (_, sequences) = outputs[0]
        if params.return_tensors:
            return [{f"{self.return_name}_token_ids": seq} for seq in sequences]
        return [
            {
                f"{self.return_name}_text": self.tokenizer.decode(
                    seq,
                    skip_special_tokens=True,
                    clean_up_tokenization_spaces=params.clean_up_tokenization_spaces,
                )
            }
            for seq in sequences
        ]

    def finalize(self, results: list[Any], single: str, params: Any) -> Any:
        if single:
            return results[0]
        # transformers 4.57: one record per input is unwrapped, several stay a list per input
        if all(len(r) == 1 for r in results):
            return [r[0] for r in results]
        return results


def with_options(config: Any, options: dict[str, Any], source: str) -> Any:
    """``config`` with ``options`` applied; a ``max_length`` given without ``max_new_tokens`` wins over the
    pipeline's default ``max_new_tokens``."""
    from cove.errors import GenerationError

    try:
        new = config.update(**options)
    except GenerationError as exc:
        raise PipelineError(f"{source}: {exc}") from None
    if "max_length" in options and "max_new_tokens" not in options:
        new.max_new_tokens = None
    return new


def check_lengths(config: Any) -> None:
    if config.max_new_tokens is None and config.min_length > config.max_length:
        raise PipelineError(
            f"max_length={config.max_length} is below min_length={config.min_length}: raise max_length or "
            "lower min_length."
        )
    if (
        config.max_new_tokens is not None
        and config.min_new_tokens is not None
        and config.min_new_tokens > config.max_new_tokens
    ):
        raise PipelineError(
            f"max_new_tokens={config.max_new_tokens} is below min_new_tokens={config.min_new_tokens}: raise "
            "max_new_tokens or lower min_new_tokens."
        )
    from cove.errors import GenerationError

    try:
        config.validate()
    except GenerationError as exc:
        raise PipelineError(str(exc)) from None


def trim(seq: list[int], eos: set[int]) -> list[int]:
    """A generated row without the padding that batching added after its end-of-sequence token."""
    for i in range(1, len(seq)):
        if seq[i] in eos:
            return seq[: i + 1]
    return seq
