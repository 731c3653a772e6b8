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
    # v1.1 / FLAN-T5: gated-gelu feed-forward, a separate lm_head, no d_model**-0.5 scaling
    "t5-v1.1": (lambda: t5_config(feed_forward_proj="gated-gelu", tie_word_embeddings=False), 0, True),
    # mT5: v1.1's layers, never a scaled head in transformers 5
    "mt5": (
        lambda: transformers.MT5Config(
            vocab_size=VOCAB,
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=20,
        ),
        0,
        True,
    ),
    # more decoder than encoder layers (transformers 5.24's generate cannot run this one: its cache is sized
    # by num_layers, so it is left out of the generation tests)
    "t5-uneven": (
        lambda: t5_config(feed_forward_proj="gated-gelu", tie_word_embeddings=False, num_decoder_layers=3),
        0,
        True,
    ),
    "bart": (
        lambda: transformers.BartConfig(**bart_config(scale_embedding=True, decoder_layers=3)),
        1,
        False,
    ),
    # pre-norm with a final norm per stack; labels shifted by wrapping the last token
    "mbart": (lambda: transformers.MBartConfig(**bart_config(scale_embedding=True)), 1, False),
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


def test_t5_from_config_uses_t5_init(tmp_path):
    """Built from a config (training from scratch), T5 gets Mesh TensorFlow's init: the query absorbs the
    1/sqrt(d_kv) scale T5's attention never applies; a fresh untied head on a T5Model checkpoint is filled."""
    config = cove.T5Config(d_model=64, d_kv=16, d_ff=128, num_heads=4, vocab_size=300, num_layers=2)
    torch.manual_seed(0)
    model = cove.AutoModelForSeq2SeqLM.from_config(config)
    q = model.encoder.blocks[0].attn.q.weight
    assert abs(q.std().item() - (64 * 16) ** -0.5) < 0.2 * (64 * 16) ** -0.5
    assert abs(model.shared.weight.std().item() - 1.0) < 0.1
    import json

    hf_model("t5-v1.1", "AutoModel").save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**saved, "tie_word_embeddings": False}))
    loaded = cove.T5ForConditionalGeneration.from_pretrained(tmp_path)
    head = loaded.lm_head.weight
    assert head.data_ptr() != loaded.shared.weight.data_ptr()
    assert torch.isfinite(head).all() and 0.5 < head.std().item() < 1.5


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


# -- generation --------------------------------------------------------------------------------

GENERATING = [f for f in sorted(FAMILIES) if f != "t5-uneven"]
GENERATE_OPTIONS = [
    {},  # transformers' default length: 20 new tokens
    {"max_new_tokens": 12},
    {"num_beams": 3, "max_new_tokens": 10},
    {
        "num_beams": 4,
        "num_return_sequences": 2,
        "length_penalty": 0.5,
        "early_stopping": True,
        "no_repeat_ngram_size": 2,
        "max_length": 12,
        "min_length": 5,
    },
    {"num_beams": 3, "early_stopping": "never", "length_penalty": 2.0, "max_new_tokens": 9},
    {"forced_bos_token_id": 7, "forced_eos_token_id": 8, "max_new_tokens": 6},
    {"num_beams": 2, "forced_bos_token_id": 7, "repetition_penalty": 1.3, "max_new_tokens": 6},
    {"no_repeat_ngram_size": 1, "min_new_tokens": 4, "max_new_tokens": 8},
]


@pytest.fixture(scope="module")
def generators(tmp_path_factory):
    out = {}
    for family in GENERATING:
        folder = tmp_path_factory.mktemp(family)
        hf = hf_model(family, seed=11)
        hf.save_pretrained(folder)
        out[family] = (hf, cove.AutoModelForSeq2SeqLM.from_pretrained(folder))
    return out


