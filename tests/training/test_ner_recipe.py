"""The NER recipe: text handling, spaCy-to-CoNLL tags, label alignment, registry downloads, and a small end to end
build (bundled MiniLM, a stand-in labeller instead of spaCy) that `pipeline("ner")` then uses by default."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cove.errors import TrainingError
from cove.training import recipes
from cove.training.recipes import ner, sources

LABELS = ner.LABELS


def test_split_sentences_keeps_abbreviations_and_initials():
    text = (
        "Mr. Smith went to Washington. He met John F. Kennedy at 10 a.m. Monday!  Did the U.S. Army "
        'agree? "Yes," said Gen. Grant. The end.'
    )
    assert ner.split_sentences(text) == [
        "Mr. Smith went to Washington.",
        "He met John F. Kennedy at 10 a.m. Monday!",
        "Did the U.S. Army agree?",
        '"Yes," said Gen. Grant.',
        "The end.",
    ]


def test_bio_tags_map_spacy_types_onto_conll():
    tokens = "Barack Obama visited the United Nations in New York on Monday with 3 French diplomats".split()
    entities = [(0, 2, "PERSON"), (3, 6, "ORG"), (7, 9, "GPE"), (10, 11, "DATE"), (12, 13, "CARDINAL")]
    entities.append((13, 14, "NORP"))
    tags = ner.bio_tags(len(tokens), entities)
    assert tags == [
        "B-PER", "I-PER", "O", "B-ORG", "I-ORG", "I-ORG", "O", "B-LOC", "I-LOC", "O", "O", "O", "O", "B-MISC", "O",
    ]  # fmt: skip
    # CoNLL leaves a leading article out of the entity
    assert ner.bio_tags(4, [(0, 3, "ORG")], ["The", "United", "Nations", "met"]) == [
        "O",
        "B-ORG",
        "I-ORG",
        "O",
    ]
    # spans out of range are ignored rather than corrupting the row
    assert ner.bio_tags(2, [(1, 5, "PERSON"), (-1, 1, "ORG")]) == ["O", "O"]


def test_align_labels_first_subword_and_inside_tags():
    b_per, i_per, b_loc = LABELS.index("B-PER"), LABELS.index("I-PER"), LABELS.index("B-LOC")
    word_ids = [None, 0, 0, 0, 1, 2, 2, None]
    tags = [b_per, 0, b_loc]
    assert ner.align_labels(word_ids, tags, every_subword=True) == [
        -100,
        b_per,
        i_per,
        i_per,
        0,
        b_loc,
        8,
        -100,
    ]
    assert ner.align_labels(word_ids, tags, every_subword=False) == [
        -100,
        b_per,
        -100,
        -100,
        0,
        b_loc,
        -100,
        -100,
    ]


def test_spans_and_mention_replacement():
    tag = LABELS.index
    tags = [tag("B-PER"), tag("I-PER"), 0, tag("I-ORG"), tag("I-LOC"), tag("B-LOC"), tag("I-LOC")]
    assert ner.spans(tags) == [(0, 2, "PER"), (3, 4, "ORG"), (4, 5, "LOC"), (5, 7, "LOC")]
    rows = [
        {"doc": "a", "tokens": "Ann Lee met IBM in Paris".split(), "ner_tags": [3, 4, 0, 5, 0, 7]},
        {"doc": "b", "tokens": "Bob visited New York".split(), "ner_tags": [3, 0, 7, 8]},
        {"doc": "c", "tokens": "nothing here".split(), "ner_tags": [0, 0]},
    ]
    assert ner.replace_mentions(rows, 0.0, seed=0) == rows
    swapped = ner.replace_mentions(rows * 20, 1.0, seed=0)
    assert swapped[2] == rows[2]  # rows without entities stay as they are
    for row in swapped:
        assert len(row["tokens"]) == len(row["ner_tags"])
        # the context words stay; each mention comes from the pool of its own type
        for start, end, kind in ner.spans(row["ner_tags"]):
            mention = row["tokens"][start:end]
            pool = {"PER": [["Ann", "Lee"], ["Bob"]], "ORG": [["IBM"]], "LOC": [["Paris"], ["New", "York"]]}[
                kind
            ]
            assert mention in pool
    assert {" ".join(r["tokens"]) for r in swapped if r["doc"] == "b"} >= {
        "Bob visited Paris",
        "Ann Lee visited New York",
    }


def test_document_split_selection_and_subsample():
    rows = [
        {"doc": f"{source}/{d}", "tokens": ["x"], "ner_tags": [d % 2 * 3]}
        for source in ("a", "b")
        for d in range(10)
        for _ in range(5)
    ]
    train, test = ner.split_by_document(rows, test_size=0.2, seed=1)
    train_docs, test_docs = {r["doc"] for r in train}, {r["doc"] for r in test}
    assert not train_docs & test_docs and len(train) + len(test) == len(rows)
    assert sorted(d.split("/")[0] for d in test_docs) == ["a", "a", "b", "b"]  # each source held out alike
    chosen = ner.select(rows, 20, empty_share=0.25, seed=0)
    assert len(chosen) == 20 and sum(not any(r["ner_tags"]) for r in chosen) == 5
    documents = [(f"d{i}", [f"s{i}-{j}" for j in range(100)]) for i in range(10)]
    sample = ner.subsample(documents, 300, seed=0)
    assert 200 < sum(len(doc) for _, doc in sample) < 400
    assert all(doc == sorted(doc, key=lambda s: int(s.split("-")[1])) for _, doc in sample)
    assert ner.subsample(documents, 5000, seed=0) is documents


def test_sotu_and_lee_readers(tmp_path):
    sotu = tmp_path / "sotu.tgz"
    with tarfile.open(sotu, "w:gz") as tar:
        for name, text in {
            "package/data/1899_old_speech.txt": "Too early to be used here at all.",
            "package/data/1961_john_kennedy_d.txt": "Mr. Speaker, I thank you all. (Applause.) We met in Boston today.",
            "package/data/1961_john_kennedy_d.json": "{}",
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert ner.sotu_documents(sotu) == [
        ("sotu/1961_john_kennedy_d", ["Mr. Speaker, I thank you all.", "We met in Boston today."])
    ]
    lee = tmp_path / "gensim.tar.gz"
    with tarfile.open(lee, "w:gz") as tar:
        data = b"The Prime Minister flew to Sydney today. Short.\n\nA second article about Canberra politics here.\n"
        info = tarfile.TarInfo("gensim-4.4.0/" + ner.LEE_MEMBER)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert ner.lee_documents(lee) == [
        ("lee/0", ["The Prime Minister flew to Sydney today."]),
        ("lee/2", ["A second article about Canberra politics here."]),
    ]
    with pytest.raises(TrainingError, match=r"lee_background\.cor"):
        ner.lee_documents(sotu)


WIKITEXT = """{{Infobox person|name=Ada {{nested|x}}}}
'''Ada Lovelace''' was an English [[mathematician]] who worked with [[Charles Babbage|Babbage]].<ref>{{cite|X}}</ref>
== Life ==
* a list item
[[File:Ada.jpg|thumb|A portrait with a [[link]]]]
{| class="wikitable"
| cell || cell
|}
She was born in [[London]] in 1815.<ref name="a"/> See [http://example.org the site] for more.<!-- a comment -->
[[Category:Mathematicians]]"""


def test_wiki_paragraphs_keep_prose_only():
    assert ner.wiki_paragraphs(WIKITEXT) == [
        "Ada Lovelace was an English mathematician who worked with Babbage.",
        "She was born in London in 1815.  See the site for more.",
    ]


# -- registry downloads against a local stand-in registry -----------------------------------------


@pytest.fixture
def registry(tmp_path):
    root = tmp_path / "registry"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_pypi_sdist_checks_digest_and_caches(registry, tmp_path, monkeypatch):
    root, url = registry
    payload = b"pretend sdist"
    (root / "files").mkdir()
    (root / "files" / "some_pkg-1.0.tar.gz").write_bytes(payload)
    (root / "simple" / "some-pkg").mkdir(parents=True)
    digest = hashlib.sha256(payload).hexdigest()
    page = f'<html><body><a href="../../files/some_pkg-1.0.tar.gz#sha256={digest}">some_pkg-1.0.tar.gz</a></body>'
    (root / "simple" / "some-pkg" / "index.html").write_text(page)
    monkeypatch.setenv("COVE_PYPI_URL", url)
    got = sources.pypi_sdist("Some_Pkg", "1.0", tmp_path / "dl")
    assert got.read_bytes() == payload and got.name == "some_pkg-1.0.tar.gz"
    (root / "files" / "some_pkg-1.0.tar.gz").unlink()  # cached: the registry is not asked again
    assert sources.pypi_sdist("Some_Pkg", "1.0", tmp_path / "dl") == got
    with pytest.raises(TrainingError, match=r"no source distribution of some-pkg 2\.0"):
        sources.pypi_sdist("some-pkg", "2.0", tmp_path / "dl")


def test_npm_tarball_rejects_a_corrupt_download(registry, tmp_path, monkeypatch):
    import base64

    root, url = registry
    payload = b"pretend tarball"
    (root / "tarballs").mkdir()
    (root / "tarballs" / "pkg.tgz").write_bytes(payload)
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(payload).digest()).decode()
    (root / "@scope" / "pkg").mkdir(parents=True)
    record = {"dist": {"tarball": f"{url}/tarballs/pkg.tgz", "integrity": integrity}}
    (root / "@scope" / "pkg" / "1.2.3").write_text(json.dumps(record))
    monkeypatch.setenv("COVE_NPM_REGISTRY", url)
    got = sources.npm_tarball("@scope/pkg", "1.2.3", tmp_path / "dl")
    assert got.read_bytes() == payload and got.name == "scope-pkg-1.2.3.tgz"
    (root / "tarballs" / "pkg.tgz").write_bytes(b"tampered")
    with pytest.raises(TrainingError, match="does not match"):
        sources.npm_tarball("@scope/pkg", "1.2.3", tmp_path / "other")
    assert not list((tmp_path / "other").iterdir())  # neither the file nor a partial is left behind


# -- end to end ------------------------------------------------------------------------------------

PEOPLE = ["Alice Johnson", "Robert Miller", "Maria Garcia", "David Chen"]
PLACES = ["Paris", "Chicago", "Berlin", "Tokyo"]
ORGS = ["Acme Corporation", "Globex Industries", "Initech", "Umbrella Group"]


def stand_in_corpus():
    documents = []
    for d in range(12):
        sentences = []
        for i in range(6):
            person, place, org = PEOPLE[(d + i) % 4], PLACES[(d + 2 * i) % 4], ORGS[(d + 3 * i) % 4]
            sentences.append(f"{person} works for {org} in {place} .")
            sentences.append("the weather was pleasant that afternoon .")
        documents.append((f"news/{d}", sentences))
    return documents


def stand_in_labeler(sentences):
    """Labels the stand-in corpus the way spaCy would: spans over whitespace tokens, OntoNotes types."""
    out = []
    for sentence in sentences:
        tokens = sentence.split()
        entities = []
        for names, kind in ((PEOPLE, "PERSON"), (PLACES, "GPE"), (ORGS, "ORG")):
            for name in names:
                parts = name.split()
                for i in range(len(tokens) - len(parts) + 1):
                    if tokens[i : i + len(parts)] == parts:
                        entities.append([i, i + len(parts), kind])
        out.append({"tokens": tokens, "entities": entities})
    return out


@pytest.mark.slow
def test_ner_build_end_to_end(tmp_path, monkeypatch):
    import cove

    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "data"))
    figures = ner.build(
        epochs=4,
        batch_size=8,
        learning_rate=3e-4,
        train_sentences=200,
        documents=stand_in_corpus(),
        labeler=stand_in_labeler,
        progress=False,
    )
    folder = recipes.default_model_dir("ner")
    assert str(folder) == figures["output_dir"]
    assert figures["published"].startswith(f"local:{ner.REPO_ID}")
    assert figures["f1"] > 0.9 and set(figures) >= {"precision", "recall", "f1_PER", "f1_ORG", "f1_LOC"}
    # labels are cached by the sentences' hash: a rebuild does not label again
    assert list((tmp_path / "data" / "cache" / "ner-recipe").glob("labels-*.jsonl"))
    entities = cove.pipeline("ner", grouped_entities=True)("Maria Garcia works for Initech in Berlin .")
    assert [(e["entity_group"], e["word"]) for e in entities] == [
        ("PER", "maria garcia"),
        ("ORG", "initech"),
        ("LOC", "berlin"),
    ]
    model = cove.AutoModelForTokenClassification.from_pretrained(folder)
    assert model.config.id2label == dict(enumerate(LABELS))
    card = (folder / "README.md").read_text()
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card and "sha256:" in card


def test_ner_recipe_trains_with_bf16_auto(tmp_path, monkeypatch, fake_cpu):
    from .test_recipes import _Stop, spy_training_arguments

    fake_cpu("avx2")
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "data"))
    seen = spy_training_arguments(monkeypatch)
    with pytest.raises(_Stop):
        ner.build(
            tmp_path / "out",
            train_sentences=40,
            documents=stand_in_corpus(),
            labeler=stand_in_labeler,
            progress=False,
        )
    assert seen["bf16"] == "auto" and seen["resolved"] is False


def test_ner_repo_id_matches_pipeline_defaults():
    from cove.pipelines.defaults import DEFAULTS

    assert ner.REPO_ID == recipes.DEFAULT_MODELS["ner"] == DEFAULTS["ner"]
    assert recipes.RECIPES["ner"][0] == ner.__name__


def test_setup_models_lists_and_validates_recipes(tmp_path, monkeypatch, capsys):
    from cove.cli.main import main

    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path))
    assert main(["setup-models", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["sentiment", "ner", "summarization", "qa"]
    assert "model=cove/minilm-ner" in lines[1] and "built=False" in lines[1]
    (tmp_path / "models" / "cove" / "minilm-ner").mkdir(parents=True)
    (tmp_path / "models" / "cove" / "minilm-ner" / "config.json").write_text("{}")
    assert main(["setup-models", "ner"]) == 0  # already built: skipped, nothing downloaded
    assert "already built" in capsys.readouterr().out
    assert main(["setup-models", "nope"]) != 0
    assert "Unknown recipe(s) ['nope']" in capsys.readouterr().err
