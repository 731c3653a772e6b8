"""The serving engine on a live `cove serve`: dynamic batching (64 concurrent embedding requests, each
what it is alone), TEI's /embed and the real openai client's embeddings and model list, private models,
the bounded queue (429), eviction that lets running requests finish, once-only loads, a hub that stays
responsive while a model computes, and /metrics.

Where a test needs a model to be busy, it holds the model's forward on an event (the server runs in this
process), so nothing depends on timing."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

import cove
from tests.inference.conftest import MINILM, encoder, import_bundled, push

pytestmark = pytest.mark.server

SENTENCES = [
    f"Sentence number {i} is about {'cats ' * (i % 7)}and the weather in town {i}." for i in range(64)
]


@pytest.fixture(scope="module")
def live(serve, tmp_path_factory):
    # a long batching wait, so concurrent requests surely meet in one batch
    hub = serve(inference_embed_model=MINILM, inference_model=MINILM, max_batch_wait_ms=150)
    tmp = tmp_path_factory.mktemp("serving-models")
    hub.folders = {}  # type: ignore[attr-defined]
    for repo, name in [
        ("alice/cls", "cls"),
        ("alice/evict-a", "a"),
        ("alice/evict-b", "b"),
        ("alice/once", "once"),
    ]:
        hub.folders[repo] = str(encoder(tmp, name, "seq", ["NO", "YES"]))  # type: ignore[attr-defined]
        push(hub, repo, hub.folders[repo], "text-classification")  # type: ignore[attr-defined]
    hub.folders["alice/secret"] = str(encoder(tmp, "secret", "seq", ["NO", "YES"]))  # type: ignore[attr-defined]
    push(hub, "alice/secret", hub.folders["alice/secret"], "text-classification", private=True)  # type: ignore[attr-defined]
    push(hub, "acme/team", encoder(tmp, "team", "seq", ["NO", "YES"]), "text-classification", private=True)
    import_bundled(hub)
    return hub


def engine(live):
    return live.app.state.inference


def served(live, repo: str):
    return next(m for m in engine(live).loaded() if m.repo_id == repo)


def post(live, path: str, token: str | None = None, **kwargs) -> httpx.Response:
    headers = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{live.url}{path}", headers=headers, timeout=120, **kwargs)


def wait_for(condition, what: str, seconds: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Gate:
    """Holds a pipeline's forward until opened: the model is busy for as long as the test wants."""

    def __init__(self, pipe):
        self.pipe, self.opened, self.entered = pipe, threading.Event(), threading.Event()
        original = pipe.forward

        def forward(batch, params):
            self.entered.set()
            assert self.opened.wait(120), "the gate was never opened"
            return original(batch, params)

        pipe.forward = forward

    def open(self) -> None:
        self.opened.set()
        del self.pipe.forward  # the class's own forward again


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} in /metrics")


def test_64_concurrent_embedding_requests_each_equal_alone(live):
    st = cove.pipeline("sentence-similarity", model=MINILM)
    want = st.encode(SENTENCES).numpy()
    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(lambda s: post(live, "/embed", json={"inputs": s}), SENTENCES))
    assert [a.status_code for a in answers] == [200] * 64
    got = np.array([a.json()[0] for a in answers])
    np.testing.assert_allclose(got, want, atol=1e-5)
    text = httpx.get(f"{live.url}/metrics").text
    forwards = metric(text, "cove_inference_batch_size_count", model=MINILM)
    assert forwards < 64, "concurrent requests should share forward passes"
    assert metric(text, "cove_inference_requests_total", model=MINILM, status="200") >= 64


def test_tei_embed_and_info(live):
    st = cove.pipeline("sentence-similarity", model=MINILM)
    r = post(live, "/embed", json={"inputs": ["one", "two"], "normalize": True})
    np.testing.assert_allclose(np.array(r.json()), st.encode(["one", "two"]).numpy(), atol=1e-5)
    raw = np.array(post(live, f"/models/{MINILM}/embed", json={"inputs": "one", "normalize": False}).json())
    assert raw.shape == (1, 384) and abs(np.linalg.norm(raw[0]) - 1) > 1e-3
    long = "word " * 600
    r = post(live, "/embed", json={"inputs": long})
    assert r.status_code == 422 and "512" in r.json()["error"]
    assert post(live, "/embed", json={"inputs": long, "truncate": True}).status_code == 200
    r = post(live, "/embed", json={"inputs": "x", "bogus": 1})
    assert r.status_code == 422 and "'bogus'" in r.json()["error"]
    info = httpx.get(f"{live.url}/info").json()
    assert info["model_id"] == MINILM and info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert httpx.get(f"{live.url}/health").status_code == 200


