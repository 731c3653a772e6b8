"""The HF Inference API on a live `cove serve`, driven by huggingface_hub's real InferenceClient: every
encoder and encoder-decoder task answers what `cove.pipeline` answers on the same model and input; revision
pins, explicit tasks, /api/tasks, /info and /health; and bad input answered clearly while the server keeps
serving."""

from __future__ import annotations

import json

import httpx
import pytest

import cove
from tests.inference.conftest import MINILM, NER_LABELS, NLI_LABELS, encoder, import_bundled, push, t5

pytestmark = pytest.mark.server

TEXT = "Sarah lives in London and works for Acme Corporation."


@pytest.fixture(scope="module")
def live(serve, tmp_path_factory):
    hub = serve()
    tmp = tmp_path_factory.mktemp("infer-models")
    hub.folders = {}  # type: ignore[attr-defined]
    for repo, folder, task in [
        ("alice/cls", encoder(tmp, "cls", "seq", ["NEGATIVE", "POSITIVE", "NEUTRAL"]), "text-classification"),
        ("alice/ner", encoder(tmp, "ner", "tok", NER_LABELS), "token-classification"),
        ("alice/qa", encoder(tmp, "qa", "qa"), "question-answering"),
        ("alice/mlm", encoder(tmp, "mlm", "mlm"), "fill-mask"),
        ("alice/nli", encoder(tmp, "nli", "seq", NLI_LABELS), "zero-shot-classification"),
        ("alice/t5", t5(tmp), "summarization"),
        ("alice/t5-translate", t5(tmp, "tiny-t5-translate"), "translation"),
    ]:
        push(hub, repo, folder, task)
        hub.folders[repo] = str(folder)  # type: ignore[attr-defined]
    import_bundled(hub)
    return hub


def client(live, repo: str, **kwargs):
    from huggingface_hub import InferenceClient

    return InferenceClient(model=f"{live.url}/models/{repo}", **kwargs)


def pipe(live, task: str, repo: str):
    return cove.pipeline(task, model=live.folders[repo])


def test_text_classification_matches_the_pipeline(live):
    got = client(live, "alice/cls").text_classification("I love this movie!")
    want = pipe(live, "text-classification", "alice/cls")("I love this movie!", top_k=None)
    assert [(g.label, g.score) for g in got] == [
        (w["label"], pytest.approx(w["score"], rel=1e-5)) for w in want
    ]
    top = client(live, "alice/cls").text_classification("meh", top_k=1, function_to_apply="sigmoid")
    ref = pipe(live, "text-classification", "alice/cls")("meh", top_k=1, function_to_apply="sigmoid")
    assert [(t.label, t.score) for t in top] == [
        (r["label"], pytest.approx(r["score"], rel=1e-5)) for r in ref
    ]


def test_token_classification_matches_the_pipeline(live):
    got = client(live, "alice/ner").token_classification(TEXT)
    want = pipe(live, "token-classification", "alice/ner")(TEXT, aggregation_strategy="simple")
    assert want, "the random model should find some entity"
    assert [(g.entity_group, g.word, g.start, g.end) for g in got] == [
        (w["entity_group"], w["word"], w["start"], w["end"]) for w in want
    ]
    assert [g.score for g in got] == pytest.approx([w["score"] for w in want], rel=1e-5)


def test_question_answering_matches_the_pipeline(live):
    question, context = "Where does Sarah live?", TEXT
    got = client(live, "alice/qa").question_answering(question=question, context=context)
    want = pipe(live, "question-answering", "alice/qa")(question=question, context=context)
    assert (got.answer, got.start, got.end) == (want["answer"], want["start"], want["end"])
    assert got.score == pytest.approx(want["score"], rel=1e-5)


def test_fill_mask_matches_the_pipeline(live):
    masked = "Paris is the [MASK] of France."
    got = client(live, "alice/mlm").fill_mask(masked, top_k=3)
    want = pipe(live, "fill-mask", "alice/mlm")(masked, top_k=3)
    assert [(g.token, g.token_str, g.sequence) for g in got] == [
        (w["token"], w["token_str"], w["sequence"]) for w in want
    ]
    assert [g.score for g in got] == pytest.approx([w["score"] for w in want], rel=1e-5)


def test_zero_shot_matches_the_pipeline(live):
    labels = ["travel", "cooking", "sports"]
    got = client(live, "alice/nli").zero_shot_classification(TEXT, labels)
    want = pipe(live, "zero-shot-classification", "alice/nli")(TEXT, candidate_labels=labels)
    assert [g.label for g in got] == want["labels"]
    assert [g.score for g in got] == pytest.approx(want["scores"], rel=1e-5)
    multi = client(live, "alice/nli").zero_shot_classification(TEXT, labels, multi_label=True)
    ref = pipe(live, "zero-shot-classification", "alice/nli")(TEXT, candidate_labels=labels, multi_label=True)
    assert [g.score for g in multi] == pytest.approx(ref["scores"], rel=1e-5)


