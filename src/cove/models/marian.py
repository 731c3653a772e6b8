"""Marian (OPUS-MT): BART's post-norm layers with fixed sinusoidal positions, no embedding norm, the pad id as
the decoder's start token, and, when ``share_encoder_decoder_embeddings`` is false, separate source and target
embeddings (the target one, of ``decoder_vocab_size`` rows, tied to the lm_head)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cove.checkpoint.config import PretrainedConfig
from cove.checkpoint.weight_map import WeightMap
from cove.errors import ConfigError
from cove.models.bart import (
    BartConfig,
    BartDecoder,
    BartEncoder,
    ConditionalGenerationHead,
    EncoderDecoderModel,
    _stack_rules,
)
from cove.models.seq2seq import (
    EncoderDecoderCache,
    Seq2SeqGenerationMixin,
    check_forward_kwargs,
    keep_stored_head,
)


@dataclass
class MarianConfig(BartConfig):
    model_type = "marian"

    vocab_size: int = 58101
    decoder_vocab_size: int | None = None
    share_encoder_decoder_embeddings: bool = True
    decoder_start_token_id: int | None = 58100
    pad_token_id: int | None = 58100
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = 0
    forced_eos_token_id: int | list[int] | None = 0

    def __post_init__(self) -> None:
        self.decoder_vocab_size = self.decoder_vocab_size or self.vocab_size
        super().__post_init__()

    def validate(self) -> None:
        super().validate()
        if self.share_encoder_decoder_embeddings and self.decoder_vocab_size != self.vocab_size:
            raise ConfigError(
                f"share_encoder_decoder_embeddings=True but decoder_vocab_size={self.decoder_vocab_size} differs "
                f"from vocab_size={self.vocab_size}: shared embeddings need one vocabulary."
            )

    @property
    def target_vocab_size(self) -> int:
        return int(self.decoder_vocab_size or self.vocab_size)


class SinusoidalPositions(nn.Module):
    """Fixed positions, sin features in the first half, cos in the second (not interleaved). Computed per call
    in float64 as transformers builds its table (numpy), so nothing is stored or loaded."""

    def __init__(self, max_positions: int, dim: int):
        super().__init__()
        self.max_positions, self.dim = max_positions, dim

    def positions(self, start: int, seq: int, device: torch.device | None = None) -> torch.Tensor:
        if start + seq > self.max_positions:
            raise ConfigError(
                f"{start + seq} positions exceed max_position_embeddings={self.max_positions}: truncate the "
                "input (truncation=True, max_length=...) or generate fewer tokens."
            )
        pos = torch.arange(start, start + seq, dtype=torch.float64, device=device)
        j = torch.arange(self.dim, dtype=torch.float64, device=device)
        angle = pos[:, None] / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / self.dim)
        half = math.ceil(self.dim / 2)
        out = torch.empty(seq, self.dim, dtype=torch.float64, device=device)
        out[:, :half] = torch.sin(angle[:, 0::2])
        out[:, half:] = torch.cos(angle[:, 1::2])
        return out.to(torch.float32)[None]  # (1, seq, dim)


# a shared vocabulary lives in `shared`; separate ones in encoder_embed / decoder_embed
_EMBEDDINGS = {
    "shared": "shared",
    "encoder.embed_tokens": "encoder_embed",
    "decoder.embed_tokens": "decoder_embed",
}
MARIAN_WEIGHT_MAP = {
    **_EMBEDDINGS,
    **{
        k: v
        for side in ("encoder", "decoder")
        for k, v in _stack_rules(side).items()
        if not k.endswith(("embed_positions", "layernorm_embedding"))
    },
}
# transformers once saved the sinusoid tables; they hold nothing learned
_POSITION_TABLES = (r"(^|\.)(encoder|decoder)\.embed_positions\.weight$",)


def _fold_shared_copies(config: MarianConfig, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """With one vocabulary, older checkpoints also store the embedding under both stacks' names."""
    if not config.share_encoder_decoder_embeddings:
        return state
    state = dict(state)
    for prefix in ("", "model."):
        for side in ("encoder", "decoder"):
            copy = state.pop(f"{prefix}{side}.embed_tokens.weight", None)
            if copy is not None:
                state.setdefault(f"{prefix}shared.weight", copy)
    return state


