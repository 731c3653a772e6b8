"""The question-answering recipe: question generation from a dependency parse, paragraph windows, answer
positions in the features, the natural question set, and a small end to end build (bundled MiniLM, a
stand-in parser instead of spaCy) that `pipeline("question-answering")` then uses by default."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from cove.errors import PipelineError, TrainingError
from cove.training import recipes
from cove.training.recipes import qa

NATURAL = Path(__file__).parent / "data" / "qa_natural.jsonl"
# the tutorial of ../shared/seeds (Module 6: Question Answering), its context as written there
TUTORIAL_CONTEXT = """
Hugging Face is an AI company based in New York. It provides NLP tools such as the Transformers library.
"""
TUTORIAL_QUESTION = "Where is Hugging Face based?"


# -- a stand-in for spaCy's --syntax rows: a few sentence templates with their parse -------------------

# each template word: (text or {slot}, pos, tag, lemma, dep, head word index); a slot holds a name (several
# tokens: the last one carries the dependency, the others are its compounds) and its OntoNotes type
TEMPLATES = {
    "works": [
        ("{person}", "PROPN", "NNP", "", "nsubj", 1),
        ("works", "VERB", "VBZ", "work", "ROOT", 1),
        ("for", "ADP", "IN", "for", "prep", 1),
        ("{org}", "PROPN", "NNP", "", "pobj", 2),
        ("in", "ADP", "IN", "in", "prep", 1),
        ("{place}", "PROPN", "NNP", "", "pobj", 4),
        (".", "PUNCT", ".", ".", "punct", 1),
    ],
    "opened": [
        ("{org}", "PROPN", "NNP", "", "nsubj", 1),
        ("opened", "VERB", "VBD", "open", "ROOT", 1),
        ("an", "DET", "DT", "an", "det", 3),
        ("office", "NOUN", "NN", "office", "dobj", 1),
        ("in", "ADP", "IN", "in", "prep", 1),
        ("{place}", "PROPN", "NNP", "", "pobj", 4),
        ("in", "ADP", "IN", "in", "prep", 1),
        ("{year}", "NUM", "CD", "", "pobj", 6),
        (".", "PUNCT", ".", ".", "punct", 1),
    ],
    "filler": [
        ("The", "DET", "DT", "the", "det", 1),
        ("weather", "NOUN", "NN", "weather", "nsubj", 2),
        ("was", "AUX", "VBD", "be", "ROOT", 2),
        ("pleasant", "ADJ", "JJ", "pleasant", "acomp", 2),
        ("that", "DET", "DT", "that", "det", 5),
        ("afternoon", "NOUN", "NN", "afternoon", "npadvmod", 2),
        (".", "PUNCT", ".", ".", "punct", 2),
    ],
}
SLOT_TYPES = {"person": "PERSON", "org": "ORG", "place": "GPE", "year": "DATE"}
PEOPLE = ["Alice Johnson", "Robert Miller", "Maria Garcia", "David Chen", "Sara Novak", "Tom Baker"]
ORGS = ["Acme Corporation", "Globex Industries", "Initech", "Umbrella Group", "Vandelay Imports"]
PLACES = ["Paris", "Chicago", "Berlin", "Tokyo", "Madrid", "Boston"]


def render_template(name: str, values: dict[str, str]) -> tuple[str, dict]:
    """The sentence of template ``name`` with ``values`` in its slots, and its --syntax row."""
    words = TEMPLATES[name]
    pieces: list[tuple[int, list[str], str | None]] = []  # (template word, its tokens, entity type)
    for w, (text, *_rest) in enumerate(words):
        slot = re.fullmatch(r"\{(\w+)\}", text)
        pieces.append(
            (w, values[slot.group(1)].split(), SLOT_TYPES[slot.group(1)]) if slot else (w, [text], None)
        )
    tokens, idx, first_of, root_of, entities = [], [], {}, {}, []
    sentence = ""
    for w, toks, kind in pieces:
        first_of[w] = len(tokens)
        for t in toks:
            if tokens and t != ".":
                sentence += " "
            idx.append(len(sentence))
            sentence += t
            tokens.append(t)
        root_of[w] = len(tokens) - 1
        if kind:
            entities.append([first_of[w], len(tokens), kind])
    row: dict = {"tokens": tokens, "entities": entities, "idx": idx}
    row.update(tag=[], pos=[], lemma=[], dep=[], head=[])
    for w, toks, _ in pieces:
        _, pos, tag, lemma, dep, head = words[w]
        for k, t in enumerate(toks):
            last = k == len(toks) - 1
            row["pos"].append(pos)
            row["tag"].append(tag)
            row["lemma"].append(lemma or t)
            row["dep"].append(dep if last else "compound")
            row["head"].append(root_of[head] if last else root_of[w])
    return sentence, row


def stand_in_documents(n_docs: int = 16) -> tuple[dict[str, list], dict[str, dict]]:
    """Documents by source, and the stand-in parser's row for every sentence."""
    rows: dict[str, dict] = {}
    sources: dict[str, list] = {"news": [], "wiki": []}
    for d in range(n_docs):
        sentences = []
        for i in range(6):
            values = {
                "person": PEOPLE[(d + i) % len(PEOPLE)],
                "org": ORGS[(d + 2 * i) % len(ORGS)],
                "place": PLACES[(d + 3 * i) % len(PLACES)],
                "year": str(1950 + (d * 7 + i * 3) % 60),
            }
            for name in ("works", "opened", "filler"):
                sentence, row = render_template(name, values)
                rows[sentence] = row
                sentences.append(sentence)
        sources["news" if d % 2 else "wiki"].append((f"{'news' if d % 2 else 'wiki'}/{d}", sentences))
    return sources, rows