def test_feature_extraction_and_similarity_on_minilm(live):
    import numpy as np

    st = cove.pipeline("sentence-similarity", model=MINILM)
    c = client(live, MINILM)
    one = c.feature_extraction("Cove runs offline.")
    assert one.shape == (384,)
    np.testing.assert_allclose(one, st.encode("Cove runs offline.").numpy(), atol=1e-5)
    many = c.feature_extraction(["first sentence", "a second, longer sentence here"])
    np.testing.assert_allclose(
        many, st.encode(["first sentence", "a second, longer sentence here"]).numpy(), atol=1e-5
    )
    raw = c.feature_extraction("Cove runs offline.", normalize=False)
    assert abs(float(np.linalg.norm(raw)) - 1.0) > 1e-3  # MiniLM's pooled vector is not unit length
    scores = c.sentence_similarity("A man plays guitar.", ["Someone plays an instrument.", "Stocks fell."])
    assert scores == pytest.approx(
        st("A man plays guitar.", ["Someone plays an instrument.", "Stocks fell."]), abs=1e-5
    )


def test_token_level_features_for_a_plain_encoder(live, tmp_path):
    folder = encoder(tmp_path, "plain", "mlm")  # a BertForMaskedLM checkpoint, served as feature-extraction
    push(live, "alice/plain", folder, "feature-extraction")
    got = client(live, "alice/plain").feature_extraction("Paris is nice")
    want = cove.pipeline("feature-extraction", model=str(folder))("Paris is nice")
    import numpy as np

    np.testing.assert_allclose(got, np.array(want), atol=1e-5)
    assert got.shape[0] == 1 and got.ndim == 3  # (1, tokens, hidden), as transformers' pipeline


def test_summarization_and_translation_match_the_pipelines(live):
    doc = "Paris is the capital of France."
    got = client(live, "alice/t5").summarization(doc, generate_parameters={"max_new_tokens": 8})
    want = pipe(live, "summarization", "alice/t5")(doc, max_new_tokens=8)
    assert got.summary_text == want[0]["summary_text"]
    c = client(live, "alice/t5-translate")
    tr = c.translation(doc, src_lang="en", tgt_lang="fr", generate_parameters={"max_new_tokens": 6})
    ref = cove.pipeline("translation_en_to_fr", model=live.folders["alice/t5-translate"])(
        doc, max_new_tokens=6
    )
    assert tr.translation_text == ref[0]["translation_text"]
    # without a pair, the model's first one (en_to_de), as the pipeline does; an explicit task picks too
    plain = c.translation(doc, generate_parameters={"max_new_tokens": 6})
    de = cove.pipeline("translation", model=live.folders["alice/t5-translate"])(doc, max_new_tokens=6)
    assert plain.translation_text == de[0]["translation_text"]
    r = httpx.post(
        f"{live.url}/models/alice/t5/pipeline/translation_en_to_fr",
        json={"inputs": doc, "parameters": {"max_new_tokens": 6}},
        timeout=60,
    )
    fr = cove.pipeline("translation_en_to_fr", model=live.folders["alice/t5"])(doc, max_new_tokens=6)
    assert r.json() == fr


def test_explicit_task_and_unservable_tasks(live):
    r = httpx.post(
        f"{live.url}/models/{MINILM}/pipeline/sentence-similarity",
        json={"inputs": {"source_sentence": "a", "sentences": ["a", "b"]}},
    )
    assert r.status_code == 200 and r.json()[0] == pytest.approx(1.0, abs=1e-5)
    r = httpx.post(f"{live.url}/models/alice/cls/pipeline/fill-mask", json={"inputs": "a [MASK]"})
    assert r.status_code == 400
    assert r.json()["error_type"] == "unsupported_task" and "text-classification" in r.json()["error"]
    r = httpx.post(f"{live.url}/models/alice/cls/pipeline/image-classification", json={"inputs": "x"})
    assert r.status_code == 400 and "feature-extraction" in r.json()["error"]  # names what Cove serves


def test_revision_pins_a_commit(live, tmp_path):
    first = push(live, "alice/pinned", encoder(tmp_path, "v1", "seq", ["A", "B"]), "text-classification")
    from tests.pipelines.conftest import make_model

    second_folder = make_model(tmp_path / "v2", "bert", "seq", ["A", "B"], seed=1)
    second = push(live, "alice/pinned", second_folder, "text-classification")
    assert first != second

    def scores(url: str) -> list:
        r = httpx.post(url, json={"inputs": "some text", "parameters": {"top_k": None}})
        assert r.status_code == 200, r.text
        return r.json()

    main = scores(f"{live.url}/models/alice/pinned")
    assert scores(f"{live.url}/models/alice/pinned@{second}") == main
    old = scores(f"{live.url}/models/alice/pinned@{first}")
    assert scores(f"{live.url}/models/alice/pinned?revision={first}") == old
    assert old != main
    want = cove.pipeline("text-classification", model=str(tmp_path / "v1"))("some text", top_k=None)
    assert [x["score"] for x in old[0]] == pytest.approx([w["score"] for w in want], rel=1e-5)
    r = httpx.post(f"{live.url}/models/alice/pinned@nope", json={"inputs": "x"})
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "RevisionNotFound"


