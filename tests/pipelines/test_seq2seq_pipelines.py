"""summarization, translation and text2text-generation against transformers 4.57.6's pipelines (transformers 5
removed them), on tiny random T5, BART and Marian checkpoints; one reference subprocess computes every expected output.
Plus the bad inputs each pipeline refuses."""

from __future__ import annotations

import json
import shutil

import pytest

import cove
from cove.errors import PipelineError
from tests.pipelines.seq2seq_models import MAX_INPUT, make_seq2seq
from tests.reference4 import run_reference

pytestmark = pytest.mark.parity

TEXT = "The quick brown fox jumps over the lazy dog."
TEXTS = [
    TEXT,
    "Studies have shown that owning a dog is good for you.",
    "Cove runs offline and keeps every model on your own machine.",
]
LONG = " ".join(TEXTS * 8)  # over MAX_INPUT tokens

# id -> (family, task, pipeline keywords, inputs, call keywords)
CALLS: dict[str, tuple[str, str, dict, object, dict]] = {}
for family in ("t5", "bart", "marian"):
    CALLS.update(
        {
            f"{family}-summarization-defaults": (family, "summarization", {}, TEXT, {}),
            f"{family}-summarization-greedy-list": (
                family,
                "summarization",
                {},
                TEXTS,
                {"num_beams": 1, "max_new_tokens": 10},
            ),
            f"{family}-summarization-beams-min-max-length": (
                family,
                "summarization",
                {},
                TEXTS[:2],
                {"num_beams": 3, "min_length": 6, "max_length": 9},
            ),
            f"{family}-summarization-return-sequences": (
                family,
                "summarization",
                {},
                TEXTS[:2],
                {"num_beams": 3, "num_return_sequences": 2, "max_new_tokens": 7, "length_penalty": 0.5},
            ),
            f"{family}-summarization-truncation": (
                family,
                "summarization",
                {},
                [LONG, TEXT],
                {"truncation": True, "num_beams": 2, "max_new_tokens": 6},
            ),
            f"{family}-summarization-batched": (
                family,
                "summarization",
                {"batch_size": 2},
                TEXTS,
                {"num_beams": 2, "max_new_tokens": 8, "no_repeat_ngram_size": 2},
            ),
            f"{family}-translation-pair": (
                family,
                "translation_en_to_de",
                {},
                TEXTS[:2],
                {"max_new_tokens": 8},
            ),
            f"{family}-translation-tensors": (
                family,
                "translation_en_to_fr",
                {},
                TEXT,
                {"num_beams": 1, "max_new_tokens": 6, "return_tensors": True},
            ),
            f"{family}-text2text-beams": (
                family,
                "text2text-generation",
                {},
                TEXTS,
                {"num_beams": 2, "max_new_tokens": 8, "repetition_penalty": 1.3},
            ),
            f"{family}-text2text-tensors-min-length": (
                family,
                "text2text-generation",
                {},
                TEXTS[:2],
                {"num_beams": 1, "min_length": 5, "max_new_tokens": 7, "return_tensors": True},
            ),
            f"{family}-text2text-options-at-init": (
                family,
                "text2text-generation",
                {"num_beams": 1, "max_new_tokens": 5},
                TEXT,
                {},
            ),
        }
    )
# T5's task_specific_params: plain "translation" takes the first pair's prefix
CALLS["t5-translation-first-pair"] = ("t5", "translation", {}, TEXT, {"max_new_tokens": 8})
# a generation_config.json with its own values: its max_length replaces the pipeline's max_new_tokens, its
# no_repeat_ngram_size applies, its num_beams loses to the pipeline's 4 (transformers 4.57's order)
GENERATION_FILE = {"max_length": 7, "num_beams": 2, "no_repeat_ngram_size": 2}
CALLS["bart-generation-file-defaults"] = ("bart-genfile", "summarization", {}, TEXTS, {})
CALLS["bart-generation-file-call-wins"] = (
    "bart-genfile",
    "summarization",
    {},
    TEXT,
    {"num_beams": 1, "max_length": 5},
)

