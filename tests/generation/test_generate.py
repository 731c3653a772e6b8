"""generate's options, errors and streaming, on a tiny random Llama built by Cove (no reference library)."""

from __future__ import annotations

import itertools
import json
import threading

import pytest
import torch

import cove
from cove.errors import GenerationError
from cove.generation.config import GenerationConfig


@pytest.fixture(scope="module")
def model():
    config = cove.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=40,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    return cove.AutoModelForCausalLM.from_config(config).eval()


class CharTokenizer:
    """Token i decodes to chr(ord('a') + i % 26), token 3 to a space: enough for streamers and stop strings."""

    def decode(self, ids, **_):
        return "".join(" " if i == 3 else chr(ord("a") + i % 26) for i in ids)


PROMPT = torch.tensor([[5, 9, 11, 4, 7]])


def test_max_new_tokens_and_max_length(model):
    out = model.generate(PROMPT, max_new_tokens=6, eos_token_id=None)
    assert out.shape == (1, 11) and out[0, :5].tolist() == PROMPT[0].tolist()
    assert model.generate(PROMPT, max_length=9, eos_token_id=None).shape == (1, 9)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": -3}, "max_new_tokens"),
        ({"do_sample": True, "top_p": 1.5}, "top_p"),
        ({"do_sample": True, "top_p": 0.0}, "top_p"),
        ({"do_sample": True, "temperature": 0.0}, "temperature"),
        ({"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences"),
        ({"num_return_sequences": 2}, "num_return_sequences"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"early_stopping": "sometimes"}, "early_stopping"),
        ({"top_kk": 3}, "top_kk"),
        ({"max_new_tokens": 10, "stop_strings": "ab"}, "tokenizer"),
        ({"bad_words_ids": [5, 6]}, "bad_words_ids"),
        ({"bad_words_ids": [[5], []]}, "bad_words_ids"),
        ({"bad_words_ids": [[-1]]}, "bad_words_ids"),
        ({"bad_words_ids": [[64]]}, r"\[64\] outside the model's vocabulary of 64"),
    ],
)
def test_bad_options_raise_naming_them(model, options, needle):
    with pytest.raises(GenerationError, match=needle):
        model.generate(PROMPT, **options)


def test_prompt_longer_than_context(model):
    long = torch.randint(3, 60, (1, 38))
    with pytest.raises(GenerationError, match="context window of 40"):
        model.generate(long, max_new_tokens=5)
    out = model.generate(long, max_new_tokens=5, truncate_prompt=True, eos_token_id=None)
    assert out.shape == (1, 40) and out[0, :35].tolist() == long[0, 3:].tolist()


def test_empty_prompt(model):
    out = model.generate(torch.empty(1, 0, dtype=torch.long), max_new_tokens=3, eos_token_id=None)
    assert out[0, 0].item() == 1 and out.shape == (1, 4)  # started from BOS
    with pytest.raises(GenerationError, match="no bos_token_id"):
        model.generate(torch.empty(1, 0, dtype=torch.long), max_new_tokens=3, bos_token_id=None)


def test_eos_list_and_min_new_tokens(model):
    free = model.generate(PROMPT, max_new_tokens=8, eos_token_id=None)[0, 5:].tolist()
    stop = free[2]
    out = model.generate(PROMPT, max_new_tokens=8, eos_token_id=[63, stop])
    assert out[0, 5:].tolist() == free[: free.index(stop) + 1]
    longer = model.generate(PROMPT, max_new_tokens=8, eos_token_id=[63, stop], min_new_tokens=6)
    assert stop not in longer[0, 5:11].tolist()


def test_stop_strings(model):
    tok = CharTokenizer()
    free = model.generate(PROMPT, max_new_tokens=10, eos_token_id=None)[0, 5:].tolist()
    text = tok.decode(free)
    target = text[3:5]
    first = next(i for i in range(1, len(free) + 1) if target in tok.decode(free[:i]))
    out = model.generate(
        PROMPT, max_new_tokens=10, eos_token_id=None, pad_token_id=0, stop_strings=[target], tokenizer=tok
    )
    assert out[0, 5:].tolist() == free[:first]