def test_openai_embeddings_and_models(live):
    from openai import OpenAI

    st = cove.pipeline("sentence-similarity", model=MINILM)
    client = OpenAI(base_url=f"{live.url}/v1", api_key="EMPTY")  # a non-Cove key: anonymous
    out = client.embeddings.create(model=MINILM, input=["first text", "second text"])  # base64 by default
    assert [d.index for d in out.data] == [0, 1]
    np.testing.assert_allclose(
        np.array([d.embedding for d in out.data]), st.encode(["first text", "second text"]).numpy(), atol=1e-5
    )
    assert out.usage.prompt_tokens == out.usage.total_tokens > 4
    floats = client.embeddings.create(model=MINILM, input="one", encoding_format="float")
    np.testing.assert_allclose(floats.data[0].embedding, st.encode("one").numpy(), atol=1e-5)
    scoped = OpenAI(base_url=f"{live.url}/models/{MINILM}/v1", api_key="EMPTY")
    same = scoped.embeddings.create(model="ignored", input="one", encoding_format="float")
    assert same.data[0].embedding == floats.data[0].embedding
    ids = [m.id for m in client.models.list()]
    assert MINILM in ids and "alice/cls" in ids and "alice/secret" not in ids
    mine = OpenAI(base_url=f"{live.url}/v1", api_key=live.tokens["alice"])
    assert "alice/secret" in [m.id for m in mine.models.list()]
    import openai

    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model=MINILM, input="x", dimensions=12)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="alice/nope", input="x")


def test_private_models_are_404_unless_readable(live):
    body = {"inputs": "hello"}
    for token in (None, live.tokens["bob"], "hf_someHuggingFaceToken"):
        r = post(live, "/models/alice/secret", token, json=body)
        assert r.status_code == 404 and r.headers["X-Error-Code"] == "RepoNotFound", r.text
        assert r.json()["error_type"] == "not_found"
    r = post(live, "/models/alice/secret", live.tokens["alice"], json=body)
    assert r.status_code == 200
    want = cove.pipeline("text-classification", model=live.folders["alice/secret"])("hello", top_k=None)
    assert [x["label"] for x in r.json()[0]] == [w["label"] for w in want]
    assert post(live, "/models/acme/team", live.tokens["bob"], json=body).status_code == 200  # a read member
    assert post(live, "/models/alice/secret", "cove_not-a-real-token", json=body).status_code == 401
    settings = live.app.state.hub.settings
    settings.inference_require_token = True
    try:
        r = post(live, "/models/alice/cls", json=body)
        assert r.status_code == 401 and "token" in r.json()["error"]
        assert post(live, "/models/alice/cls", live.tokens["bob"], json=body).status_code == 200
    finally:
        settings.inference_require_token = False


def test_a_full_queue_answers_429_with_retry_after(live):
    assert post(live, "/models/alice/cls", json={"inputs": "warm up"}).status_code == 200
    model = served(live, "alice/cls")
    settings = live.app.state.hub.settings
    gate = Gate(model.pipelines["text-classification"])
    settings.inference_max_queue = 3
    try:
        with ThreadPoolExecutor(3) as pool:
            first = pool.submit(post, live, "/models/alice/cls", json={"inputs": "first"})
            assert gate.entered.wait(60)
            rest = [pool.submit(post, live, "/models/alice/cls", json={"inputs": f"r{i}"}) for i in range(2)]
            wait_for(lambda: model.pending == 3, "three requests held by the model")
            full = post(live, "/models/alice/cls", json={"inputs": "one too many"})
            assert full.status_code == 429, full.text
            assert full.json()["error_type"] == "overloaded"
            assert int(full.headers["Retry-After"]) >= 1
            gate.open()
            assert [f.result().status_code for f in [first, *rest]] == [200, 200, 200]
    finally:
        settings.inference_max_queue = 256
        if not gate.opened.is_set():
            gate.open()
    assert post(live, "/models/alice/cls", json={"inputs": "after"}).status_code == 200


def test_the_hub_answers_while_a_model_computes(live):
    assert post(live, "/models/alice/cls", json={"inputs": "warm up"}).status_code == 200
    gate = Gate(served(live, "alice/cls").pipelines["text-classification"])
    try:
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(post, live, "/models/alice/cls", json={"inputs": "slow"})
            assert gate.entered.wait(60)
            assert httpx.get(f"{live.url}/api/models", timeout=30).status_code == 200
            assert post(live, "/embed", json={"inputs": "another model"}).status_code == 200
            assert not busy.done()
            gate.open()
            assert busy.result().status_code == 200
    finally:
        if not gate.opened.is_set():
            gate.open()


