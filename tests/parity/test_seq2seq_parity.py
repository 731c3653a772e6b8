"""Encoder-decoder families: tiny random checkpoints made by transformers, loaded by Cove's production loader;
logits and losses within 1e-5 in fp32 on batched, padded inputs; incremental decoding over the cache equal to
the full pass; saves round-trip both ways."""

from __future__ import annotations

import pytest
import torch

import cove

transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

pytestmark = pytest.mark.parity

ATOL = 1e-5
VOCAB = 99
TARGET_VOCAB = 77  # decoder ids stay below the smaller target vocabulary


def t5_config(**kw):
    base = dict(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        decoder_start_token_id=0,
    )
    base.update(kw)
    return transformers.T5Config(**base)


def bart_config(**kw):
    base = dict(
        vocab_size=VOCAB,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        max_position_embeddings=64,
    )
    base.update(kw)
    return base


# name -> (config factory, pad id, untie the head by hand)
FAMILIES = {
    "t5": (lambda: t5_config(), 0, False),
    # v1.1 / FLAN-T5: gated-gelu feed-forward, a separate lm_head, no d_model**-0.5 scaling; an uneven decoder
    "t5-v1.1": (
        lambda: t5_config(feed_forward_proj="gated-gelu", tie_word_embeddings=False, num_decoder_layers=3),
        0,
        True,
    ),
    "bart": (
        lambda: transformers.BartConfig(**bart_config(scale_embedding=True, decoder_layers=3)),
        1,
        False,
    ),
    "marian": (
        lambda: transformers.MarianConfig(
            **bart_config(scale_embedding=True), pad_token_id=5, decoder_start_token_id=5, eos_token_id=0
        ),
        5,
        False,
    ),
    # separate source and target vocabularies
    "marian-two-vocabs": (
        lambda: transformers.MarianConfig(
            **bart_config(),
            decoder_vocab_size=TARGET_VOCAB,
            share_encoder_decoder_embeddings=False,
            pad_token_id=5,
            decoder_start_token_id=5,
            eos_token_id=0,
        ),
        5,
        False,
    ),
}
SEQ2SEQ = "AutoModelForSeq2SeqLM"


def hf_model(family: str, auto: str = SEQ2SEQ, seed: int = 0):
    make, _, untie = FAMILIES[family]
    torch.manual_seed(seed)
    model = getattr(transformers, auto).from_config(make()).eval()
    if untie and hasattr(model, "lm_head"):
        # transformers 5 builds T5 heads tied; a v1.1 checkpoint stores its own head
        with torch.no_grad():
            model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight) * 0.5)
    return model


def make_inputs(family: str, seed: int = 0) -> dict[str, torch.Tensor]:
    pad = FAMILIES[family][1]
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = pad
    labels = torch.randint(3, TARGET_VOCAB, (3, 6), generator=g)
    labels[1, 4:] = -100
    labels[2, 2:] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def decoder_inputs(family: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed + 7)
    dec = torch.randint(3, TARGET_VOCAB, (3, 6), generator=g)
    dec_mask = torch.ones_like(dec)
    dec_mask[2, 3:] = 0
    return {"decoder_input_ids": dec, "decoder_attention_mask": dec_mask}


def assert_close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a.float(), b.float(), atol=atol, rtol=0)


