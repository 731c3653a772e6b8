"""The default summarization model: extractive (MiniLM sentence centrality), built by the recipe, chosen by
pipeline("summarization") from the model's config; the sentence splitter; ACLSum scoring on a fake sdist."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from cove.errors import PipelineError
from cove.pipelines.sentences import split_sentences
from cove.training.recipes import summarization as recipe

TEXT = (
    "Hugging Face is a company based in New York City. Its headquarters are in DUMBO, therefore very close "
    "to the Manhattan Bridge. The company builds tools for machine learning, e.g. the transformers library. "
    "Dr. Smith et al. wrote about it in Fig. 3 of their paper. Many engineers use these tools every day. "
    "The weather in New York was cold that winter."
)


def test_sentences_split_at_ends_not_at_abbreviations_or_initials():
    text = 'It rose 2.5 times. Dr. Smith et al. agreed, e.g. in Fig. 3. J. Doe did not! Why?\n\n"Quoted." Next (see Sec. 4) ends'
    assert split_sentences(text) == [
        "It rose 2.5 times.",
        "Dr. Smith et al. agreed, e.g. in Fig. 3.",
        "J. Doe did not!",
        "Why?",
        '"Quoted."',
        "Next (see Sec. 4) ends",
    ]
    assert split_sentences("  \n\n ") == []
    assert split_sentences("one line\nstill the same sentence. New one.") == [
        "one line still the same sentence.",
        "New one.",
    ]


@pytest.fixture(scope="module")
def summarizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("extractive")
    recipe.write_model(folder)
    return folder


def test_the_model_is_the_encoder_marked_extractive(summarizer_dir):
    config = json.loads((summarizer_dir / "config.json").read_text())
    assert config["task_specific_params"]["summarization"] == {"method": "extractive", "num_sentences": 3}
    assert (summarizer_dir / "model.safetensors").is_file() and (summarizer_dir / "modules.json").is_file()


def test_pipeline_picks_the_extractive_class_and_keeps_summary_text(summarizer_dir):
    import torch

    import cove
    from cove.pipelines.extractive import ExtractiveSummarizationPipeline

    pipe = cove.pipeline("summarization", model=str(summarizer_dir))
    assert isinstance(pipe, ExtractiveSummarizationPipeline)
    out = pipe(TEXT)
    assert isinstance(out, list) and len(out) == 1 and set(out[0]) == {"summary_text"}
    sentences = split_sentences(TEXT)
    picked = split_sentences(out[0]["summary_text"])
    assert len(picked) == 3 and all(s in sentences for s in picked)
    assert picked == sorted(picked, key=sentences.index)  # in the text's order
    # the choice is the three sentences nearest the centroid, computed here independently
    st = cove.pipeline("sentence-similarity", model=str(summarizer_dir))
    emb = torch.as_tensor(st.encode(sentences))
    centre = torch.nn.functional.normalize(emb.mean(0), dim=0)
    expected = sorted((emb @ centre).topk(3).indices.tolist())
    assert picked == [sentences[i] for i in expected]
    # several texts: one record each; num_sentences per call
    many = pipe([TEXT, "One sentence only."], num_sentences=1)
    assert [len(split_sentences(r["summary_text"])) for r in many] == [1, 1]
    assert many[1]["summary_text"] == "One sentence only."


def test_bad_input_is_refused_clearly(summarizer_dir):
    import cove

    pipe = cove.pipeline("summarization", model=str(summarizer_dir))
    with pytest.raises(PipelineError, match="num_sentences must be a positive integer"):
        pipe(TEXT, num_sentences=0)
    with pytest.raises(PipelineError, match="does not take"):
        pipe(TEXT, max_lenght=20)
    with pytest.raises(PipelineError, match="empty text"):
        pipe("   ")


def test_a_plain_encoder_is_not_taken_for_a_summarizer(tmp_path):
    """Only a config that says extractive gets the extractive pipeline: a plain BERT is refused as before."""
    import cove
    from cove.hub.resolve import resolve_model_dir

    with pytest.raises(Exception, match=r"(?i)seq2seq|encoder-decoder|not"):
        cove.pipeline("summarization", model=str(resolve_model_dir(recipe.BASE_MODEL)))


def _fake_aclsum(folder, docs):
    folder.mkdir(parents=True, exist_ok=True)
    raw = "\n".join(json.dumps(d) for d in docs).encode()
    archive = folder / f"aclsum-{recipe.ACLSUM_VERSION}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(f"aclsum-{recipe.ACLSUM_VERSION}/aclsum/dataset/test.jsonl")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    return archive


def test_recipe_scores_on_aclsum_and_becomes_the_default(tmp_path, monkeypatch):
    import cove

    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "data"))
    sentences = split_sentences(TEXT)
    docs = [
        {
            "id": f"P{i}",
            "sentences": {"abstract": [s.replace(",", " ,") for s in sentences]},
            "summary": {"challenge": sentences[0], "approach": sentences[2], "outcome": sentences[4]},
        }
        for i in range(3)
    ]
    _fake_aclsum(tmp_path / "data" / "downloads", docs)
    figures = recipe.build(progress=False)
    assert figures["test_examples"] == 3
    assert 0 < figures["rouge"]["rougeL"] <= 1
    card = (tmp_path / "data" / "models" / recipe.REPO_ID / "README.md").read_text()
    assert "pipeline_tag: summarization" in card and f"{figures['rouge']['rougeL']:.4f}" in card
    assert figures["published"].startswith(f"local:{recipe.REPO_ID}")
    out = cove.pipeline("summarization")(TEXT)  # the default, resolved by name
    assert len(split_sentences(out[0]["summary_text"])) == 3


def test_recipe_and_pipeline_defaults_agree():
    from cove.pipelines.defaults import DEFAULTS
    from cove.training.recipes import DEFAULT_MODELS

    assert recipe.REPO_ID == DEFAULT_MODELS["summarization"] == DEFAULTS["summarization"]


def test_detokenize_undoes_aclsum_spacing():
    assert recipe.detokenize("current Machine Translation ( MT ) systems , do n't work .") == (
        "current Machine Translation (MT) systems, don't work."
    )


def test_transformers_length_options_bound_the_summary_in_tokens(summarizer_dir):
    import cove

    pipe = cove.pipeline("summarization", model=str(summarizer_dir))
    sentences = split_sentences(TEXT)
    lengths = {s: len(pipe.tokenizer(s)["input_ids"]) - 2 for s in sentences}
    short = pipe(TEXT, max_length=25, do_sample=False)[0]["summary_text"]
    picked = split_sentences(short)
    assert picked and (len(picked) == 1 or sum(lengths[s] for s in picked) <= 25)
    full = split_sentences(pipe(TEXT, max_length=130, min_length=30, do_sample=False)[0]["summary_text"])
    assert len(full) >= 3 and sum(lengths[s] for s in full) >= 30
    longer = split_sentences(pipe(TEXT, num_sentences=1, min_length=40)[0]["summary_text"])
    assert sum(lengths[s] for s in longer) >= 40  # past num_sentences until min_length is reached
    with pytest.raises(PipelineError, match="min_length"):
        pipe(TEXT, max_length=10, min_length=20)
    with pytest.raises(PipelineError, match="samples nothing"):
        pipe(TEXT, do_sample=True)
