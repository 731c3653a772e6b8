"""text-generation against transformers' pipeline on tiny random GPT-2 and Llama checkpoints (greedy and
beam search, so outputs are deterministic), plus chats, streaming and bad input."""

from __future__ import annotations

import json

import pytest
import torch

import cove
from cove.errors import CoveError
from tests.pipelines.conftest import BPE_CORPUS

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.parity

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def save_tokenizer(folder) -> int:
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe.train_from_iterator(BPE_CORPUS, vocab_size=300, special_tokens=specials)
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=256,
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    return len(tok)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def lm(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"lm-{request.param}")
    vocab = save_tokenizer(folder)
    if request.param == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=vocab,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=256,
            bos_token_id=0,
            eos_token_id=2,
        )
        cls = transformers.GPT2LMHeadModel
    else:
        config = transformers.LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=0,
        )
        cls = transformers.LlamaForCausalLM
    torch.manual_seed(0)
    model = cls(config)
    with torch.no_grad():  # larger logits: no near-ties between tokens under greedy search
        for p in model.parameters():
            p.mul_(3)
    model.save_pretrained(folder)
    return str(folder)


PROMPTS = ["Paris is the capital of", "The quick brown fox", "Sarah lives in London and"]


@pytest.mark.parametrize(
    "params",
    [
        {"do_sample": False, "max_new_tokens": 8},
        {"do_sample": False, "max_new_tokens": 6, "return_full_text": False},
        {"do_sample": False, "max_new_tokens": 6, "num_beams": 3, "num_return_sequences": 2},
        {"do_sample": False, "max_new_tokens": 8, "repetition_penalty": 1.5, "no_repeat_ngram_size": 2},
    ],
)
def test_prompts_match_transformers(lm, params):
    ref = transformers.pipeline("text-generation", model=lm, tokenizer=lm)
    ours = cove.pipeline("text-generation", model=lm)
    assert ours(PROMPTS[0], **params) == ref(PROMPTS[0], **params)
    got = ours(PROMPTS, **params)
    assert got == ref(PROMPTS, **params)
    json.dumps(got)


def test_batched_left_padding_equals_one_by_one(lm):
    ours = cove.pipeline("text-generation", model=lm, batch_size=3)
    one = cove.pipeline("text-generation", model=lm, batch_size=1)
    params = {"do_sample": False, "max_new_tokens": 8}
    assert ours(PROMPTS, **params) == one(PROMPTS, **params)


def test_chat_matches_transformers(lm):
    ref = transformers.pipeline("text-generation", model=lm, tokenizer=lm)
    ours = cove.pipeline("text-generation", model=lm)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is Paris?"}]
    params = {"do_sample": False, "max_new_tokens": 8}
    got = ours(chat, **params)
    assert got == ref(chat, **params)
    assert got[0]["generated_text"][:2] == chat and got[0]["generated_text"][2]["role"] == "assistant"
    prefilled = [*chat, {"role": "assistant", "content": "Paris is"}]
    assert ours(prefilled, **params) == ref(prefilled, **params)


def test_streaming_gives_the_same_text(lm):
    ours = cove.pipeline("text-generation", model=lm)
    params = {"do_sample": False, "max_new_tokens": 10}
    pieces = list(ours(PROMPTS[1], stream=True, **params))
    full = ours(PROMPTS[1], return_full_text=False, **params)[0]["generated_text"]
    assert "".join(pieces) == full


def test_seeded_sampling_is_reproducible(lm):
    ours = cove.pipeline("text-generation", model=lm)
    a = ours(PROMPTS[0], do_sample=True, top_k=20, top_p=0.9, temperature=0.8, max_new_tokens=8, seed=7)
    b = ours(PROMPTS[0], do_sample=True, top_k=20, top_p=0.9, temperature=0.8, max_new_tokens=8, seed=7)
    assert a == b


def test_bad_input(lm):
    ours = cove.pipeline("text-generation", model=lm)
    with pytest.raises(CoveError, match="None"):
        ours(None)
    with pytest.raises(CoveError, match="int"):
        ours([3])
    with pytest.raises(CoveError, match="max_new_tokens"):
        ours("hi", max_new_tokens=0)
    with pytest.raises(CoveError, match="top_p"):
        ours("hi", do_sample=True, top_p=1.5)
    with pytest.raises(CoveError, match="no_such_option"):
        ours("hi", no_such_option=1)