@pytest.mark.parametrize("options", GENERATE_OPTIONS, ids=lambda o: ",".join(sorted(o)) or "default")
@pytest.mark.parametrize("family", GENERATING)
def test_generate_matches_transformers(generators, family, options):
    """Greedy and beam search on a padded batch: token-identical to transformers 5."""
    hf, ours = generators[family]
    inputs = {k: v for k, v in make_inputs(family).items() if k != "labels"}
    with torch.no_grad():
        ref = hf.generate(**inputs, **options)
    got = ours.generate(**inputs, **options)
    assert got.tolist() == ref.tolist()


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("family", GENERATING)
def test_generate_stops_at_eos(generators, family, num_beams):
    """An eos the model emits mid-way ends rows (padded after) and beams, as in transformers."""
    hf, ours = generators[family]
    inputs = {k: v for k, v in make_inputs(family).items() if k != "labels"}
    with torch.no_grad():
        free = hf.generate(**inputs, max_new_tokens=10, eos_token_id=TARGET_VOCAB + 1)
    eos = int(free[0, 4])  # a token greedy decoding reaches on row 0
    options = {"max_new_tokens": 10, "eos_token_id": eos, "num_beams": num_beams, "forced_eos_token_id": None}
    with torch.no_grad():
        ref = hf.generate(**inputs, **options)
    got = ours.generate(**inputs, **options)
    assert got.tolist() == ref.tolist()
    if num_beams == 1:
        assert eos in got[0].tolist()  # row 0 stopped there; the others padded or ran on


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_sampling_matches_transformers(generators, family):
    hf, ours = generators[family]
    inputs = {k: v for k, v in make_inputs(family).items() if k != "labels"}
    options = dict(
        max_new_tokens=10, do_sample=True, top_k=10, top_p=0.9, temperature=0.7, num_return_sequences=2
    )
    torch.manual_seed(5)
    with torch.no_grad():
        ref = hf.generate(**inputs, **options)
    torch.manual_seed(5)
    got = ours.generate(**inputs, **options)
    assert got.tolist() == ref.tolist()


def test_generate_reads_generation_config_and_streams(tmp_path):
    """generation_config.json settings (BART-style: beams, forced eos, min/max length) apply; greedy streams."""
    hf = hf_model("bart", seed=12)
    hf.generation_config.update(num_beams=2, max_length=9, min_length=4, no_repeat_ngram_size=2)
    hf.save_pretrained(tmp_path)
    ours = cove.AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert ours.generation_config.num_beams == 2 and ours.generation_config.forced_eos_token_id == 2
    inputs = {k: v for k, v in make_inputs("bart").items() if k != "labels"}
    ref = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert ours.generate(**inputs).tolist() == ref.generate(**inputs).tolist()

    seen = []

    class Collect:
        def put(self, value):
            seen.append(value.tolist())

        def end(self):
            seen.append("end")

    out = ours.generate(**inputs, num_beams=1, max_new_tokens=5, streamer=Collect())
    assert seen[0] == out[:, :1].tolist() and seen[-1] == "end"
    assert [step for step in seen[1:-1]] == [out[:, i].tolist() for i in range(1, out.shape[1])]


def test_generate_bad_input_errors(generators):
    from cove.errors import GenerationError

    _, ours = generators["bart"]
    ids = make_inputs("bart")["input_ids"]
    with pytest.raises(GenerationError, match="max_length=1"):
        ours.generate(ids, max_length=1)
    with pytest.raises(GenerationError, match="max_position_embeddings"):
        ours.generate(ids, max_new_tokens=100)
    with pytest.raises(GenerationError, match="beam search"):
        ours.generate(ids, num_beams=2, streamer=object())


@pytest.mark.parametrize("num_beams", [1, 2])
def test_forced_tokens_in_decoder_only_generate(tmp_path, num_beams):
    """forced_bos/eos_token_id (new with the encoder-decoders) apply to decoder-only generate too, as in
    transformers: bos after a one-token prompt, eos at max_length."""
    config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    hf.save_pretrained(tmp_path)
    ours = cove.AutoModelForCausalLM.from_pretrained(tmp_path)
    prompt = torch.tensor([[5], [9]])
    options = dict(
        max_new_tokens=6, forced_bos_token_id=7, forced_eos_token_id=8, num_beams=num_beams, eos_token_id=8
    )
    with torch.no_grad():
        ref = hf.generate(prompt, pad_token_id=0, **options)
    got = ours.generate(prompt, pad_token_id=0, **options)
    assert got.tolist() == ref.tolist()
    assert got[:, 1].tolist() == [7, 7]