class MarianPreTrainedModel(EncoderDecoderModel):
    config_class = MarianConfig

    @classmethod
    def base_rules(cls) -> WeightMap:
        return WeightMap(MARIAN_WEIGHT_MAP)

    def _build(self, config: MarianConfig) -> None:
        d, pad = config.d_model, config.pad_token_id
        self.embed_scale = math.sqrt(d) if config.scale_embedding else 1.0
        if config.share_encoder_decoder_embeddings:
            self.shared = nn.Embedding(config.vocab_size, d, pad)
        else:
            self.encoder_embed = nn.Embedding(config.vocab_size, d, pad)
            self.decoder_embed = nn.Embedding(config.target_vocab_size, d, pad)
        self.encoder = BartEncoder(config, SinusoidalPositions(config.max_position_embeddings, d), False)
        self.decoder = BartDecoder(config, SinusoidalPositions(config.max_position_embeddings, d), False)

    def get_input_embeddings(self) -> nn.Embedding:
        shared = self.config.share_encoder_decoder_embeddings
        return self.shared if shared else self.encoder_embed  # type: ignore[return-value]

    def get_decoder_input_embeddings(self) -> nn.Embedding:
        shared = self.config.share_encoder_decoder_embeddings
        return self.shared if shared else self.decoder_embed  # type: ignore[return-value]

    # as transformers: the encoder scales only the embeddings it looks up, the decoder scales given ones too
    def embed_encoder_inputs(self, ids: torch.Tensor | None, embeds: torch.Tensor | None) -> torch.Tensor:
        return self.get_input_embeddings()(ids) * self.embed_scale if embeds is None else embeds

    def embed_decoder_inputs(self, ids: torch.Tensor | None, embeds: torch.Tensor | None) -> torch.Tensor:
        embeds = self.get_decoder_input_embeddings()(ids) if embeds is None else embeds
        return embeds * self.embed_scale

    @classmethod
    def _from_state_dict(cls, config: PretrainedConfig, state: dict[str, torch.Tensor], **kwargs: Any) -> Any:
        assert isinstance(config, MarianConfig)
        return super()._from_state_dict(config, _fold_shared_copies(config, state), **kwargs)


class MarianModel(MarianPreTrainedModel):
    is_base_model = True
    weight_map = WeightMap(MARIAN_WEIGHT_MAP)
    ignorable = (r"^lm_head\.", r"^final_logits_bias$", *_POSITION_TABLES)

    def __init__(self, config: MarianConfig):
        super().__init__(config)
        self._build(config)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: EncoderDecoderCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
        **kwargs: Any,
    ) -> Any:
        cache = check_forward_kwargs(self, kwargs)
        out = self._run(
            input_ids,
            attention_mask,
            decoder_input_ids,
            decoder_attention_mask,
            encoder_outputs,
            past_key_values if past_key_values is not None else cache,
            inputs_embeds,
            decoder_inputs_embeds,
            use_cache,
            output_hidden_states,
        )
        return out if return_dict else out.to_tuple()


class MarianMTModel(Seq2SeqGenerationMixin, ConditionalGenerationHead, MarianPreTrainedModel):
    weight_map = WeightMap(MARIAN_WEIGHT_MAP).prefixed("model") | WeightMap(
        {"lm_head": "lm_head", "final_logits_bias": "final_logits_bias"}
    )
    ignorable = _POSITION_TABLES
    # the loader reads the tied keys from the class; which embedding the head ties to is set per config
    tied = {"lm_head.weight": "model.shared.weight"}
    new_modules = ("lm_head",)

    def __init__(self, config: MarianConfig):
        super().__init__(config)
        self.model = MarianModel(config)
        if not config.share_encoder_decoder_embeddings:
            self.tied = {"lm_head.weight": "model.decoder_embed.weight"}  # type: ignore[misc]
        vocab = config.target_vocab_size
        self.register_buffer("final_logits_bias", torch.zeros(1, vocab))
        self.lm_head = nn.Linear(config.d_model, vocab, bias=False)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @classmethod
    def _from_state_dict(cls, config: PretrainedConfig, state: dict[str, torch.Tensor], **kwargs: Any) -> Any:
        assert isinstance(config, MarianConfig)
        state = cls._with_logits_bias(state, config.target_vocab_size)
        shared = config.share_encoder_decoder_embeddings
        embeddings = ("model.shared.weight",) if shared else ()
        keep_stored_head(config, state, "lm_head.weight", (*embeddings, "model.decoder.embed_tokens.weight"))
        return super()._from_state_dict(config, state, **kwargs)