def compare(hf, ours, inputs: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        ref = hf(**inputs, output_hidden_states=True)
        got = ours(**inputs, output_hidden_states=True)
    main = "logits" if "logits" in ref else "last_hidden_state"
    assert_close(got[main], ref[main])
    if "labels" in inputs:
        assert_close(got.loss, ref.loss)
    assert_close(got.encoder_last_hidden_state, ref.encoder_last_hidden_state)
    for name in ("encoder_hidden_states", "decoder_hidden_states"):
        assert len(got[name]) == len(ref[name])
        for a, b in zip(got[name], ref[name]):
            assert_close(a, b)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_logits_and_loss_match_transformers(tmp_path, family):
    hf = hf_model(family)
    hf.save_pretrained(tmp_path)
    ours = cove.AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert type(ours).__name__ == type(hf).__name__
    inputs = make_inputs(family)
    compare(hf, ours, inputs)  # decoder inputs shifted from labels
    no_labels = {k: v for k, v in inputs.items() if k != "labels"}
    compare(hf, ours, {**no_labels, **decoder_inputs(family)})  # explicit, padded decoder inputs
    compare(hf, ours, {**inputs, **decoder_inputs(family)})  # both: labels scored against given inputs


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_base_model_matches_transformers(tmp_path, family):
    hf = hf_model(family, "AutoModel")
    hf.save_pretrained(tmp_path)
    ours = cove.AutoModel.from_pretrained(tmp_path)
    assert type(ours).__name__ == type(hf).__name__
    inputs = {k: v for k, v in make_inputs(family).items() if k != "labels"}
    compare(hf, ours, {**inputs, **decoder_inputs(family)})
    # a conditional-generation checkpoint loads as the base model too (its head is dropped)
    full = hf_model(family, seed=2)
    full.save_pretrained(tmp_path / "full")
    base = cove.AutoModel.from_pretrained(tmp_path / "full")
    ref = transformers.AutoModel.from_pretrained(tmp_path / "full").eval()
    compare(ref, base, {**inputs, **decoder_inputs(family)})


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_incremental_decoding_over_the_cache(tmp_path, family):
    """Decoding one token at a time over the cache gives the full pass's logits, and transformers' own
    cached steps; the cross-attention keys/values are computed once."""
    hf = hf_model(family, seed=1)
    hf.save_pretrained(tmp_path)
    ours = cove.AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    inputs = {k: v for k, v in make_inputs(family).items() if k != "labels"}
    dec = decoder_inputs(family)["decoder_input_ids"]
    with torch.no_grad():
        full = ours(**inputs, decoder_input_ids=dec).logits
        encoder_outputs = ours(**inputs, decoder_input_ids=dec[:, :1]).encoder_last_hidden_state
        cache, steps, ref_cache, ref_steps = None, [], None, []
        for i in range(dec.shape[1]):
            out = ours(
                encoder_outputs=(encoder_outputs,),
                attention_mask=inputs["attention_mask"],
                decoder_input_ids=dec[:, i : i + 1],
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            steps.append(out.logits)
            if i == 0:
                cross = [kv[0] for kv in cache.cross]
            ref = hf(**inputs, decoder_input_ids=dec[:, i : i + 1], past_key_values=ref_cache, use_cache=True)
            ref_cache = ref.past_key_values
            ref_steps.append(ref.logits)
    assert cache.get_seq_length() == dec.shape[1]
    assert all(a is b[0] for a, b in zip(cross, cache.cross))  # projected once, then reused
    assert_close(torch.cat(steps, dim=1), full)
    assert_close(torch.cat(steps, dim=1), torch.cat(ref_steps, dim=1))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_cove_save_loads_in_transformers(tmp_path, family):
    hf = hf_model(family, seed=3)
    hf.save_pretrained(tmp_path / "hf")
    ours = cove.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "hf")
    ours.save_pretrained(tmp_path / "cove")
    back = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "cove").eval()
    compare(back, ours, make_inputs(family, seed=5))
    ref_state = load_file(str(tmp_path / "hf" / "model.safetensors"))
    our_state = load_file(str(tmp_path / "cove" / "model.safetensors"))
    assert sorted(our_state) == sorted(ref_state)
    for key in ref_state:
        assert torch.equal(our_state[key], ref_state[key]), key
    # and Cove reads its own save back to the same model
    again = cove.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "cove")
    compare(back, again, make_inputs(family, seed=6))