def stand_in_labeler(rows: dict[str, dict]):
    return lambda sentences: [rows[s] for s in sentences]


def parse_of(name: str, **values: str) -> qa.Parse:
    sentence, row = render_template(name, values)
    return qa.Parse.from_row(sentence, row)


# -- question generation ---------------------------------------------------------------------------


def test_fronted_questions_invert_and_use_do_support():
    parse = parse_of("works", person="Maria Garcia", org="Initech", place="Berlin")
    assert parse.text == "Maria Garcia works for Initech in Berlin."
    rng = random.Random(0)
    by_type = {
        label: qa.entity_questions(parse, s, e, label, rng, drop=0.0) for s, e, label in parse.entities
    }
    assert by_type["PERSON"][0] == "Who works for Initech in Berlin?"
    assert by_type["GPE"][0] == "Where does Maria Garcia work for Initech?"
    assert re.fullmatch(
        r"For (what organization|which organization|what group) does Maria Garcia work in Berlin\?",
        by_type["ORG"][0],
    )
    # the in-place form keeps the sentence and puts a typed wh-phrase where the entity was
    assert re.fullmatch(
        r"Maria Garcia works for Initech in (what city|what place|which city)\?", by_type["GPE"][1]
    )

    parse = parse_of("opened", org="Globex Industries", place="Tokyo", year="1987")
    questions = {
        label: qa.entity_questions(parse, s, e, label, rng, drop=0.0) for s, e, label in parse.entities
    }
    assert questions["DATE"][0] in (
        "When did Globex Industries open an office in Tokyo?",
        "In what year did Globex Industries open an office in Tokyo?",
        "In which year did Globex Industries open an office in Tokyo?",
    )
    assert questions["GPE"][0] == "Where did Globex Industries open an office in 1987?"
    # dropping optional modifiers makes the shorter questions people ask
    short = qa.entity_questions(parse, *parse.entities[1][:2], "GPE", rng, drop=1.0)[0]
    assert short == "Where did Globex Industries open an office?"


