"""cove.demo: the app of each task on tiny random checkpoints made here, called with the real gradio_client
against one launched server (every demo mounted on it under /{task}/), and compared with cove.pipeline on
the same input."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

import cove
from cove.errors import PipelineError

pytest.importorskip("gradio")
pytest.importorskip("transformers")

pytestmark = [pytest.mark.slow, pytest.mark.server]

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
NLI_LABELS = ["contradiction", "neutral", "entailment"]
GREEDY = {"do_sample": False, "max_new_tokens": 6}
WIDGET_CARD = (
    "---\npipeline_tag: text-classification\nwidget:\n- text: I loved every minute of it.\n"
    "- text: A dull film.\n---\n# Tiny sentiment\n"
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import torch
    import transformers

    from tests.pipelines.conftest import make_model
    from tests.pipelines.seq2seq_models import make_seq2seq
    from tests.pipelines.test_text_generation import save_tokenizer

    root = tmp_path_factory.mktemp("demo-models")
    out = {
        "text-classification": make_model(root / "seq", "bert", "seq", ["negative", "positive"]),
        "token-classification": make_model(root / "tok", "bert", "tok", NER_LABELS),
        "question-answering": make_model(root / "qa", "bert", "qa"),
        "fill-mask": make_model(root / "mlm", "bert", "mlm"),
        "zero-shot-classification": make_model(root / "nli", "bert", "seq", NLI_LABELS),
        "text2text-generation": make_seq2seq(root / "t5", "t5"),
    }
    (out["text-classification"] / "README.md").write_text(WIDGET_CARD)
    for chat in (False, True):
        folder = root / f"lm-{chat}"
        folder.mkdir()
        vocab = save_tokenizer(folder)
        if not chat:
            config = json.loads((folder / "tokenizer_config.json").read_text())
            config.pop("chat_template", None)
            (folder / "tokenizer_config.json").write_text(json.dumps(config))
            (folder / "chat_template.jinja").unlink(missing_ok=True)
        torch.manual_seed(0)
        config = transformers.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=256)
        model = transformers.GPT2LMHeadModel(config)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(3)
        model.save_pretrained(folder)
        out["chat" if chat else "text-generation"] = folder
    return {k: str(v) for k, v in out.items()}


# demo name -> (task for cove.pipeline, model key, call params)
DEMOS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "text-classification": ("text-classification", "text-classification", {}),
    "token-classification": ("token-classification", "token-classification", {}),
    "question-answering": ("question-answering", "question-answering", {}),
    "fill-mask": ("fill-mask", "fill-mask", {}),
    "feature-extraction": ("feature-extraction", "fill-mask", {}),
    "sentence-similarity": ("sentence-similarity", "fill-mask", {}),
    "zero-shot-classification": ("zero-shot-classification", "zero-shot-classification", {}),
    "summarization": ("summarization", "text2text-generation", GREEDY),
    "translation": ("translation_en_to_de", "text2text-generation", GREEDY),
    "text2text-generation": ("text2text-generation", "text2text-generation", GREEDY),
    "text-generation": ("text-generation", "text-generation", GREEDY),
    "chat": ("text-generation", "chat", GREEDY),
}


@pytest.fixture(scope="module")
def pipes(folders: dict[str, str]) -> dict[str, Any]:
    return {name: cove.pipeline(task, model=folders[key]) for name, (task, key, _) in DEMOS.items()}


@pytest.fixture(scope="module")
def server(pipes: dict[str, Any]) -> Iterator[str]:
    """Every demo on one uvicorn server, /{name}/ each."""
    import gradio as gr
    from fastapi import FastAPI

    import cove.demo
    from tests.server.conftest import serve_in_thread

    app = FastAPI()
    for name, (_, _, params) in DEMOS.items():
        demo = cove.demo.interface(pipes[name], params=params)
        gr.mount_gradio_app(app, demo, path=f"/{name}")
    url, srv, thread = serve_in_thread(app, health="/text-classification/config", timeout=60)
    yield url
    srv.should_exit = True  # type: ignore[attr-defined]
    thread.join(timeout=15)


def _client(server: str, name: str) -> Any:
    from gradio_client import Client

    return Client(f"{server}/{name}/", verbose=False)


def _label(value: dict[str, Any]) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in value["confidences"]}


def test_classification_shows_the_pipelines_scores_as_label_bars(server: str, pipes: dict[str, Any]) -> None:
    text = "I like you. I love you."
    got = _client(server, "text-classification").predict(text, api_name="/predict")
    want = pipes["text-classification"](text, top_k=None)
    assert got["label"] == want[0]["label"]
    assert _label(got) == pytest.approx({r["label"]: r["score"] for r in want})


def test_ner_highlights_the_aggregated_entities(server: str, pipes: dict[str, Any]) -> None:
    text = "My name is Sarah and I live in London."
    got = _client(server, "token-classification").predict(text, api_name="/predict")
    want = pipes["token-classification"](text, aggregation_strategy="simple")
    assert want, "the tiny model finds no entity: the test would prove nothing"
    # HighlightedText's value: the text cut into (span, label or None) pieces covering all of it
    assert "".join(piece["token"] for piece in got) == text
    labelled = [(p["token"], p["class_or_confidence"]) for p in got if p["class_or_confidence"] is not None]
    assert labelled == [(text[e["start"] : e["end"]], e["entity_group"]) for e in want]


def test_question_answering_takes_question_and_context(server: str, pipes: dict[str, Any]) -> None:
    question, context = "Where do I live?", "My name is Sarah and I live in London."
    answer, score = _client(server, "question-answering").predict(question, context, api_name="/predict")
    want = pipes["question-answering"](question=question, context=context)
    assert answer == want["answer"] and score == pytest.approx(want["score"])


def test_fill_mask_lists_the_candidates(server: str, pipes: dict[str, Any]) -> None:
    text = "Paris is the [MASK] of France."
    got = _client(server, "fill-mask").predict(text, api_name="/predict")
    want = pipes["fill-mask"](text, top_k=5)
    assert _label(got) == pytest.approx({r["sequence"]: r["score"] for r in want})


def test_feature_extraction_and_sentence_similarity(server: str, pipes: dict[str, Any]) -> None:
    text = "Cove runs offline."
    got = _client(server, "feature-extraction").predict(text, api_name="/predict")
    np.testing.assert_allclose(np.array(got), np.array(pipes["feature-extraction"](text)), rtol=1e-6)
    source, sentences = "A man plays a guitar.", ["Someone plays music.", "Stocks fell today."]
    got = _client(server, "sentence-similarity").predict(source, "\n".join(sentences), api_name="/predict")
    want = pipes["sentence-similarity"](source, sentences)
    assert _label(got) == pytest.approx(dict(zip(sentences, want)))


def test_zero_shot_takes_candidate_labels(server: str, pipes: dict[str, Any]) -> None:
    text = "I have a problem with my phone that needs to be fixed asap!"
    got = _client(server, "zero-shot-classification").predict(
        text, "urgent, not urgent, phone", False, api_name="/predict"
    )
    want = pipes["zero-shot-classification"](text, candidate_labels=["urgent", "not urgent", "phone"])
    assert _label(got) == pytest.approx(dict(zip(want["labels"], want["scores"])))


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("summarization", "summary_text"),
        ("translation", "translation_text"),
        ("text2text-generation", "generated_text"),
    ],
)
def test_seq2seq_tasks_answer_with_text(server: str, pipes: dict[str, Any], name: str, key: str) -> None:
    text = "Paris is the capital of France."
    got = _client(server, name).predict(text, api_name="/predict")
    assert got == pipes[name](text, **GREEDY)[0][key]


def test_text_generation_streams_to_the_pipelines_text(server: str, pipes: dict[str, Any]) -> None:
    prompt = "Paris is the capital of"
    job = _client(server, "text-generation").submit(prompt, api_name="/predict")
    final = job.result(timeout=120)
    assert final == pipes["text-generation"](prompt, **GREEDY)[0]["generated_text"]
    updates = job.outputs()
    assert updates[0] == prompt and len(updates) > 2  # streamed piece by piece, each longer than the last
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(updates))


def test_an_instruct_model_gets_a_streaming_chat(server: str, pipes: dict[str, Any]) -> None:
    import cove.demo
    from cove.demo.interface import CHAT_EXAMPLES

    chat_app = cove.demo.interface(pipes["chat"])
    assert type(chat_app).__name__ == "ChatInterface" and chat_app.examples == CHAT_EXAMPLES
    job = _client(server, "chat").submit("Hello there", api_name="/chat")
    reply = job.result(timeout=120)
    chat = [{"role": "user", "content": "Hello there"}]
    assert reply == pipes["chat"](chat, return_full_text=False, **GREEDY)[0]["generated_text"]
    assert len(job.outputs()) > 1


def test_a_model_folder_gives_its_task_and_its_cards_widget_examples(folders: dict[str, str]) -> None:
    import cove.demo

    demo = cove.demo.interface(folders["text-classification"])  # the task from the card's pipeline_tag
    assert type(demo).__name__ == "Interface"
    assert demo.examples == ["I loved every minute of it.", "A dull film."]
    assert "text-classification" in demo.title
    qa = cove.demo.interface("question-answering", model=folders["question-answering"])
    assert [c.label for c in qa.input_components] == ["Question", "Context"]


def test_clear_errors(folders: dict[str, str], tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    import cove.demo

    with pytest.raises(PipelineError, match="neither a task"):
        cove.demo.interface("no-such-task-or-model")
    unsupported = tmp_path / "vision"
    unsupported.mkdir()
    (unsupported / "README.md").write_text("---\npipeline_tag: image-classification\n---\n")
    with pytest.raises(PipelineError, match=r"no demo: .*'image-classification', which Cove does not serve"):
        cove.demo.interface(str(unsupported))
    with pytest.raises(
        PipelineError, match=r"no demo for the task 'image-classification': .*text-classification"
    ):
        cove.demo.demo_task("image-classification")
    with pytest.raises(PipelineError, match="needs the model's repo id"):
        cove.demo.space_files(folders["text-classification"])
    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(PipelineError, match=r"pip install 'cove\[demo\]'"):
        cove.demo.interface(folders["text-classification"])


def test_share_on_hub_pushes_a_space_whose_app_runs(folders: dict[str, str], tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import runpy

    import gradio as gr

    from cove.cli.main import main
    from cove.hub import client
    from cove.store.cards import card_from_readme
    from tests.server.conftest import start_hub

    hub, srv, thread = start_hub(tmp_path / "hub")
    try:
        monkeypatch.setenv("COVE_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("COVE_HOME", str(tmp_path / "home"))
        for key in ("HF_HUB_OFFLINE", "COVE_TOKEN", "HF_TOKEN", "HF_ENDPOINT", "COVE_DATA_DIR"):
            monkeypatch.delenv(key, raising=False)
        token = hub.tokens["alice"]
        client.upload_folder("alice/tiny-sentiment", folders["text-classification"], token=token)
        assert (
            main(["demo", "alice/tiny-sentiment", "--share-on-hub", "alice/sentiment-demo", "--token", token])
            == 0
        )
        files = {
            name: httpx.get(f"{hub.url}/spaces/alice/sentiment-demo/resolve/main/{name}").text
            for name in ("README.md", "app.py", "requirements.txt")
        }
        card = card_from_readme(files["README.md"])
        assert card["sdk"] == "gradio" and card["sdk_version"] == gr.__version__
        assert card["app_file"] == "app.py" and card["models"] == ["alice/tiny-sentiment"]
        assert 'cove.demo.interface("alice/tiny-sentiment")' in files["app.py"]
        assert files["requirements.txt"].strip() == "cove[demo]"
        app_py = tmp_path / "app.py"
        app_py.write_text(files["app.py"])
        demo = runpy.run_path(str(app_py))["demo"]  # the app loads the model from the hub, as a space does
        assert demo.examples == ["I loved every minute of it.", "A dull film."]
    finally:
        srv.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=10)


def test_cove_demo_launches_the_app_and_prints_its_url(
    folders: dict[str, str], pipes: dict[str, Any]
) -> None:
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from gradio_client import Client

    from tests.server.conftest import _free_port

    port = _free_port()
    src = str(Path(cove.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src, "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [
        sys.executable,
        "-m",
        "cove.cli.main",
        "demo",
        folders["question-answering"],
        "--task",
        "question-answering",
    ]
    proc = subprocess.Popen([*cmd, "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(
            f"Serving the demo of {folders['question-answering']} on http://127.0.0.1:{port}/"
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # not listening yet
                assert time.monotonic() < deadline and proc.poll() is None, "cove demo did not serve"
                time.sleep(0.2)
        answer, score = client.predict("Where do I live?", "I live in London.", api_name="/predict")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    want = pipes["question-answering"](question="Where do I live?", context="I live in London.")
    assert answer == want["answer"] and score == pytest.approx(want["score"])


def test_cove_demo_says_which_tasks_have_a_demo(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from cove.cli.main import main

    assert main(["demo", str(tmp_path), "--task", "image-classification"]) == 1
    err = capsys.readouterr().err
    assert "no demo for the task 'image-classification'" in err and "question-answering" in err


def test_cove_demo_on_a_port_in_use_says_so(folders: dict[str, str], capsys) -> None:  # type: ignore[no-untyped-def]
    import socket

    from cove.cli.main import main

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main(["demo", folders["text-classification"], "--port", str(port)]) == 1
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
