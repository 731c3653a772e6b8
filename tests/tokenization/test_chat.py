"""Chat templates: rendered in a sandbox with transformers' environment, wired onto the tokenizer."""

from __future__ import annotations

import pytest

from cove.errors import TokenizerError
from cove.tokenization.chat import render_chat_template, select_template

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CHAT = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def test_renders_and_adds_generation_prompt():
    text = render_chat_template(CHATML, CHAT, add_generation_prompt=True)
    assert (
        text
        == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>assistant\n"
    )
    assert not render_chat_template(CHATML, CHAT).endswith("assistant\n")


def test_special_tokens_globals_and_block_trimming():
    template = "{{ bos_token }}\n   {% for m in messages %}\n{{ m['content'] | tojson }}{% endfor %}\n{{ strftime_now('%Y')|length }}"
    # trim_blocks/lstrip_blocks remove the newline after a block tag and the indent before it
    assert render_chat_template(template, [{"role": "user", "content": "é"}], bos_token="<s>") == '<s>\n"é"4'


def test_raise_exception_becomes_a_tokenizer_error():
    template = (
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be user') }}{% endif %}"
    )
    with pytest.raises(TokenizerError, match="first message must be user"):
        render_chat_template(template, [{"role": "system", "content": "x"}])


@pytest.mark.parametrize(
    "template",
    [
        "{{ messages.__class__.__mro__ }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{% set _ = messages.append({'role': 'x'}) %}",
    ],
)
def test_sandbox_blocks_python_internals(template):
    with pytest.raises(TokenizerError):
        out = render_chat_template(template, [{"role": "user", "content": "x"}])
        # undefined attributes render empty in a sandbox rather than leaking: treat that as blocked too
        if "class" not in out and "object" not in out:
            raise TokenizerError(out)


def test_continue_final_message_and_conflicts():
    text = render_chat_template(CHATML, CHAT, continue_final_message=True)
    assert text.endswith("<|im_start|>assistant\nhello")
    with pytest.raises(TokenizerError, match="cannot both"):
        render_chat_template(CHATML, CHAT, add_generation_prompt=True, continue_final_message=True)


def test_template_selection():
    named = [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]
    assert select_template(named) == "D"
    assert select_template(named, tools=[{"name": "f"}]) == "T"
    assert select_template(named, "tool_use") == "T"
    assert select_template("X") == "X" and select_template("X", "{{ 1 }}") == "{{ 1 }}"
    with pytest.raises(TokenizerError, match="no chat template"):
        select_template(None)


def test_bad_template_and_messages():
    with pytest.raises(TokenizerError, match="does not parse"):
        render_chat_template("{% for %}", CHAT)
    with pytest.raises(TokenizerError, match="list of"):
        render_chat_template(CHATML, "hi")  # type: ignore[arg-type]


def test_tokenizer_apply_chat_template(tmp_path):
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    import cove

    vocab = {c: i for i, c in enumerate(sorted(set("<|im_start|>userhiassistantello\n_")))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="_"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok = cove.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="_", pad_token="_", chat_template=CHATML
    )
    text = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    enc = tok.apply_chat_template(CHAT, add_generation_prompt=True)
    assert enc["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    assert (
        tok.apply_chat_template(CHAT, return_dict=False)
        == tok(tok.apply_chat_template(CHAT, tokenize=False), add_special_tokens=False)["input_ids"]
    )
    batch = tok.apply_chat_template([CHAT, CHAT[:1]], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[0] == 2
    with pytest.raises(TokenizerError, match="empty conversation"):
        tok.apply_chat_template([])