def test_typed_question_words():
    rng = random.Random(0)
    assert qa.typed_wh("PERSON", "Ann Lee", "subject", rng) == "who"
    assert qa.typed_wh("PERSON", "Ann Lee", "pobj", rng) == "whom"
    assert qa.typed_wh("GPE", "France", "pobj", rng) in (
        "what country",
        "which country",
        "which nation",
    )
    assert qa.typed_wh("GPE", "Texas", "object", rng) in ("what state", "which state")
    assert qa.typed_wh("ORG", "Harvard University", "object", rng) in ("what university", "which institution")
    assert qa.typed_wh("DATE", "1935", "pobj", rng) in ("what year", "which year")
    assert qa.typed_wh("DATE", "the past 30 years", "pobj", rng) == "how long"
    assert qa.typed_wh("DATE", "last week", "pobj", rng) is None  # relative dates make no question
    assert qa.typed_wh("CARDINAL", "three", "object", rng) == "how many"
    assert qa.typed_wh("ORDINAL", "first", "object", rng) is None


def test_possessives_titles_and_currency():
    # "Obama 's plan was approved ." -> "Whose plan was approved?"
    row = {
        "tokens": ["Obama", "'s", "plan", "was", "approved", "."],
        "idx": [0, 5, 8, 13, 17, 25],
        "pos": ["PROPN", "PART", "NOUN", "AUX", "VERB", "PUNCT"],
        "tag": ["NNP", "POS", "NN", "VBD", "VBN", "."],
        "lemma": ["Obama", "'s", "plan", "be", "approve", "."],
        "dep": ["poss", "case", "nsubjpass", "auxpass", "ROOT", "punct"],
        "head": [2, 0, 4, 4, 4, 4],
        "entities": [[0, 1, "PERSON"]],
    }
    parse = qa.Parse.from_row("Obama's plan was approved.", row)
    assert (
        qa.entity_questions(parse, 0, 1, "PERSON", random.Random(0), drop=0.0)[0]
        == "Whose plan was approved?"
    )
    # "$ 5 million": the currency sign is part of the MONEY answer
    row = {
        "tokens": ["It", "cost", "$", "5", "million", "."],
        "idx": [0, 3, 8, 9, 11, 18],
        "pos": ["PRON", "VERB", "SYM", "NUM", "NUM", "PUNCT"],
        "tag": ["PRP", "VBD", "$", "CD", "CD", "."],
        "lemma": ["it", "cost", "$", "5", "million", "."],
        "dep": ["nsubj", "ROOT", "nmod", "compound", "dobj", "punct"],
        "head": [1, 1, 4, 4, 1, 1],
        "entities": [[3, 5, "MONEY"]],
    }
    parse = qa.Parse.from_row("It cost $5 million.", row)
    assert parse.entities == [(2, 5, "MONEY")]
    assert parse.text[slice(*parse.char_span(2, 5))] == "$5 million"
    assert qa.entity_questions(parse, 2, 5, "MONEY", random.Random(0), drop=0.0)[0] in (
        "How much did it cost?",
        "How much money did it cost?",
    )


# -- contexts and examples -------------------------------------------------------------------------


def test_paragraph_windows_are_consecutive_runs_of_one_document():
    documents = [(f"d{d}", [f"w{d}-{i} " + "word " * 9 for i in range(30)]) for d in range(3)]
    windows = qa.paragraph_windows(documents, random.Random(0), min_words=30, max_words=60)
    for doc_id, sentences in windows:
        numbers = [int(s.split()[0].split("-")[1]) for s in sentences]
        assert all(s.startswith(f"w{doc_id[1:]}-") for s in sentences)
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        assert 30 <= 10 * len(sentences) <= 60 or (numbers[-1] == 29 and 10 * len(sentences) <= 60 + 15)
    assert sum(len(s) for _, s in windows) == 90  # every sentence in exactly one window (a short tail joins
    # the window before it)
    chosen = qa.choose_windows({"a": documents[:1], "b": documents[1:]}, 40, seed=0)
    counts = {src: sum(len(s) for d, s in chosen if (d == "d0") == (src == "a")) for src in "ab"}
    assert 15 <= counts["a"] <= 25 and 15 <= counts["b"] <= 25  # an equal share from each source