@pytest.mark.parametrize("family", ["t5", "t5-v1.1"])
def test_t5_encoder_model(tmp_path, family):
    hf = hf_model(family, seed=4)
    hf.save_pretrained(tmp_path)
    ref = transformers.T5EncoderModel.from_pretrained(tmp_path).eval()
    ours = cove.T5EncoderModel.from_pretrained(tmp_path)
    inputs = {k: v for k, v in make_inputs(family).items() if k != "labels"}
    with torch.no_grad():
        a = ref(**inputs, output_hidden_states=True)
        b = ours(**inputs, output_hidden_states=True)
    assert_close(b.last_hidden_state, a.last_hidden_state)
    assert len(b.hidden_states) == len(a.hidden_states)
    for x, y in zip(b.hidden_states, a.hidden_states):
        assert_close(x, y)


def test_t5_v11_head_is_untied_and_unscaled(tmp_path):
    hf = hf_model("t5-v1.1")
    hf.save_pretrained(tmp_path)
    ours = cove.T5ForConditionalGeneration.from_pretrained(tmp_path)
    assert ours.lm_head.weight.data_ptr() != ours.shared.weight.data_ptr()
    assert not ours.config.scale_decoder_outputs
    v10 = hf_model("t5")
    v10.save_pretrained(tmp_path / "v10")
    ours10 = cove.T5ForConditionalGeneration.from_pretrained(tmp_path / "v10")
    assert ours10.lm_head.weight.data_ptr() == ours10.shared.weight.data_ptr()
    assert ours10.config.scale_decoder_outputs


def test_t5_config_errors():
    from cove.errors import ConfigError

    with pytest.raises(ConfigError, match="gated-swish-x"):
        cove.T5Config(feed_forward_proj="gated-swish-x")
    with pytest.raises(ConfigError, match="'mish'"):
        cove.T5Config(feed_forward_proj="mish")
    model = cove.AutoModelForSeq2SeqLM.from_config(
        cove.T5Config(d_model=16, d_kv=4, d_ff=8, num_heads=4, vocab_size=20)
    )
    with pytest.raises(ConfigError, match="decoder_start_token_id"):
        model(input_ids=torch.tensor([[3, 4]]), labels=torch.tensor([[5, 6]]))


def test_bart_model_denoises_by_default(tmp_path):
    """BartModel without decoder inputs decodes input_ids shifted right, as transformers does."""
    hf = hf_model("bart", "AutoModel")
    hf.save_pretrained(tmp_path)
    ours = cove.BartModel.from_pretrained(tmp_path)
    inputs = {k: v for k, v in make_inputs("bart").items() if k != "labels"}
    with torch.no_grad():
        assert_close(ours(**inputs).last_hidden_state, hf(**inputs).last_hidden_state)


@pytest.mark.parametrize("family", ["bart", "marian"])
def test_lm_head_on_a_base_checkpoint(tmp_path, family):
    """A base checkpoint under the LM head: the head ties to the embedding, final_logits_bias starts at zero."""
    hf_model(family, "AutoModel").save_pretrained(tmp_path)
    ref = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    ours = cove.AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    compare(ref, ours, make_inputs(family))
    assert not ours.final_logits_bias.any()


def test_marian_legacy_checkpoint_keys(tmp_path):
    """Older Marian files also hold the sinusoid tables and copies of the shared embedding: they load."""
    import json

    from safetensors.torch import save_file

    hf = hf_model("marian", seed=8)
    hf.save_pretrained(tmp_path / "new")
    state = load_file(str(tmp_path / "new" / "model.safetensors"))
    shared = state["model.shared.weight"]
    state["model.encoder.embed_tokens.weight"] = shared.clone()
    state["model.decoder.embed_tokens.weight"] = shared.clone()
    table = hf.model.encoder.embed_positions.weight.detach().clone()
    state["model.encoder.embed_positions.weight"] = table
    state["model.decoder.embed_positions.weight"] = table.clone()
    (tmp_path / "old").mkdir()
    save_file(state, str(tmp_path / "old" / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((tmp_path / "new" / "config.json").read_text())
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    ours = cove.MarianMTModel.from_pretrained(tmp_path / "old")
    compare(hf, ours, make_inputs("marian"))
