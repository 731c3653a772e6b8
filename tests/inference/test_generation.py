"""Generation on a live `cove serve`: huggingface_hub's InferenceClient (text_generation with and without
stream and details, chat_completion with and without stream) and the real openai client (chat, completions)
answer what `cove.pipeline("text-generation")` answers greedily on the same tiny Llama; TGI's routes and
events; 16 concurrent chats of different lengths and sampling settings each equal to themselves alone, a
short one finishing before a long one that started first; a cancelled stream frees its row; 429 when the
rows and queue are taken; bad input."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import cove
from tests.inference.conftest import SMOLLM, causal_lm, import_bundled, push

pytestmark = pytest.mark.server

PROMPT = "Paris is the capital of"
CHAT = [{"role": "user", "content": "Where does Sarah live?"}]


@pytest.fixture(scope="module")
def live(serve, tmp_path_factory):
    hub = serve(inference_model="alice/llm")
    folder = causal_lm(tmp_path_factory.mktemp("gen-models"))
    push(hub, "alice/llm", folder, "text-generation")
    push(hub, "alice/llm-small-queue", folder, "text-generation")
    hub.folder = str(folder)  # type: ignore[attr-defined]
    import_bundled(hub)
    return hub


@pytest.fixture(scope="module")
def pipe(live):
    return cove.pipeline("text-generation", model=live.folder)


def greedy(pipe, prompt, n: int) -> str:
    out = pipe(prompt, do_sample=False, max_new_tokens=n, return_full_text=False)
    return out[0]["generated_text"]


def client(live, **kwargs):
    from huggingface_hub import InferenceClient

    return InferenceClient(model=f"{live.url}/models/alice/llm", **kwargs)


def openai_client(live, path: str = "/v1"):
    from openai import OpenAI

    return OpenAI(base_url=f"{live.url}{path}", api_key="EMPTY")


def batcher(live, repo: str = "alice/llm"):
    served = next(m for m in live.app.state.inference.loaded() if m.repo_id == repo)
    return served.generator.batcher


def wait_for(condition, what: str, seconds: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class DecodeGate:
    """Holds a loaded model's decode steps (one-token forwards; a prompt's prefill passes) until opened, so a
    request stays in its row for as long as the test needs."""

    def __init__(self, live, repo: str):
        self.model = next(m for m in live.app.state.inference.loaded() if m.repo_id == repo).model
        self.opened, self.entered = threading.Event(), threading.Event()
        original = self.model.forward

        def forward(*args, **kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is not None and ids.shape[-1] == 1:
                self.entered.set()
                assert self.opened.wait(120), "the gate was never opened"
            return original(*args, **kwargs)

        self.model.forward = forward

    def open(self) -> None:
        self.opened.set()
        del self.model.forward

    def __enter__(self) -> DecodeGate:
        return self

    def __exit__(self, *exc) -> None:
        if not self.opened.is_set():
            self.open()


def prompt_tokens_counted(live, repo: str) -> float:
    text = httpx.get(f"{live.url}/metrics").text
    for line in text.splitlines():
        if line.startswith("cove_inference_prompt_tokens_total{") and f'model="{repo}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_text_generation_matches_the_pipeline(live, pipe):
    want = greedy(pipe, PROMPT, 12)
    c = client(live)
    assert c.text_generation(PROMPT, max_new_tokens=12) == want
    assert "".join(c.text_generation(PROMPT, max_new_tokens=12, stream=True)) == want
    out = c.text_generation(PROMPT, max_new_tokens=12, details=True)
    assert out.generated_text == want
    assert out.details.finish_reason == "length" and out.details.generated_tokens == 12
    ids = pipe(PROMPT, do_sample=False, max_new_tokens=12, return_tensors=True)[0]["generated_token_ids"]
    assert [t.id for t in out.details.tokens] == ids[-12:]
    assert all(t.logprob <= 0 for t in out.details.tokens)
    events = list(c.text_generation(PROMPT, max_new_tokens=12, stream=True, details=True))
    assert [e.token.id for e in events] == ids[-12:]
    assert events[-1].details.finish_reason == "length" and events[-1].generated_text == want
    assert all(e.details is None for e in events[:-1])
    full = c.text_generation(PROMPT, max_new_tokens=12, return_full_text=True)
    assert full == PROMPT + want


def test_chat_completion_matches_the_pipeline(live, pipe):
    reply = pipe(CHAT, do_sample=False, max_new_tokens=10)[0]["generated_text"][-1]["content"]
    c = client(live)
    out = c.chat_completion(CHAT, max_tokens=10, temperature=0)
    assert out.choices[0].message.content == reply
    assert out.choices[0].finish_reason in ("length", "stop")
    assert out.usage.completion_tokens <= 10 and out.usage.prompt_tokens > 5
    chunks = list(c.chat_completion(CHAT, max_tokens=10, temperature=0, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == reply
    assert chunks[-1].choices[0].finish_reason == out.choices[0].finish_reason


def test_openai_chat_and_completions(live, pipe):
    reply = pipe(CHAT, do_sample=False, max_new_tokens=10)[0]["generated_text"][-1]["content"]
    oc = openai_client(live)
    out = oc.chat.completions.create(model="alice/llm", messages=CHAT, max_tokens=10, temperature=0)
    assert out.object == "chat.completion" and out.model == "alice/llm"
    assert out.choices[0].message.content == reply and out.choices[0].message.role == "assistant"
    stream = oc.chat.completions.create(
        model="alice/llm",
        messages=CHAT,
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == out.usage.completion_tokens
    scoped = openai_client(live, "/models/alice/llm/v1")
    again = scoped.chat.completions.create(model="whatever", messages=CHAT, max_tokens=10, temperature=0)
    assert again.choices[0].message.content == reply
    done = oc.completions.create(model="alice/llm", prompt=PROMPT, max_tokens=8, temperature=0)
    assert done.object == "text_completion" and done.choices[0].text == greedy(pipe, PROMPT, 8)
    echo = oc.completions.create(
        model="alice/llm", prompt=[PROMPT, "The quick brown fox"], max_tokens=6, temperature=0, echo=True
    )
    assert [c.text for c in echo.choices] == [
        PROMPT + greedy(pipe, PROMPT, 6),
        "The quick brown fox" + greedy(pipe, "The quick brown fox", 6),
    ]
    pieces = oc.completions.create(model="alice/llm", prompt=PROMPT, max_tokens=8, temperature=0, stream=True)
    assert "".join(p.choices[0].text for p in pieces) == greedy(pipe, PROMPT, 8)


def test_sampling_seed_n_and_stop(live, pipe):
    oc = openai_client(live)
    kwargs = dict(model="alice/llm", messages=CHAT, max_tokens=12, temperature=1.2, top_p=0.9, seed=7)
    first = oc.chat.completions.create(n=3, **kwargs)
    second = oc.chat.completions.create(n=3, **kwargs)
    texts = [c.message.content for c in first.choices]
    assert texts == [c.message.content for c in second.choices]  # seeded: reproducible
    assert len(set(texts)) > 1  # each choice its own seed
    assert [c.index for c in first.choices] == [0, 1, 2]
    full = greedy(pipe, PROMPT, 12)
    stop = full.strip().split()[1]
    out = oc.completions.create(model="alice/llm", prompt=PROMPT, max_tokens=12, temperature=0, stop=[stop])
    assert out.choices[0].finish_reason == "stop"
    assert stop not in out.choices[0].text and full.startswith(out.choices[0].text)


def test_tgi_routes_and_events(live, pipe):
    want = greedy(pipe, PROMPT, 6)
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 6, "details": True}}
    r = httpx.post(f"{live.url}/generate", json=body, timeout=60)  # COVE_INFERENCE_MODEL serves it
    assert r.status_code == 200 and r.json()["generated_text"] == want
    assert r.json()["details"]["finish_reason"] == "length"
    listed = httpx.post(f"{live.url}/models/alice/llm", json=body, timeout=60).json()
    assert isinstance(listed, list) and listed[0]["generated_text"] == want  # the HF API's list
    with httpx.stream("POST", f"{live.url}/models/alice/llm/generate_stream", json=body, timeout=60) as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in s.iter_lines() if line]
    assert all(line.startswith("data:") for line in lines) and "[DONE]" not in lines[-1]
    events = [json.loads(line[5:]) for line in lines]
    assert "".join(e["token"]["text"] for e in events) == want
    assert events[-1]["details"]["finish_reason"] == "length" and events[-1]["generated_text"] == want
    # the InferenceClient always sends "stream" and the parameters it was given, neutral ones accepted
    neutral = {
        "inputs": PROMPT,
        "stream": False,
        "parameters": {
            "max_new_tokens": 3,
            "watermark": False,
            "best_of": 1,
            "decoder_input_details": False,
            "top_n_tokens": 0,
        },
    }
    assert httpx.post(f"{live.url}/", json=neutral, timeout=60).status_code == 200
    info = httpx.get(f"{live.url}/info").json()
    assert info["model_id"] == "alice/llm" and info["max_total_tokens"] == 256


def test_concurrent_chats_each_equal_alone_and_short_ones_finish_first(live):
    oc = openai_client(live)
    settings = [
        dict(max_tokens=4 + 3 * (i % 5), temperature=0 if i % 2 == 0 else 0.8, seed=i, top_p=0.95)
        for i in range(16)
    ]
    messages = [
        [{"role": "user", "content": f"Tell me about city number {i} " + "and more " * (i % 4)}]
        for i in range(16)
    ]

    def ask(i: int) -> str:
        out = oc.chat.completions.create(model="alice/llm", messages=messages[i], **settings[i])
        return out.choices[0].message.content

    alone = [ask(i) for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(ask, range(16)))
    assert together == alone

    finished: list[str] = []

    def timed(name: str, max_tokens: int, started: threading.Event | None = None) -> None:
        stream = oc.chat.completions.create(
            model="alice/llm", messages=CHAT, max_tokens=max_tokens, temperature=0, stream=True
        )
        for chunk in stream:
            if (
                started is not None
                and not started.is_set()
                and chunk.choices
                and chunk.choices[0].delta.content
            ):
                started.set()
        finished.append(name)

    long_started = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        long = pool.submit(timed, "long", 200, long_started)
        assert long_started.wait(60)
        pool.submit(timed, "short", 2).result()
        long.result()
    assert finished == ["short", "long"]


def test_a_cancelled_stream_frees_its_row(live):
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 200}}
    assert (
        httpx.post(f"{live.url}/models/alice/llm/generate", json={"inputs": "warm"}, timeout=60).status_code
        == 200
    )
    counted = prompt_tokens_counted(live, "alice/llm")
    with DecodeGate(live, "alice/llm") as gate:
        with httpx.stream("POST", f"{live.url}/models/alice/llm/generate_stream", json=body, timeout=60) as s:
            assert next(line for line in s.iter_lines() if line).startswith("data:")  # the prefill's token
            assert gate.entered.wait(60)
            assert batcher(live).stats()["running"] == 1
        # the server sees the disconnect and ends the stream (its answer is counted) while the step waits
        wait_for(lambda: prompt_tokens_counted(live, "alice/llm") > counted, "the server to end the stream")
        gate.open()
    wait_for(lambda: batcher(live).stats()["running"] == 0, "the cancelled request's row to be freed")
    assert batcher(live).stats()["finished"].get("cancelled", 0) >= 1


def test_a_client_that_leaves_a_non_streamed_generation_frees_its_row(live):
    import socket

    host, port = live.url.split("//")[1].split(":")
    assert (
        httpx.post(f"{live.url}/models/alice/llm/generate", json={"inputs": "warm"}, timeout=60).status_code
        == 200
    )
    before = batcher(live).stats()
    counted = prompt_tokens_counted(live, "alice/llm")
    body = json.dumps({"inputs": PROMPT, "parameters": {"max_new_tokens": 200}}).encode()
    with DecodeGate(live, "alice/llm") as gate:
        sock = socket.create_connection((host, int(port)), timeout=60)
        sock.sendall(
            b"POST /models/alice/llm/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert gate.entered.wait(60)
        assert batcher(live).stats()["running"] == 1
        sock.close()  # gone before a single token of its answer
        # the server notices while the step still waits, and gives the request up
        wait_for(
            lambda: prompt_tokens_counted(live, "alice/llm") > counted, "the server to notice the disconnect"
        )
        gate.open()
    wait_for(lambda: batcher(live).stats()["running"] == 0, "the abandoned request's row to be freed")
    after = batcher(live).stats()
    assert after["finished"].get("cancelled", 0) == before["finished"].get("cancelled", 0) + 1
    # it left at the step after the gate: the prefill's token and that step's, not 200
    assert after["generated_tokens"] - before["generated_tokens"] <= 3


def test_a_full_generation_queue_answers_429(live):
    settings = live.app.state.hub.settings
    rows, queue = settings.inference_max_rows, settings.inference_max_queue
    settings.inference_max_rows, settings.inference_max_queue = 1, 0
    base = f"{live.url}/models/alice/llm-small-queue"
    try:  # this model loads now, with one row and no queue
        assert httpx.post(f"{base}/generate", json={"inputs": "warm"}, timeout=60).status_code == 200
    finally:
        settings.inference_max_rows, settings.inference_max_queue = rows, queue
    with DecodeGate(live, "alice/llm-small-queue") as gate, ThreadPoolExecutor(1) as pool:
        busy = pool.submit(
            httpx.post,
            f"{base}/generate",
            json={"inputs": PROMPT, "parameters": {"max_new_tokens": 5}},
            timeout=60,
        )
        assert gate.entered.wait(60)
        r = httpx.post(f"{base}/generate", json={"inputs": PROMPT}, timeout=60)
        assert r.status_code == 429 and r.json()["error_type"] == "overloaded", r.text
        assert int(r.headers["Retry-After"]) >= 1
        gate.open()
        assert busy.result().status_code == 200
    r = httpx.post(
        f"{base}/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 2}}, timeout=60
    )
    assert r.status_code == 200


def test_bad_generation_input(live):
    def post(path, body):
        return httpx.post(f"{live.url}{path}", json=body, timeout=60)

    def check(r, status, *words, error_type="validation"):
        assert r.status_code == status, r.text
        assert r.json()["error_type"] == error_type
        for word in words:
            assert word in r.json()["error"], r.json()["error"]

    check(
        post("/v1/chat/completions", {"model": "alice/llm", "messages": CHAT, "max_tokens": 10_000}),
        422,
        "context window of 256",
    )
    check(post("/v1/chat/completions", {"model": "alice/llm", "messages": CHAT, "bogus": 1}), 422, "'bogus'")
    check(post("/v1/chat/completions", {"model": "alice/llm", "messages": []}), 422, "messages")
    check(post("/v1/chat/completions", {"messages": CHAT}), 422, "model")
    check(
        post(
            "/v1/chat/completions", {"model": "alice/llm", "messages": CHAT, "tools": [{"type": "function"}]}
        ),
        422,
        "tools",
    )
    check(
        post("/v1/chat/completions", {"model": "alice/llm", "messages": CHAT, "temperature": "hot"}),
        422,
        "temperature",
    )
    check(post("/models/alice/llm", {"inputs": PROMPT, "parameters": {"watermark": True}}), 422, "watermark")
    check(
        post("/models/alice/llm", {"inputs": PROMPT, "parameters": {"max_new_tokens": 0}}),
        422,
        "max_new_tokens",
    )
    check(post("/models/alice/llm", {"inputs": PROMPT, "parameters": {"nope": 1}}), 422, "'nope'")
    check(post("/models/alice/llm", {"inputs": ""}), 422, "empty")
    check(post("/v1/completions", {"model": "alice/llm", "prompt": [1, 2, 3]}), 422, "token ids")
    check(
        post("/v1/chat/completions", {"model": "alice/missing", "messages": CHAT}),
        404,
        error_type="not_found",
    )
    from huggingface_hub.errors import ValidationError

    with pytest.raises(ValidationError):  # the client's own error class, from error_type
        client(live).text_generation(PROMPT, max_new_tokens=10_000)
    assert post("/generate", {"inputs": PROMPT, "parameters": {"max_new_tokens": 2}}).status_code == 200


def test_the_bundled_smollm2_chats_as_its_pipeline_does(live):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ref = cove.pipeline("text-generation", model=SMOLLM)
    reply = ref(messages, do_sample=False, max_new_tokens=12)[0]["generated_text"][-1]["content"]
    from huggingface_hub import InferenceClient

    out = InferenceClient(model=f"{live.url}/models/{SMOLLM}").chat_completion(
        messages, max_tokens=12, temperature=0
    )
    assert out.choices[0].message.content == reply
    streamed = openai_client(live).chat.completions.create(
        model=SMOLLM, messages=messages, max_tokens=12, temperature=0, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == reply
    text = httpx.get(f"{live.url}/metrics").text
    line = next(
        x for x in text.splitlines() if x.startswith("cove_inference_generated_tokens_total") and SMOLLM in x
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2 * out.usage.completion_tokens