def test_api_tasks_info_and_health(live):
    from huggingface_hub import InferenceClient

    tasks = httpx.get(f"{live.url}/api/tasks").json()
    assert "alice/cls" in tasks["text-classification"]["widgetModels"]
    assert set(tasks) >= {"feature-extraction", "summarization", "text-generation", "question-answering"}
    c = InferenceClient(model=f"{live.url}/models/{MINILM}", provider="hf-inference")
    info = c.get_endpoint_info()
    assert info["model_id"] == MINILM and info["model_pipeline_tag"] == "sentence-similarity"
    assert info["max_input_length"] == 512
    assert c.health_check()
    assert not InferenceClient(
        model=f"{live.url}/models/alice/missing", provider="hf-inference"
    ).health_check()


# -- bad input ------------------------------------------------------------------------------------


def post(live, path: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{live.url}{path}", timeout=60, **kwargs)


def assert_error(r: httpx.Response, status: int, *words: str, error_type: str = "validation") -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error_type"] == error_type
    for word in words:
        assert word in body["error"], body["error"]


def test_bad_input_is_a_clear_422(live):
    url = "/models/alice/cls"
    assert_error(
        post(live, url, content=b"{not json", headers={"content-type": "application/json"}),
        422,
        "Malformed JSON",
    )
    assert_error(post(live, url, content=b""), 422, "empty")
    assert_error(post(live, url, json=["a list"]), 422, "JSON object")
    assert_error(post(live, url, json={"inputs": 42}), 422, "inputs must be a string")
    assert_error(post(live, url, json={"inputs": ""}), 422, "empty")
    assert_error(post(live, url, json={"inputs": []}), 422, "empty list")
    assert_error(post(live, url, json={"text": "x"}), 422, "'text'")
    assert_error(post(live, url, json={"inputs": "x", "parameters": {"topk": 2}}), 422, "'topk'", "top_k")
    assert_error(post(live, url, json={"inputs": "x", "parameters": {"top_k": "two"}}), 422, "top_k")
    assert_error(post(live, url, json={"inputs": "x", "parameters": []}), 422, "parameters must be an object")
    assert_error(post(live, "/models/alice/nli", json={"inputs": "x"}), 422, "candidate_labels")
    assert_error(post(live, "/models/alice/qa", json={"inputs": "what?"}), 422, "question")
    assert_error(post(live, "/models/alice/mlm", json={"inputs": "no mask here"}), 422, "mask")
    long = "word " * 600
    assert_error(post(live, url, json={"inputs": long}), 422, "limit of 512 tokens", "truncation")
    r = post(live, url, json={"inputs": long, "parameters": {"truncation": True}})
    assert r.status_code == 200, r.text
    assert_error(post(live, f"/models/{MINILM}", json={"inputs": long}), 422, "512")
    assert post(live, f"/models/{MINILM}", json={"inputs": long, "truncate": True}).status_code == 200
    assert_error(post(live, "/models/alice/ner", json={"inputs": long}), 422, "512")
    assert (
        post(live, "/models/alice/ner", json={"inputs": long, "parameters": {"stride": 16}}).status_code
        == 200
    )
    # the server kept serving throughout
    assert post(live, url, json={"inputs": "fine"}).status_code == 200


def test_a_50_mb_body_is_refused_with_413(live):
    r = post(live, "/models/alice/cls", content=b'{"inputs": "' + b"x" * (50 * 1024**2) + b'"}')
    assert_error(r, 413, "COVE_MAX_INFERENCE_BYTES")
    assert post(live, "/models/alice/cls", json={"inputs": "still here"}).status_code == 200


def test_unknown_and_unservable_models(live, tmp_path):
    r = post(live, "/models/alice/nothing-here", json={"inputs": "x"})
    assert_error(r, 404, "not found", error_type="not_found")
    assert r.headers["X-Error-Code"] == "RepoNotFound"
    folder = tmp_path / "vision"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "vit", "architectures": ["ViTModel"]}))
    push(live, "alice/vision", folder, "image-classification")
    assert_error(
        post(live, "/models/alice/vision", json={"inputs": "x"}),
        400,
        "image-classification",
        error_type="unsupported_task",
    )


def test_a_model_that_fails_to_load_answers_an_error_and_others_keep_serving(live, tmp_path):
    folder = encoder(tmp_path, "broken", "seq", ["A", "B"])
    (folder / "model.safetensors").write_bytes(b"this is not a safetensors file")
    push(live, "alice/broken", folder, "text-classification")
    for _ in range(2):  # the second answer comes from the remembered failure, not a second load
        r = post(live, "/models/alice/broken", json={"inputs": "x"})
        assert r.status_code == 500 and r.json()["error_type"] == "load", r.text
        assert "alice/broken" in r.json()["error"]
    assert post(live, "/models/alice/cls", json={"inputs": "fine"}).status_code == 200


def test_the_openapi_schema_still_renders(live):
    r = httpx.get(f"{live.url}/api/openapi.json")
    assert r.status_code == 200 and "/models/{namespace}/{name}" in json.dumps(r.json())