@pytest.mark.parametrize("family", ["bart", "marian", "marian-two-vocabs"])
def test_lm_head_stored_apart_is_kept(tmp_path, family):
    """A file whose lm_head differs from the embedding it would tie to keeps that head, as transformers 5 does."""
    import json

    from safetensors.torch import save_file

    hf = hf_model(family, seed=9)
    hf.save_pretrained(tmp_path / "tied")
    state = load_file(str(tmp_path / "tied" / "model.safetensors"))
    head = torch.randn_like(hf.lm_head.weight) * 0.3
    state["lm_head.weight"] = head
    (tmp_path / "apart").mkdir()
    save_file(state, str(tmp_path / "apart" / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((tmp_path / "tied" / "config.json").read_text())
    (tmp_path / "apart" / "config.json").write_text(json.dumps(config))
    ref = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "apart").eval()
    ours = cove.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "apart")
    assert torch.equal(ours.lm_head.weight, head) and torch.equal(ref.lm_head.weight, head)
    compare(ref, ours, make_inputs(family))


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_cove_trainer_fits_a_seq2seq_model(tmp_path, family):
    """labels -> loss -> Trainer: a tiny model learns one mapping and generate reproduces it."""
    torch.manual_seed(0)
    if family == "t5":
        config = cove.T5Config(
            d_model=32, d_kv=8, d_ff=64, num_heads=4, vocab_size=50, num_layers=2, decoder_start_token_id=0
        )
        config.dropout_rate = 0.0
    else:
        config = cove.BartConfig(
            vocab_size=50,
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=32,
            dropout=0.0,
            forced_eos_token_id=None,
        )
    model = cove.AutoModelForSeq2SeqLM.from_config(config)
    eos = config.eos_token_id
    rows = [{"input_ids": [5, 6, 7, eos], "attention_mask": [1] * 4, "labels": [8, 9, eos]}] * 16
    args = cove.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_train_epochs=5,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
    )
    trainer = cove.Trainer(
        model=model, args=args, train_dataset=rows, data_collator=cove.default_data_collator
    )
    trainer.train()
    out = model.eval().generate(torch.tensor([[5, 6, 7, eos]]), max_new_tokens=4)
    assert out[0, 1:].tolist() == [8, 9, eos]


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_decoding_steps_put_decoder_layers_on_one_thread(generators, family, monkeypatch):
    """Inside generate, small decoder steps in the "layers" arrangement (the one of cove.hardware.STEP_ARMS
    this test pins; by default the fastest one measured runs) run their layers on one thread (as decoder LMs'
    do); the encoder and the LM head keep the caller's threads, which come back afterwards."""
    monkeypatch.setenv("COVE_STEP_THREADS", "layers")
    _, ours = generators[family]
    decoder = ours.decoder if family == "t5" else ours.model.decoder
    encoder = ours.encoder if family == "t5" else ours.model.encoder
    layers = decoder.blocks if family == "t5" else decoder.layers
    seen: list[tuple[str, int]] = []
    hooks = [
        layers[0].register_forward_hook(lambda *_: seen.append(("layer", torch.get_num_threads()))),
        ours.lm_head.register_forward_hook(lambda *_: seen.append(("head", torch.get_num_threads()))),
        encoder.register_forward_hook(lambda *_: seen.append(("encoder", torch.get_num_threads()))),
    ]
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ours.generate(make_inputs(family)["input_ids"], max_new_tokens=3, min_new_tokens=3)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)
        for hook in hooks:
            hook.remove()
    assert {t for kind, t in seen if kind == "layer"} == {1}
    assert {t for kind, t in seen if kind in ("head", "encoder")} == {2}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("family", GENERATING)
