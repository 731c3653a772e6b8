"""The try-it widgets against the real inference API (`POST /models/{repo}`, cove.server.inference) of a
live hub holding tiny random models (tests/inference/conftest.py's builders, pushed with huggingface_hub):
each widget's request is answered 200 and the page shows exactly the answer the browser received. Plus
the model page itself: it embeds the widget and the widget computes there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the `playwright` Python package is not installed"
)
pytest.importorskip("cove.server.inference", reason="waits for the inference API (cove.server.inference)")
expect = sync_api.expect

from tests.inference.conftest import NER_LABELS, NLI_LABELS, causal_lm, encoder, push, t5  # noqa: E402
from tests.web.browser.conftest import open_try_it, sign_in  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# repo -> (task, builder); one checkpoint may serve several repos' tasks
MODELS: dict[str, tuple[str, Any]] = {
    "alice/sentiment": (
        "text-classification",
        lambda tmp: encoder(tmp, "seq", "seq", ["NEG", "POS"], "distilbert"),
    ),
    "alice/ner": ("token-classification", lambda tmp: encoder(tmp, "tok", "tok", NER_LABELS)),
    "alice/qa": ("question-answering", lambda tmp: encoder(tmp, "qa", "qa")),
    "alice/mlm": ("fill-mask", lambda tmp: encoder(tmp, "mlm", "mlm")),
    "alice/embed": ("feature-extraction", lambda tmp: encoder(tmp, "emb", "mlm")),
    "alice/similar": ("sentence-similarity", lambda tmp: encoder(tmp, "sim", "mlm")),
    "alice/nli": ("zero-shot-classification", lambda tmp: encoder(tmp, "nli", "seq", NLI_LABELS)),
    "alice/t5-sum": ("summarization", lambda tmp: t5(tmp, "t5-sum")),
    "alice/t5-de": ("translation_en_to_de", lambda tmp: t5(tmp, "t5-de")),
    "alice/lm": ("text-generation", lambda tmp: causal_lm(tmp, "lm")),
}


@pytest.fixture(scope="module")
def models(try_it_harness, tmp_path_factory):  # type: ignore[no-untyped-def]
    hub = try_it_harness
    tmp = tmp_path_factory.mktemp("widget-models")
    for repo_id, (task, build) in MODELS.items():
        push(hub, repo_id, Path(build(tmp)), task)
    push(hub, "alice/private-sentiment", tmp / "seq", "text-classification", private=True)
    return hub


def computed(page, widget) -> Any:  # type: ignore[no-untyped-def]
    """Click Compute; the JSON the inference API answered (status 200), once the widget shows it."""
    with page.expect_response(lambda r: "/models/" in r.url and r.request.method == "POST") as info:
        widget.get_by_role("button", name="Compute").click()
    response = info.value
    expect(widget).to_have_attribute("data-state", "done")
    assert response.status == 200, response.text()
    return response.json()


def scores(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{r['score']:.3f}" for r in rows]


def test_text_classification(models, page, shot):
    widget = open_try_it(page, "alice/sentiment", "text-classification")
    answer = computed(page, widget)
    expect(widget.locator(".try-it-bar-label")).to_have_text([r["label"] for r in answer[0]])
    expect(widget.locator(".try-it-bar-score")).to_have_text(scores(answer[0]))
    assert sorted(r["label"] for r in answer[0]) == ["NEG", "POS"]
    shot(page, "live-text-classification")


def test_token_classification(models, page):
    widget = open_try_it(page, "alice/ner", "token-classification")
    answer = computed(page, widget)
    assert answer, "a random NER head with scaled logits tags something"
    expect(widget.locator(".try-it-table td:first-child")).to_have_text([e["word"] for e in answer])
    text = widget.locator("textarea").input_value()
    marks = [text[e["start"] : e["end"]] + e["entity_group"] for e in answer]
    expect(widget.locator(".try-it-highlighted .try-it-entity")).to_have_text(marks)


def test_question_answering(models, page):
    widget = open_try_it(page, "alice/qa", "question-answering")
    answer = computed(page, widget)
    expect(widget.locator(".try-it-answer-text")).to_have_text(answer["answer"])
    expect(widget.locator(".try-it-answer .try-it-entity")).to_have_text(answer["answer"])


def test_fill_mask(models, page):
    widget = open_try_it(page, "alice/mlm", "fill-mask")
    answer = computed(page, widget)
    assert len(answer) == 5
    expect(widget.locator(".try-it-bar-label")).to_have_text([r["token_str"] for r in answer])
    expect(widget.locator(".try-it-bar-score")).to_have_text(scores(answer))


def test_feature_extraction(models, page):
    widget = open_try_it(page, "alice/embed", "feature-extraction")
    answer = computed(page, widget)
    shape = []
    cursor = answer
    while isinstance(cursor, list):
        shape.append(len(cursor))
        cursor = cursor[0]
    assert shape[-1] == 32  # the tiny BERT's hidden size
    expect(widget.locator(".try-it-shape")).to_have_text(f"[{', '.join(map(str, shape))}]")


def test_sentence_similarity(models, page):
    widget = open_try_it(page, "alice/similar", "sentence-similarity")
    answer = computed(page, widget)
    assert len(answer) == 3
    expect(widget.locator(".try-it-bar-score")).to_have_text([f"{x:.3f}" for x in answer])


def test_zero_shot_classification(models, page):
    widget = open_try_it(page, "alice/nli", "zero-shot-classification")
    answer = computed(page, widget)
    assert sorted(r["label"] for r in answer) == sorted(["urgent", "not urgent", "phone", "tablet"])
    expect(widget.locator(".try-it-bar-label")).to_have_text([r["label"] for r in answer])


@pytest.mark.parametrize(
    ("repo", "task", "key"),
    [
        ("alice/t5-sum", "summarization", "summary_text"),
        ("alice/t5-de", "translation_en_to_de", "translation_text"),
    ],
)
def test_seq2seq(models, page, repo, task, key):
    widget = open_try_it(page, repo, task, parameters={"max_new_tokens": 8})
    answer = computed(page, widget)
    expect(widget.locator(".try-it-text")).to_have_text(answer[0][key])


def _generation_served(hub) -> None:  # type: ignore[no-untyped-def]
    import httpx

    r = httpx.post(
        f"{hub.url}/models/alice/lm", json={"inputs": "x", "parameters": {"max_new_tokens": 1}}, timeout=120
    )
    if r.status_code == 400 and "not served yet" in r.text:
        pytest.skip("waits for text generation in the inference API")


def test_text_generation_streams(models, page, shot):
    _generation_served(models)
    widget = open_try_it(page, "alice/lm", "text-generation", parameters={"do_sample": False})
    widget.get_by_label("Max new tokens").fill("6")
    widget.get_by_role("button", name="Compute").click()
    expect(widget).to_have_attribute("data-state", "done")
    assert int(widget.locator(".try-it-output").get_attribute("data-events") or 0) >= 2
    assert widget.locator(".try-it-completion").text_content()
    shot(page, "live-text-generation")


def test_chat_streams(models, page, shot):
    _generation_served(models)
    widget = open_try_it(page, "alice/lm", "text-generation", chat="1", parameters={"temperature": 0})
    widget.get_by_role("button", name="Send").click()
    expect(widget).to_have_attribute("data-state", "done")
    assert int(widget.locator(".try-it-output").get_attribute("data-events") or 0) >= 2
    assert widget.locator(".try-it-message.assistant .try-it-message-text").text_content()
    shot(page, "live-chat")


def test_the_model_page_embeds_a_working_widget(models, page, shot):
    page.goto("/alice/sentiment")
    widget = page.locator("#try-it")
    expect(widget).to_have_attribute("data-task", "text-classification")
    if page.locator('script[src="/static/widgets.js"]').count() == 0:
        pytest.skip(
            "waits for the model page to include partials/try_it.html (it renders #try-it without the script)"
        )
    expect(widget).to_have_attribute("data-ready", "true")
    answer = computed(page, widget)
    expect(widget.locator(".try-it-bar-label")).to_have_text([r["label"] for r in answer[0]])
    shot(page, "model-page-with-widget")


def test_a_private_model_answers_its_signed_in_owner_only(models, page, context, shot):
    """The widget's fetch carries the session cookie and the page's CSRF token: the owner's browser may run
    a private model, a signed-out one gets the API's 404 in the widget."""
    widget = open_try_it(page, "alice/private-sentiment", "text-classification")
    widget.get_by_role("button", name="Compute").click()
    expect(widget.get_by_role("alert")).to_contain_text("not found")
    sign_in(page, models, "alice")
    widget = open_try_it(page, "alice/private-sentiment", "text-classification")
    status = page.evaluate(
        """() => fetch("/models/alice/private-sentiment", {method: "POST", credentials: "same-origin",
             headers: {"Content-Type": "application/json",
                       "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content},
             body: JSON.stringify({inputs: "probe"})}).then(r => r.status)"""
    )
    if status == 404:
        pytest.fail("the inference API refused the signed-in owner (session cookie + X-CSRF-Token)")
    answer = computed(page, widget)
    expect(widget.locator(".try-it-bar-label")).to_have_text([r["label"] for r in answer[0]])
    shot(page, "live-private-model")