def test_a_second_worker_answers_while_the_first_is_busy(live, tmp_path):
    settings = live.app.state.hub.settings
    push(live, "alice/two-workers", encoder(tmp_path, "two", "seq", ["NO", "YES"]), "text-classification")
    settings.inference_workers = 2
    try:  # this model loads now, with two worker threads
        assert post(live, "/models/alice/two-workers", json={"inputs": "warm up"}).status_code == 200
    finally:
        settings.inference_workers = 0
    pipe = served(live, "alice/two-workers").pipelines["text-classification"]
    held, release = threading.Event(), threading.Event()
    original = pipe.forward

    def forward(batch, params):  # the first call to come holds its worker; the others pass
        if not held.is_set():
            held.set()
            assert release.wait(120), "never released"
        return original(batch, params)

    pipe.forward = forward
    try:
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(post, live, "/models/alice/two-workers", json={"inputs": "slow"})
            assert held.wait(60)
            quick = post(live, "/models/alice/two-workers", json={"inputs": "quick"})
            assert quick.status_code == 200 and not slow.done()
            release.set()
            assert slow.result().status_code == 200
    finally:
        release.set()
        del pipe.forward


def test_eviction_lets_running_requests_finish(live):
    settings = live.app.state.hub.settings
    budget = settings.inference_memory_mb
    assert post(live, "/models/alice/evict-a", json={"inputs": "load a"}).status_code == 200
    a = served(live, "alice/evict-a")
    settings.inference_memory_mb = max(1, (a.memory_bytes * 3 // 2) // 1024**2)  # room for one tiny model
    gate = Gate(a.pipelines["text-classification"])
    try:
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(post, live, "/models/alice/evict-a", json={"inputs": "still running"})
            assert gate.entered.wait(60)
            assert post(live, "/models/alice/evict-b", json={"inputs": "load b"}).status_code == 200
            repos = [m.repo_id for m in engine(live).loaded()]
            assert "alice/evict-a" not in repos and "alice/evict-b" in repos
            assert a.model is not None  # evicted, but not released while it holds a request
            gate.open()
            r = running.result()
        assert r.status_code == 200
        want = cove.pipeline("text-classification", model=live.folders["alice/evict-a"])(
            "still running", top_k=None
        )
        assert [x["score"] for x in r.json()[0]] == pytest.approx([w["score"] for w in want], rel=1e-5)
        wait_for(lambda: a.model is None, "the evicted model's release")
        assert post(live, "/models/alice/evict-a", json={"inputs": "back"}).status_code == 200  # loads again
        text = httpx.get(
            f"{live.url}/metrics", headers={"Authorization": f"Bearer {live.tokens['alice']}"}
        ).text
        assert metric(text, "cove_inference_evictions_total", model="alice/evict-a") >= 1
    finally:
        settings.inference_memory_mb = budget
        if not gate.opened.is_set():
            gate.open()


def test_concurrent_first_requests_load_once(live):
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda i: post(live, "/models/alice/once", json={"inputs": f"t{i}"}), range(8))
        )
    assert [a.status_code for a in answers] == [200] * 8
    text = httpx.get(f"{live.url}/metrics").text
    assert metric(text, "cove_inference_model_loads_total", model="alice/once", result="ok") == 1


def test_metrics_show_each_caller_the_models_it_may_read(live):
    assert post(live, "/models/alice/secret", live.tokens["alice"], json={"inputs": "x"}).status_code == 200
    assert post(live, "/embed", json={"inputs": "loaded again after the eviction test"}).status_code == 200
    anonymous = httpx.get(f"{live.url}/metrics")
    assert anonymous.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = anonymous.text
    assert "alice/secret" not in text
    assert metric(text, "cove_inference_loaded_models") >= 1
    assert metric(text, "cove_inference_model_memory_bytes", model=MINILM) > 20_000_000
    assert metric(text, "cove_inference_queue_seconds_count", model=MINILM) >= 64
    assert metric(text, "cove_inference_compute_seconds_count", model=MINILM) >= 64
    assert metric(text, "cove_inference_queue_depth", model=MINILM) == 0
    assert "# TYPE cove_inference_batch_size histogram" in text
    owner = httpx.get(f"{live.url}/metrics", headers={"Authorization": f"Bearer {live.tokens['alice']}"}).text
    assert metric(owner, "cove_inference_requests_total", model="alice/secret", status="200") >= 1