def test_generation_config_file_and_unknown_keys(model, tmp_path):
    GenerationConfig(max_new_tokens=4, eos_token_id=None, do_sample=False).save_pretrained(tmp_path)
    config = GenerationConfig.from_pretrained(tmp_path)
    assert config.max_new_tokens == 4
    assert model.generate(PROMPT, generation_config=config).shape == (1, 9)
    (tmp_path / "generation_config.json").write_text('{"typical_p": 0.5}')
    with pytest.raises(GenerationError, match="typical_p"):
        GenerationConfig.from_pretrained(tmp_path)


def test_bad_words_ids_from_generation_config_json(model, tmp_path, caplog):
    """OPUS-MT's generation_config.json carries bad_words_ids: read as an option, never warned about."""
    free = model.generate(PROMPT, max_new_tokens=8, eos_token_id=None)[0, 5:].tolist()
    banned = [[free[0]], [free[2], free[3]]]
    (tmp_path / "generation_config.json").write_text(
        json.dumps({"bad_words_ids": banned, "max_new_tokens": 8, "eos_token_id": None})
    )
    with caplog.at_level("WARNING", logger="cove.generation"):
        config = GenerationConfig.from_pretrained(tmp_path)
    assert config.bad_words_ids == banned and not caplog.records
    out = model.generate(PROMPT, generation_config=config)[0, 5:].tolist()
    assert free[0] not in out and out != free
    pairs = list(itertools.pairwise(out))
    assert (free[2], free[3]) not in pairs
    assert model.generate(PROMPT, generation_config=config, bad_words_ids=None)[0, 5:].tolist() == free


def test_from_pretrained_reads_generation_config(model, tmp_path):
    model.save_pretrained(tmp_path)
    GenerationConfig(max_new_tokens=3, eos_token_id=None).save_pretrained(tmp_path)
    loaded = cove.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.generation_config.max_new_tokens == 3
    assert loaded.generate(PROMPT).shape == (1, 8)


def test_text_streamer_callback_sees_the_generated_text(model):
    tok = CharTokenizer()
    pieces: list[tuple[str, bool]] = []
    streamer = cove.TextStreamer(tok, skip_prompt=True, callback=lambda text, end: pieces.append((text, end)))
    out = model.generate(PROMPT, max_new_tokens=12, eos_token_id=None, streamer=streamer)
    assert "".join(p for p, _ in pieces) == tok.decode(out[0, 5:].tolist())
    assert pieces[-1][1] is True


def test_text_iterator_streamer_from_a_thread(model):
    tok = CharTokenizer()
    streamer = cove.TextIteratorStreamer(tok, skip_prompt=False, timeout=60)
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault(
            "out", model.generate(PROMPT, max_new_tokens=12, eos_token_id=None, streamer=streamer)
        )
    )
    thread.start()
    text = "".join(streamer)
    thread.join()
    assert text == tok.decode(result["out"][0].tolist())


def test_streaming_refuses_batches_and_beams(model):
    streamer = cove.TextStreamer(CharTokenizer(), callback=lambda *_: None)
    with pytest.raises(GenerationError, match="one sequence"):
        model.generate(torch.cat([PROMPT, PROMPT]), max_new_tokens=2, streamer=streamer)
    with pytest.raises(GenerationError, match="beam"):
        model.generate(PROMPT, max_new_tokens=2, num_beams=2, streamer=streamer)


def test_kv_cache_grows_in_chunks_without_reallocating_each_step():
    from cove.models.kv_cache import KVCache

    cache = KVCache(1, chunk=8)
    k = torch.randn(1, 2, 3, 4)
    cache.begin(3)
    cache.update(0, k, k)
    cache.end(3)
    buffer = cache.keys[0]
    for _ in range(5):  # 3 + 5 = 8 fits the first chunk: same storage
        cache.begin(1)
        out_k, _ = cache.update(0, torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4))
        cache.end(1)
    assert cache.keys[0].data_ptr() == buffer.data_ptr() and out_k.shape == (1, 2, 8, 4)
    torch.testing.assert_close(out_k[:, :, :3], k)
    cache.begin(1)
    cache.update(0, torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4))
    cache.end(1)
    assert cache.capacity == 16 and torch.equal(cache.keys[0][:, :, :3], k)