REFERENCE = """
import json, sys
import torch
from transformers import pipeline
p = json.loads(sys.stdin.read())
pipes, out = {}, {}
for name, (family, task, init, inputs, call) in p["calls"].items():
    key = json.dumps([family, task, init])
    if key not in pipes:
        pipes[key] = pipeline(task, model=p["folders"][family], **init)
    call = dict(call)
    if "max_length" in call and "max_new_tokens" not in call:
        # Cove lets an asked max_length replace the pipeline's default max_new_tokens; so does this
        call["max_new_tokens"] = None
    r = pipes[key](inputs, **call)
    out[name] = json.loads(json.dumps(r, default=lambda t: t.tolist() if isinstance(t, torch.Tensor) else t))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq2seq")
    out = {family: make_seq2seq(root / family, family) for family in ("t5", "bart", "marian")}
    shutil.copytree(out["bart"], root / "bart-genfile")
    path = root / "bart-genfile" / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **GENERATION_FILE}))
    out["bart-genfile"] = str(root / "bart-genfile")
    return out


@pytest.fixture(scope="module")
def reference(folders):
    return run_reference(REFERENCE, {"folders": folders, "calls": CALLS})


@pytest.fixture(scope="module")
def pipes(folders):
    cache: dict[str, object] = {}

    def get(family: str, task: str, **init):
        key = json.dumps([family, task, init])
        if key not in cache:
            cache[key] = cove.pipeline(task, model=folders[family], **init)
        return cache[key]

    return get


@pytest.mark.parametrize("name", sorted(CALLS))
def test_matches_transformers4(pipes, reference, name):
    family, task, init, inputs, call = CALLS[name]
    got = pipes(family, task, **init)(inputs, **call)
    json.dumps(got)
    assert got == reference[name]


def test_output_shapes_and_keys(pipes):
    summarize = pipes("t5", "summarization")
    one = summarize(TEXT, max_new_tokens=4)
    assert isinstance(one, list) and len(one) == 1 and set(one[0]) == {"summary_text"}
    many = summarize(TEXTS, max_new_tokens=4)
    assert [set(r) for r in many] == [{"summary_text"}] * 3
    nested = summarize(TEXTS[:2], max_new_tokens=4, num_beams=2, num_return_sequences=2)
    assert [len(r) for r in nested] == [2, 2]
    assert summarize(iter(TEXTS), max_new_tokens=4) == many  # any iterable
    ids = pipes("t5", "text2text-generation")(TEXT, max_new_tokens=4, return_tensors=True)
    assert set(ids[0]) == {"generated_token_ids"} and all(
        isinstance(i, int) for i in ids[0]["generated_token_ids"]
    )
    translated = pipes("bart", "translation")(TEXT, max_new_tokens=4, src_lang="en", tgt_lang="de")
    assert set(translated[0]) == {"translation_text"}


def test_batch_size_does_not_change_outputs(folders):
    one = cove.pipeline("summarization", model=folders["bart"], batch_size=1)
    eight = cove.pipeline("summarization", model=folders["bart"], batch_size=8)
    kwargs = {"num_beams": 2, "max_new_tokens": 6}
    inputs = [*TEXTS, LONG[:100]]
    assert one(inputs, **kwargs) == eight(inputs, **kwargs)


def test_task_prefix_is_prepended(pipes, folders):
    """The T5 prefix from task_specific_params: summarizing equals text2text on the prefixed text with the
    task's own options."""
    kwargs = {"max_new_tokens": 6}
    summary = pipes("t5", "summarization")(TEXT, **kwargs)[0]["summary_text"]
    plain = pipes("t5", "text2text-generation")(
        "summarize: " + TEXT, num_beams=2, no_repeat_ngram_size=3, min_length=3, **kwargs
    )
    assert summary == plain[0]["generated_text"]
    german = pipes("t5", "translation_en_to_de")(TEXT, **kwargs)[0]["translation_text"]
    assert (
        german
        == pipes("t5", "text2text-generation")("translate English to German: " + TEXT, num_beams=3, **kwargs)[
            0
        ]["generated_text"]
    )


def test_cli_runs_summarization(pipes, folders, capsys):
    from cove.cli.main import main

    assert main(["run", "summarization", TEXT, "--model", folders["t5"], "--param", "max_new_tokens=4"]) == 0
    assert json.loads(capsys.readouterr().out) == pipes("t5", "summarization")(TEXT, max_new_tokens=4)


# -- bad input -------------------------------------------------------------------------------------


def test_too_long_input_needs_truncation(pipes):
    summarize = pipes("bart", "summarization")
    with pytest.raises(PipelineError, match=rf"longer than the {MAX_INPUT}.*truncation=True"):
        summarize(LONG, max_new_tokens=3)
    assert summarize(LONG, max_new_tokens=3, truncation=True)[0]["summary_text"] is not None