def test_window_examples_point_at_their_answers():
    sources, rows = stand_in_documents(6)
    windows = qa.choose_windows(sources, 200, seed=0)
    parses = {s: qa.Parse.from_row(s, rows[s]) for _, w in windows for s in w}
    examples = qa.window_examples(windows, parses, random.Random(0), per_window=3, unanswerable_share=0.3)
    answerable = [e for e in examples if e["answers"]["text"]]
    unanswerable = [e for e in examples if not e["answers"]["text"]]
    assert answerable and unanswerable
    for e in answerable:
        start, text = e["answers"]["answer_start"][0], e["answers"]["text"][0]
        assert e["context"][start : start + len(text)] == text and e["question"].endswith("?")
    for e in unanswerable:  # another window of the same document, without the answer
        assert e["context"] in {" ".join(w) for d, w in windows if d == e["doc"]}
    by_window: dict[str, set[str]] = {}
    for e in answerable:  # up to three questions per window, about different entities
        by_window.setdefault(e["id"].rsplit("#", 1)[0], set()).add(e["answers"]["text"][0].lower())
    assert max(map(len, by_window.values())) <= 3


def test_tokenize_labels_answer_tokens_and_cls_for_no_answer():
    import cove

    tokenizer = cove.AutoTokenizer.from_pretrained(qa.BASE_MODEL)
    context = "Maria Garcia works for Initech in Berlin. The weather was pleasant that afternoon."
    rows = [
        {"question": "Where does Maria Garcia work?", "context": context,
         "answers": {"text": ["Berlin"], "answer_start": [context.index("Berlin")]}},
        {"question": "Who founded Globex?", "context": context, "answers": {"text": [], "answer_start": []}},
        {"question": "Where does Maria Garcia work?", "context": "word " * 60 + context,
         "answers": {"text": ["Berlin"], "answer_start": [300 + context.index("Berlin")]}},
    ]  # fmt: skip
    features = qa.tokenize(tokenizer, rows, max_length=24)
    first = features[0]
    span = first["input_ids"][first["start_positions"] : first["end_positions"] + 1]
    assert tokenizer.decode(span) == "berlin"
    assert (features[1]["start_positions"], features[1]["end_positions"]) == (0, 0)
    assert (features[2]["start_positions"], features[2]["end_positions"]) == (0, 0)  # cut off by max_length
    assert len(features[2]["input_ids"]) == 24


# -- the natural questions -------------------------------------------------------------------------


def test_natural_question_set_is_well_formed():
    rows = qa.load_natural(NATURAL)
    assert len(rows) >= 50 and len({r["id"] for r in rows}) == len(rows)
    assert len({r["context"] for r in rows}) >= 10
    for row in rows:
        assert row["question"].endswith("?") and row["answers"]["text"]
        for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"]):
            assert row["context"][start : start + len(text)] == text
    raw = [json.loads(line) for line in NATURAL.read_text().splitlines()]
    assert [r["answers"]["answer_start"] for r in raw] == [r["answers"]["answer_start"] for r in rows]


def test_natural_set_answers_must_be_in_their_context(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"context": "Ann lives in Rome.", "question": "Where?", "answers": ["Paris"]}) + "\n"
    )
    with pytest.raises(TrainingError, match=r"bad\.jsonl:1: answer 'Paris' is not in its context"):
        qa.load_natural(bad)


def test_score_uses_the_squad_metric():
    rows = [
        {"id": "a", "question": "q", "context": "c", "answers": {"text": ["New York"], "answer_start": [0]}},
        {
            "id": "b",
            "question": "q",
            "context": "c",
            "answers": {"text": ["the Senate"], "answer_start": [0]},
        },
        {"id": "c", "question": "q", "context": "c", "answers": {"text": [], "answer_start": []}},
    ]
    result = qa.score(lambda questions, contexts: ["in New York", "Senate"][: len(questions)], rows)
    # "in New York": precision 2/3, recall 1; "Senate" = "the Senate" once articles are removed
    assert result == {"exact_match": 50.0, "f1": 90.0}  # and the unanswerable row is left out


