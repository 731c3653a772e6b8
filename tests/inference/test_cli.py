"""`cove infer` against a live hub and against its data dir in-process (the same answers), and
`cove serve-inference`: a replica on the hub's store that serves the inference API only."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

import cove
from cove.cli.main import main
from tests.inference.conftest import MINILM, NER_LABELS, encoder, import_bundled, push
from tests.server.conftest import _free_port

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def live(serve, tmp_path_factory):
    hub = serve()
    tmp = tmp_path_factory.mktemp("cli-models")
    hub.cls = str(encoder(tmp, "cls", "seq", ["NO", "YES"]))  # type: ignore[attr-defined]
    push(hub, "alice/cls", hub.cls, "text-classification")  # type: ignore[attr-defined]
    hub.qa = str(encoder(tmp, "qa", "qa"))  # type: ignore[attr-defined]
    push(hub, "alice/qa", hub.qa, "question-answering")  # type: ignore[attr-defined]
    push(hub, "alice/ner", encoder(tmp, "ner", "tok", NER_LABELS), "token-classification", private=True)
    import_bundled(hub)
    return hub


def run(capsys, *argv: str) -> tuple[int, object]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


def test_infer_against_a_running_hub(live, capsys, monkeypatch):
    monkeypatch.delenv("COVE_TOKEN", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    code, out = run(capsys, "infer", "alice/cls", "I love it", "--endpoint", live.url, "--param", "top_k=1")
    want = cove.pipeline("text-classification", model=live.cls)("I love it", top_k=1)
    assert code == 0 and [x["label"] for x in out[0]] == [w["label"] for w in want]
    code, out = run(
        capsys,
        "infer",
        "alice/qa",
        "--question",
        "Who?",
        "--context",
        "Ann wrote it.",
        "--endpoint",
        live.url,
    )
    assert (
        code == 0
        and out["answer"]
        == cove.pipeline("question-answering", model=live.qa)(question="Who?", context="Ann wrote it.")[
            "answer"
        ]
    )
    code, out = run(
        capsys,
        "infer",
        MINILM,
        "a man plays",
        "--compare",
        "someone plays",
        "--compare",
        "stocks fell",
        "--endpoint",
        live.url,
    )
    assert code == 0 and len(out) == 2 and out[0] > out[1]
    code, out = run(capsys, "infer", MINILM, "text", "--task", "fill-mask", "--endpoint", live.url)
    assert code == 1 and "400" in out and "sentence-similarity" in out
    code, out = run(capsys, "infer", "alice/ner", "Sarah lives in London", "--endpoint", live.url)
    assert code == 1 and "404" in out
    code, out = run(
        capsys,
        "infer",
        "alice/ner",
        "Sarah lives in London",
        "--endpoint",
        live.url,
        "--token",
        live.tokens["alice"],
    )
    assert code == 0 and isinstance(out, list)


def test_infer_locally_answers_what_the_server_answers(live, capsys, monkeypatch):
    for key in ("COVE_ENDPOINT", "HF_ENDPOINT", "COVE_TOKEN", "HF_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    code, local = run(capsys, "infer", "alice/cls", "I love it", "--data-dir", str(live.data_dir))
    remote = httpx.post(f"{live.url}/models/alice/cls", json={"inputs": "I love it"}, timeout=60).json()
    assert code == 0 and local == remote
    code, err = run(capsys, "infer", "./not-a-repo-id", "x", "--data-dir", str(live.data_dir))
    assert code == 1 and "cove run" in err


def test_serve_inference_replica(live):
    import uvicorn

    from cove.server.inference.app import create_inference_app
    from cove.server.settings import Settings

    app = create_inference_app(Settings(data_dir=live.data_dir, import_bundled=False))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the replica did not start"
            time.sleep(0.05)
        same = httpx.post(f"{url}/models/alice/cls", json={"inputs": "replica"}, timeout=60)
        hub = httpx.post(f"{live.url}/models/alice/cls", json={"inputs": "replica"}, timeout=60)
        assert same.status_code == 200 and same.json() == hub.json()
        private = httpx.post(f"{url}/models/alice/ner", json={"inputs": "x"}, timeout=60)
        assert private.status_code == 404  # the hub's access rules, from its database
        headers = {"Authorization": f"Bearer {live.tokens['alice']}"}
        assert (
            httpx.post(
                f"{url}/models/alice/ner", json={"inputs": "x"}, headers=headers, timeout=60
            ).status_code
            == 200
        )
        assert httpx.get(f"{url}/api/models", timeout=10).status_code == 404  # inference only
    finally:
        server.should_exit = True
        thread.join(timeout=30)