def test_translation_pair_the_model_cannot_do(folders):
    with pytest.raises(PipelineError, match=r"translation_en_to_xx.*translation_en_to_de"):
        cove.pipeline("translation_en_to_xx", model=folders["t5"])


def test_mbart_language_codes_are_refused(folders, tmp_path):
    import transformers

    from tests.parity.test_seq2seq_parity import bart_config

    tokenizer = cove.AutoTokenizer.from_pretrained(folders["bart"])
    config = transformers.MBartConfig(**bart_config(vocab_size=len(tokenizer)))
    transformers.AutoModelForSeq2SeqLM.from_config(config).save_pretrained(tmp_path)
    model = cove.AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    with pytest.raises(PipelineError, match=r"mBART.*src_lang='en_XX'"):
        cove.pipeline("translation_en_to_de", model=model, tokenizer=tokenizer)
    assert cove.pipeline("text2text-generation", model=model, tokenizer=tokenizer)(TEXT, max_new_tokens=3)


def test_not_an_encoder_decoder(folders, tmp_path):
    from tests.pipelines.conftest import minilm_folder

    with pytest.raises(PipelineError, match=r"'summarization' pipeline needs an encoder-decoder.*'bert'"):
        cove.pipeline("summarization", model=minilm_folder())
    model = cove.AutoModelForSeq2SeqLM.from_pretrained(folders["t5"])
    model.config.is_encoder_decoder = False
    with pytest.raises(PipelineError, match="encoder-decoder"):
        cove.pipeline(
            "summarization", model=model, tokenizer=cove.AutoTokenizer.from_pretrained(folders["t5"])
        )
    decoder = cove.AutoModelForCausalLM.from_config(
        cove.AutoConfig.for_model("gpt2", vocab_size=99, n_embd=16, n_layer=1, n_head=2)
    )
    with pytest.raises(PipelineError, match=r"GPT2LMHeadModel is not one"):
        cove.pipeline(
            "text2text-generation", model=decoder, tokenizer=cove.AutoTokenizer.from_pretrained(folders["t5"])
        )


def test_max_length_below_min_length(pipes):
    summarize = pipes("t5", "summarization")
    with pytest.raises(PipelineError, match=r"max_length=4 is below min_length=9"):
        summarize(TEXT, min_length=9, max_length=4)
    with pytest.raises(PipelineError, match=r"max_length=4 is below min_length=9"):
        cove.pipeline(
            "text2text-generation",
            model=summarize.model,
            tokenizer=summarize.tokenizer,
            min_length=9,
            max_length=4,
        )


@pytest.mark.parametrize("task", ["translation", "translation_en_to_de", "text2text-generation"])
def test_no_default_model(task):
    with pytest.raises(PipelineError, match=r"model=.*T5, BART or Marian.*hub"):
        cove.pipeline(task)


def test_the_summarization_default_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path))  # nothing built here
    with pytest.raises(PipelineError, match=r"cove/minilm-extractive-summarizer.*cove setup-models"):
        cove.pipeline("summarization")


def test_bad_values(pipes):
    summarize = pipes("t5", "summarization")
    with pytest.raises(PipelineError, match="takes strings"):
        summarize([TEXT, 3])
    with pytest.raises(PipelineError, match="does not take"):
        summarize(TEXT, return_full_text=True)
    with pytest.raises(PipelineError, match="num_beams"):
        summarize(TEXT, num_beams=0)


def test_task_params_max_length_replaces_the_default_max_new_tokens(folders):
    """A max_length in task_specific_params is honoured (transformers 4.57 lets its default
    max_new_tokens=256 override it; Cove does not)."""
    model = cove.AutoModelForSeq2SeqLM.from_pretrained(folders["t5"])
    model.config.task_specific_params = {"summarization": {"max_length": 5, "num_beams": 1}}
    summarize = cove.pipeline(
        "summarization", model=model, tokenizer=cove.AutoTokenizer.from_pretrained(folders["t5"])
    )
    ids = summarize(TEXTS, return_tensors=True)
    assert max(len(r["summary_token_ids"]) for r in ids) == 5
    assert summarize.prefix == ""  # this entry has no prefix


def test_sampling_with_a_seed_is_reproducible(pipes):
    generate = pipes("t5", "text2text-generation")
    kwargs = {"do_sample": True, "num_beams": 1, "max_new_tokens": 8, "top_k": 0}
    first = generate(TEXTS, seed=3, **kwargs)
    assert generate(TEXTS, seed=3, **kwargs) == first
    assert [generate(TEXTS, seed=s, **kwargs) for s in range(4, 8)] != [first] * 4