@pytest.mark.parametrize(
    "index",
    [[0, 1, 2, 3, 4, 5], [0, 0, 2, 3, 3, 5], [1, 0, 3, 2, 5, 4], [5, 5, 5, 0, 0, 0], [2, 2, 0]],
    ids=["kept", "few-moved-in-place", "all-moved", "most-moved", "fewer-rows"],
)
def test_kv_cache_reorder_keeps_the_chosen_rows(index):
    from cove.models.kv_cache import KVCache

    cache = KVCache(2, capacity=8)
    cache.begin(5)
    keys = [torch.randn(6, 2, 5, 3) for _ in range(2)]
    values = [torch.randn(6, 2, 5, 3) for _ in range(2)]
    for layer in range(2):
        cache.update(layer, keys[layer], values[layer])
    cache.end(5)
    for _ in range(2):  # twice: the second round runs over the buffers the first one left
        rows = torch.tensor(index)
        cache.reorder(rows)
        keys = [k[rows] for k in keys]
        values = [v[rows] for v in values]
        for layer in range(2):
            assert torch.equal(cache.keys[layer][:, :, :5], keys[layer])
            assert torch.equal(cache.values[layer][:, :, :5], values[layer])


def test_loss_with_labels_ignores_minus_100(model):
    ids = torch.randint(3, 60, (2, 6))
    labels = ids.clone()
    labels[:, :3] = -100
    out = model(ids, labels=labels)
    logits = out.logits[:, 2:-1].reshape(-1, 64)
    expected = torch.nn.functional.cross_entropy(logits, ids[:, 3:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)


def test_training_still_works_after_generate(model):
    model.generate(PROMPT, max_new_tokens=3)  # fuses q/k/v and gate/up for inference
    model.train()
    try:
        out = model(PROMPT, labels=PROMPT)
        out.loss.backward()
        assert model.model.layers[0].attn.q.weight.grad is not None
        assert model.model.layers[0].mlp.up.weight.grad is not None
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_sliding_window_is_refused_past_the_window():
    config = cove.MistralConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        sliding_window=8,
        eos_token_id=None,
    )
    model = cove.AutoModelForCausalLM.from_config(config).eval()
    assert model.generate(PROMPT, max_new_tokens=3).shape == (
        1,
        8,
    )  # within the window: full attention is exact
    with pytest.raises(GenerationError, match="sliding_window=8"):
        model.generate(PROMPT, max_new_tokens=6)


def test_unsupported_config_values_raise():
    from cove.errors import ConfigError

    with pytest.raises(ConfigError, match="longrope"):
        cove.LlamaConfig(rope_scaling={"rope_type": "longrope", "factor": 2.0})
    with pytest.raises(ConfigError, match="num_key_value_heads"):
        cove.LlamaConfig(num_attention_heads=8, num_key_value_heads=3)
    with pytest.raises(ConfigError, match="use_sliding_window"):
        cove.Qwen2Config(use_sliding_window=True)


def test_inputs_alias_and_tokenizer_outputs(model):
    a = model.generate(inputs=PROMPT, max_new_tokens=3, eos_token_id=None)
    b = model.generate(PROMPT, token_type_ids=torch.zeros_like(PROMPT), max_new_tokens=3, eos_token_id=None)
    assert a.tolist() == b.tolist()
    with pytest.raises(GenerationError, match="token_type_ids"):
        model.generate(PROMPT, token_type_ids=torch.ones_like(PROMPT), max_new_tokens=3)


def test_generated_ids_can_feed_a_training_step(model):
    out = model.generate(PROMPT, max_new_tokens=3, eos_token_id=None)
    assert not out.is_inference()
    model.train()
    try:
        model(out, labels=out).loss.backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_processors_write_in_place_only_into_owned_scores():
    """The eos ban of min_length / min_new_tokens copies the scores it is given, unless the caller owns them
    (beam search's log-probabilities): then it writes into them, with the same values."""
    from cove.generation.logits_process import (
        LogitsProcessorList,
        MinLengthLogitsProcessor,
        MinNewTokensLengthLogitsProcessor,
    )

    processors = LogitsProcessorList(
        [MinLengthLogitsProcessor(5, [1]), MinNewTokensLengthLogitsProcessor(2, 4, [2])]
    )
    ids = torch.zeros(2, 3, dtype=torch.long)
    scores = torch.randn(2, 6)
    before = scores.clone()
    copied = processors(ids, scores)
    assert torch.equal(scores, before) and copied is not scores
    assert copied[:, 1:3].isneginf().all() and torch.equal(copied[:, [0, 3, 4, 5]], before[:, [0, 3, 4, 5]])
    owned = processors(ids, scores, owned=True)
    assert owned is scores and torch.equal(owned, copied)
    assert torch.equal(processors(torch.zeros(2, 9, dtype=torch.long), before), before)  # long enough: as is