# -- registration and the default ------------------------------------------------------------------


def test_qa_repo_id_matches_pipeline_defaults():
    from cove.pipelines.defaults import DEFAULTS

    assert qa.REPO_ID == recipes.DEFAULT_MODELS["question-answering"] == DEFAULTS["question-answering"]
    assert recipes.RECIPES["qa"] == (qa.__name__, ("question-answering",))


def test_the_question_answering_default_says_how_to_build_it(tmp_path, monkeypatch):
    import cove

    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path))  # nothing built here
    with pytest.raises(PipelineError, match=r"cove/minilm-qa.*cove setup-models"):
        cove.pipeline("question-answering")


def test_qa_recipe_trains_with_bf16_auto(tmp_path, monkeypatch, fake_cpu):
    from .test_recipes import _Stop, spy_training_arguments

    fake_cpu("avx2")
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "data"))
    seen = spy_training_arguments(monkeypatch)
    sources, rows = stand_in_documents(6)
    with pytest.raises(_Stop):
        qa.build(tmp_path / "out", documents=sources, labeler=stand_in_labeler(rows), progress=False)
    assert seen["bf16"] == "auto" and seen["resolved"] is False


@pytest.mark.slow
def test_qa_build_end_to_end(tmp_path, monkeypatch):
    import yaml

    import cove

    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "data"))
    sources, rows = stand_in_documents(40)
    natural = tmp_path / "natural.jsonl"
    context = "Sara Novak works for Vandelay Imports in Madrid. The weather was pleasant that afternoon."
    natural.write_text(json.dumps({"id": "n0", "context": context, "question": "Where does Sara Novak work?", "answers": ["Madrid"]}) + "\n")  # fmt: skip
    figures = qa.build(
        epochs=4,
        batch_size=8,
        learning_rate=3e-4,
        max_length=96,
        train_examples=300,
        test_examples=40,
        label_sentences=800,
        documents=sources,
        labeler=stand_in_labeler(rows),
        natural_set=natural,
        progress=False,
    )
    folder = recipes.default_model_dir("question-answering")
    assert str(folder) == figures["output_dir"]
    assert figures["published"].startswith(f"local:{qa.REPO_ID}")
    assert figures["f1_generated"] > 50 and figures["natural_questions"] == 1
    # parses are cached by the sentences' hash, apart from the NER recipe's labels
    assert list((tmp_path / "data" / "cache" / "qa-recipe").glob("syntax-labels-*.jsonl"))
    answer = cove.pipeline("question-answering")(question="Who works for Initech in Berlin?", context=context.replace("Sara Novak", "David Chen").replace("Vandelay Imports", "Initech").replace("Madrid", "Berlin"))  # fmt: skip
    assert answer["answer"] == "David Chen"
    card = (folder / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["pipeline_tag"] == "question-answering"
    assert meta["base_model"] == qa.BASE_MODEL and meta["datasets"] == ["sotu-lee-wiki-generated-qa"]
    results = meta["model-index"][0]["results"]
    assert [r["dataset"]["name"] for r in results] == ["sotu-lee-wiki-generated-qa", "cove-qa-natural"]
    natural_scores = {"exact_match": figures["exact_match_natural"], "f1": figures["f1_natural"]}
    assert {m["type"]: m["value"] for m in results[1]["metrics"]} == natural_scores
    assert "## This build" in card


# -- the real default model, when this machine has built it ----------------------------------------


def _built_default():
    try:
        return recipes.default_model_dir("question-answering")
    except Exception:
        return None


@pytest.mark.skipif(
    _built_default() is None, reason="the default QA model is not built (cove setup-models qa)"
)
def test_the_tutorial_question_on_the_built_default_model():
    import cove

    answer = cove.pipeline("question-answering")(question=TUTORIAL_QUESTION, context=TUTORIAL_CONTEXT)
    assert answer["answer"] == "New York"
    assert TUTORIAL_CONTEXT[answer["start"] : answer["end"]] == "New York"