def test_half_precision_matches_transformers(generators, tmp_path, family, dtype):
    """Loaded in bf16 or fp16, logits and beam-searched tokens equal transformers' (T5 computes gelu_new with
    transformers' formula, and keeps its feed-forward output projections in fp32 under fp16 as it does)."""
    hf, _ = generators[family]
    hf.save_pretrained(tmp_path)
    ours = cove.AutoModelForSeq2SeqLM.from_pretrained(tmp_path, dtype=dtype)
    ref = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path, dtype=dtype).eval()
    if family.startswith(("t5", "mt5")):
        wo = ours.encoder.blocks[0].ff.wo.weight
        assert wo.dtype == (torch.float32 if dtype == torch.float16 else dtype)
        assert ours.shared.weight.dtype == dtype
    inputs = make_inputs(family)
    with torch.no_grad():
        assert_close(ours(**inputs).logits, ref(**inputs).logits, atol=1e-2)
        no_labels = {k: v for k, v in inputs.items() if k != "labels"}
        assert ours.generate(**no_labels, max_new_tokens=8, num_beams=2).tolist() == (
            ref.generate(**no_labels, max_new_tokens=8, num_beams=2).tolist()
        )


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("family", ["t5", "marian"])
def test_bad_words_ids_match_transformers(generators, family, num_beams):
    """OPUS-MT's generation_config.json carries bad_words_ids: single-token bans (static) and a two-token
    sequence (banned when the decoder just produced its first token), token-identical to transformers 5."""
    hf, ours = generators[family]
    inputs = {k: v for k, v in make_inputs(family).items() if k != "labels"}
    options = {"max_new_tokens": 10, "num_beams": num_beams}
    pad = [[hf.generation_config.pad_token_id]]  # what OPUS-MT bans; random tiny models love the pad token
    with torch.no_grad():
        free = hf.generate(**inputs, bad_words_ids=pad, **options)
    bad = [*pad, [int(free[0, 1])], [int(free[-1, 2]), int(free[-1, 3])]]
    with torch.no_grad():
        ref = hf.generate(**inputs, bad_words_ids=bad, **options)
    got = ours.generate(**inputs, bad_words_ids=bad, **options)
    assert got.tolist() == ref.tolist()
    assert got.tolist() != free.tolist()  # the later bans changed what was generated
    assert all(bad[0][0] not in row[1:] and bad[1][0] not in row[1:] for row in got.tolist())
    assert ours.generate(**inputs, bad_words_ids=pad, **options).tolist() == free.tolist()
    # as the model's generation config (a real OPUS-MT checkpoint carries it in generation_config.json)
    saved = ours.generation_config
    try:
        ours.generation_config = saved.update(bad_words_ids=bad)
        assert ours.generate(**inputs, **options).tolist() == ref.tolist()
    finally:
        ours.generation_config = saved


@pytest.mark.parametrize("masked", [False, True])
def test_cross_attention_shares_one_encoder_row_per_group_of_decoder_rows(masked):
    """generate keeps one encoder row per input for all its beams: the grouped cross-attention equals
    attention over the keys/values repeated for every beam."""
    import torch.nn.functional as F

    from cove.models.seq2seq import EncoderDecoderCache, cross_attention

    torch.manual_seed(0)
    inputs, beams, heads, src, dim = 3, 4, 2, 7, 8
    q = torch.randn(inputs * beams, heads, 1, dim)
    k, v = torch.randn(inputs, heads, src, dim), torch.randn(inputs, heads, src, dim)
    mask = None
    if masked:
        mask = torch.ones(inputs, 1, 1, src, dtype=torch.bool)
        mask[1, ..., 4:] = False
    expected = F.scaled_dot_product_attention(
        q,
        k.repeat_interleave(beams, 0),
        v.repeat_interleave(beams, 0),
        attn_mask=None if mask is None else mask.repeat_interleave(beams, 0),
    )
    torch.testing.assert_close(cross_attention(q, k, v, mask), expected, atol=1e-6, rtol=1e-6)
    cache = EncoderDecoderCache(1)
    cache.cross[0] = (k, v)
    cache.reorder(torch.tensor([0, 0, 1, 2] * inputs) + torch.arange(inputs).repeat_interleave(beams) * beams)
    assert cache.cross[0] is not None and cache.cross[0][0] is k  # shared rows are not reordered


@pytest.mark.parametrize("family", ["bart", "marian"])
def test_nonzero_final_logits_bias(tmp_path, family):
    """A final_logits_bias that is not all zeros (random checkpoints' are) reaches the logits with autograd on
    (added out of place) and off (in place), and beam search over it stays token-identical."""
    hf = hf_model(family)
    with torch.no_grad():
        hf.final_logits_bias.normal_(0.0, 2.0, generator=torch.Generator().manual_seed(3))
    hf.save_pretrained(tmp_path)
    ours = cove.AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert ours.final_logits_bias.any()
    inputs = {k: v for k, v in make_inputs(family).items() if k != "labels"}
    with torch.no_grad():
        ref = hf(**inputs, **decoder_inputs(family)).logits
        assert_close(ours(**inputs, **decoder_inputs(family)).logits, ref)
        expected = hf.generate(**inputs, num_beams=3, max_new_tokens=6)
    assert_close(ours(**inputs, **decoder_inputs(family)).logits.detach(), ref)
    assert ours.generate(**inputs, num_beams=3, max_new_tokens=6).tolist() == expected.tolist()
