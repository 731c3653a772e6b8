"""The try-it widgets (static/widgets.js) in Chromium, against a fake inference API added to the live hub by
this test only: each task's form sends the HF Inference API's payload and renders its answer; streams render
token by token (TGI events and OpenAI chunks through one reader); errors, the loading state, the card's
examples, the CSRF header, and server or card text that must stay text.

tests/web/browser/test_widgets_live.py runs the same widgets against the real inference API and models."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from cove.server.web.render import environment
from tests.web.browser.conftest import HARNESS_CSRF as CSRF
from tests.web.browser.conftest import install_first, open_try_it

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the `playwright` Python package is not installed"
)
expect = sync_api.expect

pytestmark = pytest.mark.browser

SEEN: dict[str, list[dict[str, Any]]] = {}  # repo name -> requests the fake API received
GATES: dict[str, threading.Event] = {}  # repo name -> released when the test has seen the first token


def _stream(events: list[str], gate: threading.Event | None, hold_after: int = 0):  # type: ignore[no-untyped-def]
    async def body():  # type: ignore[no-untyped-def]
        for i, event in enumerate(events):
            yield f"data: {event}\n\n".encode()
            if i == hold_after and gate is not None:
                # hold the rest back until the browser has shown the first token: proof it renders as it comes
                await asyncio.to_thread(gate.wait, 60)

    return StreamingResponse(body(), media_type="text/event-stream")


def tgi_events(tokens: list[str], *, special_last: bool = True) -> list[str]:
    events = [json.dumps({"token": {"id": i, "text": t, "special": False}}) for i, t in enumerate(tokens)]
    if special_last:
        events.append(json.dumps({"token": {"id": 99, "text": "</s>", "special": True}}))
    events.append(
        json.dumps({"token": {"id": 100, "text": "", "special": True}, "generated_text": "".join(tokens)})
    )
    return events


def chat_events(tokens: list[str]) -> list[str]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "fake/chat"}
    events = [json.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    events += [json.dumps({**base, "choices": [{"index": 0, "delta": {"content": t}}]}) for t in tokens]
    events.append(json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    return [*events, "[DONE]"]


XSS = '<img src=x onerror="window.__pwned=1">'
CANNED: dict[str, Any] = {
    "text-classification": [[{"label": "POSITIVE", "score": 0.875}, {"label": "NEGATIVE", "score": 0.125}]],
    "token-classification": [
        {"entity_group": "PER", "score": 0.99, "word": "Sarah", "start": 11, "end": 16},
        {"entity_group": "LOC", "score": 0.97, "word": "London", "start": 31, "end": 37},
        {"entity_group": "ORG", "score": 0.9, "word": "Acme Corporation", "start": 51, "end": 67},
    ],
    "question-answering": {"answer": "London", "score": 0.75, "start": 31, "end": 37},
    "fill-mask": [
        {"score": 0.6, "token": 3007, "token_str": "capital", "sequence": "paris is the capital of france."},
        {"score": 0.2, "token": 2803, "token_str": "center", "sequence": "paris is the center of france."},
    ],
    "feature-extraction": [[[0.5, -0.25, 0.125, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]]],
    "sentence-similarity": [0.8125, 0.25, -0.125],
    "zero-shot-classification": {
        "sequence": "x",
        "labels": ["urgent", "phone", "not urgent", "tablet"],
        "scores": [0.5, 0.25, 0.125, 0.125],
    },
    "zero-shot-list": [{"label": "phone", "score": 0.625}, {"label": "urgent", "score": 0.375}],
    "summarization": [{"summary_text": "The tower is 324 metres tall."}],
    "translation": [{"translation_text": "Mein Name ist Sarah."}],
    "text2text-generation": [{"generated_text": "a lazy dog"}],
    "xss": [[{"label": XSS, "score": 0.5}, {"label": "<script>window.__pwned=2</script>", "score": 0.5}]],
}


@pytest.fixture(scope="module")
def site(live, try_it_harness):  # type: ignore[no-untyped-def]
    """The live hub with the widget harness page (conftest.py) and, in front of every other route, a fake
    inference API under /models/fake/... answering canned results and recording what it was sent."""
    router = APIRouter()

    def record(name: str, request: Request, body: Any) -> None:
        SEEN.setdefault(name, []).append(
            {"body": body, "headers": dict(request.headers), "url": str(request.url)}
        )

    @router.post("/models/fake/{name}")
    async def fake_inference(request: Request, name: str):  # type: ignore[no-untyped-def]
        body = await request.json()
        record(name, request, body)
        if name == "invalid":
            return JSONResponse(
                {"error": "Input is too long: 600 tokens, the model takes 512.", "error_type": "validation"},
                422,
            )
        if name == "down":
            return PlainTextResponse("upstream is down", 503)
        if name == "text-generation":
            return _stream(tgi_events(["Once", " upon", " a", " time"]), GATES.get(name))
        if name == "gen-fails":
            events = [
                json.dumps({"token": {"id": 1, "text": "Half", "special": False}}),
                json.dumps({"error": "CUDA out of patience", "error_type": "generation"}),
            ]
            return _stream(events, None)
        if name == "gen-json":  # a server that ignores stream: true
            return JSONResponse([{"generated_text": body["inputs"] + " and then some"}])
        return JSONResponse(CANNED[name])

    @router.post("/models/fake/{name}/v1/chat/completions")
    async def fake_chat(request: Request, name: str):  # type: ignore[no-untyped-def]
        body = await request.json()
        record(name, request, body)
        turn = len(SEEN[name])
        # held after "Hello" (the first chunk only names the role)
        return _stream(chat_events(["Hello", ",", " I am", f" turn {turn}."]), GATES.get(name), hold_after=1)

    install_first(live, router)
    return live


def open_widget(page, task: str, repo: str | None = None, **query: Any):  # type: ignore[no-untyped-def]
    return open_try_it(page, f"fake/{repo or task}", task, **query)


def compute(page, widget):  # type: ignore[no-untyped-def]
    widget.get_by_role("button", name="Compute").click()
    expect(widget).to_have_attribute("data-state", "done")


def last_request(name: str) -> dict[str, Any]:
    return SEEN[name][-1]


def bar_rows(widget) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    labels = widget.locator(".try-it-bar-label").all_text_contents()
    scores = widget.locator(".try-it-bar-score").all_text_contents()
    return list(zip(labels, scores, strict=True))


def test_text_classification_shows_label_bars(site, page, shot):
    widget = open_widget(page, "text-classification")
    compute(page, widget)
    assert bar_rows(widget) == [("POSITIVE", "0.875"), ("NEGATIVE", "0.125")]
    widths = widget.locator(".try-it-bar-fill").evaluate_all("els => els.map(e => parseFloat(e.style.width))")
    assert widths == [87.5, 12.5]
    sent = last_request("text-classification")
    assert sent["body"] == {
        "inputs": "I like you. I love you.",
        "parameters": {"top_k": 5, "truncation": True},
    }
    assert sent["headers"]["content-type"] == "application/json"
    expect(widget.locator(".try-it-status")).to_contain_text("Computed in")
    shot(page, "widget-text-classification")


def test_token_classification_highlights_entities_in_the_text(site, page, shot):
    widget = open_widget(page, "token-classification")
    compute(page, widget)
    marks = widget.locator(".try-it-highlighted .try-it-entity")
    expect(marks).to_have_text(["SarahPER", "LondonLOC", "Acme CorporationORG"])
    expect(widget.locator(".try-it-highlighted")).to_have_text(
        "My name is SarahPER and I live in LondonLOC, working for Acme CorporationORG."
    )
    expect(widget.locator(".try-it-table td:first-child")).to_have_text(
        ["Sarah", "London", "Acme Corporation"]
    )
    assert last_request("token-classification")["body"]["parameters"] == {"aggregation_strategy": "simple"}
    shot(page, "widget-token-classification")


def test_question_answering_highlights_the_answer_in_the_context(site, page, shot):
    widget = open_widget(page, "question-answering")
    compute(page, widget)
    expect(widget.locator(".try-it-answer-text")).to_have_text("London")
    expect(widget.locator(".try-it-answer .try-it-entity")).to_have_text("London")
    expect(widget.locator(".try-it-answer .try-it-bar-score")).to_have_text("0.750")
    assert last_request("question-answering")["body"]["inputs"] == {
        "question": "Where do I live?",
        "context": "My name is Sarah and I live in London.",
    }
    shot(page, "widget-question-answering")


def test_fill_mask_ranks_candidates_and_uses_the_models_mask_token(site, page, shot):
    widget = open_widget(page, "fill-mask", mask_token="<mask>")
    expect(widget.locator("textarea")).to_have_value("Paris is the <mask> of France.")
    compute(page, widget)
    assert bar_rows(widget) == [("capital", "0.600"), ("center", "0.200")]
    assert last_request("fill-mask")["body"]["inputs"] == "Paris is the <mask> of France."
    shot(page, "widget-fill-mask")


def test_feature_extraction_shows_the_shape_and_first_values(site, page, shot):
    widget = open_widget(page, "feature-extraction")
    compute(page, widget)
    expect(widget.locator(".try-it-shape")).to_have_text("[1, 3, 4]")
    expect(widget.locator(".try-it-values")).to_have_text("[0.5000, -0.2500, 0.1250, 1.0000]")
    shot(page, "widget-feature-extraction")


def test_sentence_similarity_sends_source_and_sentences(site, page, shot):
    widget = open_widget(page, "sentence-similarity")
    widget.locator("textarea").fill("Someone plays an instrument.\n\n  A woman reads a book.  \nStocks fell.")
    compute(page, widget)
    assert bar_rows(widget) == [
        ("Someone plays an instrument.", "0.813"),
        ("A woman reads a book.", "0.250"),
        ("Stocks fell.", "-0.125"),
    ]
    # a negative cosine draws an empty bar, not a negative width
    widths = widget.locator(".try-it-bar-fill").evaluate_all("els => els.map(e => parseFloat(e.style.width))")
    assert widths == [81.3, 25.0, 0.0]
    assert last_request("sentence-similarity")["body"]["inputs"] == {
        "source_sentence": "A man is playing a guitar.",
        "sentences": ["Someone plays an instrument.", "A woman reads a book.", "Stocks fell."],
    }
    shot(page, "widget-sentence-similarity")


@pytest.mark.parametrize("shape", ["zero-shot-classification", "zero-shot-list"])
def test_zero_shot_sends_candidate_labels_and_reads_both_answer_shapes(site, page, shot, shape):
    widget = open_widget(page, "zero-shot-classification", repo=shape)
    widget.get_by_label("Several labels can be true").check()
    compute(page, widget)
    expected = {
        "zero-shot-classification": [
            ("urgent", "0.500"),
            ("phone", "0.250"),
            ("not urgent", "0.125"),
            ("tablet", "0.125"),
        ],
        "zero-shot-list": [("phone", "0.625"), ("urgent", "0.375")],
    }[shape]
    assert bar_rows(widget) == expected
    assert last_request(shape)["body"]["parameters"] == {
        "candidate_labels": ["urgent", "not urgent", "phone", "tablet"],
        "multi_label": True,
    }
    if shape == "zero-shot-classification":
        shot(page, "widget-zero-shot-classification")


@pytest.mark.parametrize(
    ("task", "text"),
    [
        ("summarization", "The tower is 324 metres tall."),
        ("translation", "Mein Name ist Sarah."),
        ("text2text-generation", "a lazy dog"),
    ],
)
def test_seq2seq_tasks_show_the_generated_text(site, page, shot, task, text):
    widget = open_widget(page, task)
    compute(page, widget)
    expect(widget.locator(".try-it-text")).to_have_text(text)
    shot(page, f"widget-{task}")


def test_translation_pairs_get_the_translation_widget(site, page):
    widget = open_widget(page, "translation_en_to_de", repo="translation")
    compute(page, widget)
    expect(widget.locator(".try-it-text")).to_have_text("Mein Name ist Sarah.")
    assert last_request("translation")["body"]["parameters"] == {
        "truncation": True,
        "src_lang": "en",
        "tgt_lang": "de",
    }


def test_text_generation_streams_token_by_token(site, page, shot):
    GATES["text-generation"] = gate = threading.Event()
    widget = open_widget(page, "text-generation")
    widget.get_by_label("Max new tokens").fill("7")
    widget.get_by_role("button", name="Compute").click()
    completion = widget.locator(".try-it-completion")
    # the first token is on screen while the server still holds the rest: rendered as it came
    expect(completion).to_have_text("Once")
    expect(widget).to_have_attribute("data-state", "loading")
    expect(widget).to_have_attribute("aria-busy", "true")
    expect(widget.locator(".try-it-compute")).to_be_disabled()
    expect(widget.locator(".try-it-compute")).to_have_text("Computing…")
    gate.set()
    expect(widget).to_have_attribute("data-state", "done")
    expect(completion).to_have_text("Once upon a time")  # the special tokens are not shown
    expect(widget.locator(".try-it-prompt")).to_have_text("Once upon a time,")
    expect(widget.locator(".try-it-compute")).to_be_enabled()
    assert widget.locator(".try-it-output").get_attribute("data-events") == "6"
    assert last_request("text-generation")["body"] == {
        "inputs": "Once upon a time,",
        "parameters": {"max_new_tokens": 7},
        "stream": True,
    }
    shot(page, "widget-text-generation")


def test_a_stream_can_be_stopped(site, page):
    GATES["text-generation"] = gate = threading.Event()
    try:
        widget = open_widget(page, "text-generation")
        widget.get_by_role("button", name="Compute").click()
        expect(widget.locator(".try-it-completion")).to_have_text("Once")
        widget.get_by_role("button", name="Stop").click()
        expect(widget.locator(".try-it-status")).to_have_text("Stopped.")
        expect(widget).to_have_attribute("data-state", "done")
        expect(widget.locator(".try-it-completion")).to_have_text("Once")
        expect(widget.get_by_role("button", name="Stop")).to_be_hidden()
    finally:
        gate.set()


def test_a_server_that_answers_generation_in_one_piece_is_read_too(site, page):
    widget = open_widget(page, "text-generation", repo="gen-json")
    compute(page, widget)
    expect(widget.locator(".try-it-completion")).to_have_text(" and then some")


def test_chat_streams_the_reply_and_keeps_the_conversation(site, page, shot):
    GATES["chat"] = gate = threading.Event()
    examples = [
        {
            "example_title": "Greeting",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}],
        },
        {"example_title": "Other", "messages": [{"role": "user", "content": "Who are you?"}]},
    ]
    widget = open_widget(
        page, "text-generation", repo="chat", chat="1", examples=examples, parameters={"temperature": 0}
    )
    message = widget.get_by_label("Message")
    expect(message).to_have_value("Hi!")
    expect(widget.locator(".try-it-message.system")).to_have_text("systemBe brief.")
    widget.get_by_role("button", name="Send").click()
    reply = widget.locator(".try-it-message.assistant .try-it-message-text")
    expect(reply).to_have_text("Hello")
    expect(widget).to_have_attribute("aria-busy", "true")
    gate.set()
    expect(widget).to_have_attribute("data-state", "done")
    expect(reply).to_have_text("Hello, I am turn 1.")
    first = last_request("chat")
    assert first["body"] == {
        "model": "fake/chat",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}],
        "stream": True,
        "max_tokens": 32,
        "temperature": 0,
    }
    assert first["headers"]["x-csrf-token"] == CSRF
    message.fill("And then?")
    message.press("Enter")
    expect(reply).to_have_text(["Hello, I am turn 1.", "Hello, I am turn 2."])
    expect(widget).to_have_attribute("data-state", "done")
    assert last_request("chat")["body"]["messages"][2:] == [
        {"role": "assistant", "content": "Hello, I am turn 1."},
        {"role": "user", "content": "And then?"},
    ]
    shot(page, "widget-chat")
    widget.locator(".try-it-examples").select_option(label="Other")
    expect(widget.locator(".try-it-message")).to_have_count(0)
    expect(message).to_have_value("Who are you?")


def test_api_errors_are_shown_in_the_widget(site, page, shot):
    widget = open_widget(page, "text-classification", repo="invalid")
    widget.get_by_role("button", name="Compute").click()
    expect(widget).to_have_attribute("data-state", "error")
    expect(widget.get_by_role("alert")).to_have_text(
        "Error validation: Input is too long: 600 tokens, the model takes 512."
    )
    expect(widget.locator(".try-it-compute")).to_be_enabled()
    shot(page, "widget-error")
    # a non-JSON failure says its status and body
    widget = open_widget(page, "text-classification", repo="down")
    widget.get_by_role("button", name="Compute").click()
    expect(widget.get_by_role("alert")).to_have_text("Error HTTP 503: upstream is down")


def test_an_error_event_in_a_stream_is_shown_after_the_tokens_so_far(site, page):
    widget = open_widget(page, "text-generation", repo="gen-fails")
    widget.get_by_role("button", name="Compute").click()
    expect(widget).to_have_attribute("data-state", "error")
    expect(widget.locator(".try-it-completion")).to_have_text("Half")
    expect(widget.get_by_role("alert")).to_have_text("Error generation: CUDA out of patience")


def test_card_examples_fill_the_form_and_the_chooser_switches_them(site, page):
    examples = [
        {"example_title": "Paris", "text": "Where is Paris?", "context": "Paris is in France."},
        {"example_title": "Sarah", "text": "Who lives in London?", "context": "Sarah lives in London."},
    ]
    widget = open_widget(page, "question-answering", examples=examples)
    expect(widget.get_by_label("Question")).to_have_value("Where is Paris?")
    expect(widget.get_by_label("Context")).to_have_value("Paris is in France.")
    widget.locator(".try-it-examples").select_option(label="Sarah")
    expect(widget.get_by_label("Context")).to_have_value("Sarah lives in London.")
    compute(page, widget)
    assert last_request("question-answering")["body"]["inputs"] == {
        "question": "Who lives in London?",
        "context": "Sarah lives in London.",
    }


def test_requests_carry_the_session_cookie_and_the_csrf_token(site, page, context):
    context.add_cookies([{"name": "cove_probe", "value": "yes", "url": site.url}])
    widget = open_widget(page, "fill-mask")
    compute(page, widget)
    headers = last_request("fill-mask")["headers"]
    assert headers["x-csrf-token"] == CSRF
    assert "cove_probe=yes" in headers["cookie"]


def test_server_and_card_text_stays_text(site, page):
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    examples = [{"text": "<script>window.__pwned=3</script>", "example_title": XSS}, {"text": "two"}]
    widget = open_widget(page, "text-classification", repo="xss", examples=examples)
    expect(widget.locator("textarea")).to_have_value("<script>window.__pwned=3</script>")
    expect(widget.locator(".try-it-examples option").first).to_have_text(XSS[:60])
    compute(page, widget)
    expect(widget.locator(".try-it-bar-label")).to_have_text([XSS, "<script>window.__pwned=2</script>"])
    assert widget.locator("img, script").count() == 0
    assert page.evaluate("window.__pwned") == 0
    assert dialogs == []


def test_a_task_without_a_widget_renders_nothing(site, page):
    page.goto("/__try-it/fake/whatever?task=image-classification")
    expect(page.locator("h1")).to_have_text("fake/whatever")
    assert page.locator("#try-it").count() == 0
    assert page.locator('script[src="/static/widgets.js"]').count() == 0


def test_the_partial_and_the_script_agree_on_the_tasks(site, page):
    open_widget(page, "fill-mask")
    in_script = page.evaluate("import('/static/widgets.js').then(m => m.SUPPORTED_TASKS)")
    in_template = environment().get_template("partials/try_it.html").module.WIDGET_TASKS  # type: ignore[attr-defined]
    assert sorted(in_script) == sorted(in_template)
