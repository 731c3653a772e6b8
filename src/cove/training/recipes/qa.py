"""Recipe: Cove's default question-answering model.

No package ships extractive-QA weights or SQuAD-scale data, so this recipe makes its own: it fine-tunes the
bundled all-MiniLM-L6-v2 (``AutoModelForQuestionAnswering``, start/end logits over the context tokens) on
question/answer pairs generated from the public-domain text the NER recipe reads (ner.py's Lee news,
Wikipedia and State of the Union documents), labelled by the same spaCy pipeline, run here with its tagger,
parser and lemmatizer as well (``spacy_labeler.py --syntax``):

- contexts: paragraph windows of consecutive sentences of one document (about 35-110 words);
- answers: entity spans with their OntoNotes types (PERSON, ORG, GPE, LOC, FAC, DATE, TIME, NORP, MONEY,
  CARDINAL, PERCENT, QUANTITY, EVENT, LAW, WORK_OF_ART, PRODUCT, LANGUAGE), in their position in the window;
- questions, built from the span's sentence with the dependency parse: the constituent holding the span is
  replaced by a wh-phrase typed by the span (who / whom / where / when / what year / which organisation /
  what country / how many ...), fronted with subject-auxiliary inversion or do-support ("Roosevelt signed
  the act in 1935" -> "When did Roosevelt sign the act?", "What law did Roosevelt sign in 1935?"), some
  optional modifiers dropped, or left in place ("Roosevelt signed the act in what year?") when fronting
  does not apply;
- unanswerable variants: a question paired with another window of its document that lacks the answer
  (the span's label is then the [CLS] token, which ``handle_impossible_answer=True`` reads).

Whole documents are held out; exact match and F1 (cove's ``squad`` metric, through the pipeline) on their
generated questions, and on the hand-written natural questions of ``tests/training/data/qa_natural.jsonl``
when that file is there (a checkout), go into the model card.

    python recipes/qa.py [--output DIR] [--epochs 1] [--fp32 | --bf16]   # or: cove setup-models qa

Precision: bf16 autocast only where the CPU computes bf16 natively and faster than fp32
(``TrainingArguments(bf16="auto")``, see cove.hardware), fp32 elsewhere; ``--fp32`` / ``--bf16`` force one.

Cost: 6,000 questions x 1 epoch (188 steps of 32, about 98 tokens each, length-grouped), with the embeddings
and the 2 lower layers frozen (backward stops above them). Measured (``COVE_BF16=emulated cove setup-models
qa``, i.e. fp32, on the shared 2-core dev machine, an AMD EPYC with AVX-512 and no AMX, at load average
4.4-5.3; spaCy and the downloads already there from the NER recipe): parse 10,910 sentences 50 s, train
446 s, 525 s wall and 498 CPU-s in all; held-out generated questions EM 74.5 / F1 83.8, the 63 natural
questions EM 69.8 / F1 77.2. Measured alternatives: 4,000 questions with nothing frozen (lr 1e-4: natural
F1 68.4; lr 2e-4: 62.7), 8,000 questions (natural F1 83.1, but 663 CPU-s: over budget on a loaded machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cove.errors import TrainingError
from cove.training.recipes import ner

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
REPO_ID = "cove/minilm-qa"
BUDGET_SECONDS = (
    600  # wall time of a build on an idle 2-core machine without AMX (fp32); `cove setup-models` checks it
)
NATURAL_SET = Path(__file__).resolve().parents[4] / "tests" / "training" / "data" / "qa_natural.jsonl"

Window = tuple[str, list[str]]  # (document id, consecutive sentences)


# -- contexts ----------------------------------------------------------------------------------


def paragraph_windows(
    documents: Iterable[ner.Document], rng: random.Random, min_words: int = 35, max_words: int = 110
) -> list[Window]:
    """Each document cut into runs of consecutive sentences of about ``min_words``-``max_words`` words (the
    target length drawn per window, so contexts vary in length as paragraphs do)."""
    windows: list[Window] = []
    for doc_id, sentences in documents:
        current: list[str] = []
        words, target = 0, rng.randint(min_words, max_words)
        for sentence in sentences:
            n = len(sentence.split())
            if current and words + n > target:
                windows.append((doc_id, current))
                current, words, target = [], 0, rng.randint(min_words, max_words)
            current.append(sentence)
            words += n
        if current and windows and windows[-1][0] == doc_id and words < min_words // 2:
            windows[-1] = (doc_id, windows[-1][1] + current)  # a short tail joins the window before it
        elif current:
            windows.append((doc_id, current))
    return windows


def choose_windows(sources: dict[str, list[ner.Document]], sentences: int, seed: int) -> list[Window]:
    """About ``sentences`` sentences' worth of windows, an equal share from each source (all of a small
    source when its share is larger than it is), drawn across every document."""
    rng = random.Random(seed)
    pools = {name: paragraph_windows(docs, rng) for name, docs in sorted(sources.items())}
    chosen: list[Window] = []
    left, names = sentences, sorted(pools, key=lambda n: sum(len(w) for _, w in pools[n]))
    for k, name in enumerate(names):
        share = left // (len(names) - k)
        pool = pools[name]
        rng.shuffle(pool)
        taken = 0
        for window in pool:
            if taken >= share:
                break
            chosen.append(window)
            taken += len(window[1])
        left -= taken
    return chosen


# -- a parsed sentence -------------------------------------------------------------------------


@dataclass
class Parse:
    """One sentence as spaCy's ``--syntax`` labeller returned it, with the tree's children."""

    text: str
    tokens: list[str]
    idx: list[int]
    tag: list[str]
    pos: list[str]
    lemma: list[str]
    dep: list[str]
    head: list[int]
    entities: list[tuple[int, int, str]]
    children: list[list[int]] = field(default_factory=list)

    @classmethod
    def from_row(cls, text: str, row: dict[str, Any]) -> Parse:
        parse = cls(
            text,
            row["tokens"],
            row["idx"],
            row["tag"],
            row["pos"],
            row["lemma"],
            row["dep"],
            row["head"],
            [],
        )
        for start, end, label in row["entities"]:
            if label == "MONEY" and start > 0 and parse.tokens[start - 1] in ("$", "£", "€", "US$", "A$"):
                start -= 1  # "$ 5 million": the currency sign belongs to the answer
            parse.entities.append((int(start), int(end), str(label)))
        parse.children = [[] for _ in parse.tokens]
        for i, h in enumerate(parse.head):
            if h != i and 0 <= h < len(parse.tokens):
                parse.children[h].append(i)
        return parse

    def subtree(self, i: int) -> set[int]:
        out, stack = set(), [i]
        while stack:
            node = stack.pop()
            if node not in out:
                out.add(node)
                stack.extend(self.children[node])
        return out

    def root(self, start: int, end: int) -> int:
        """The token of [start, end) whose head lies outside it."""
        for i in range(start, end):
            if not start <= self.head[i] < end or self.head[i] == i:
                return i
        return end - 1

    def char_span(self, start: int, end: int) -> tuple[int, int]:
        return self.idx[start], self.idx[end - 1] + len(self.tokens[end - 1])

    def attached(self, i: int) -> bool:
        """Whether token ``i`` follows token ``i - 1`` with no space between them."""
        return i > 0 and self.idx[i - 1] + len(self.tokens[i - 1]) == self.idx[i]

    def render(self, indices: Iterable[int], subst: dict[int, str] | None = None, lower: bool = False) -> str:
        """The tokens at ``indices`` in sentence order, spaced as in the sentence (``subst`` replaces some;
        ``lower``: the first in lower case unless it is a proper noun or "I"; the sentence's first word is
        lowered too when it ends up inside)."""
        subst = subst or {}
        out, previous = "", None
        for i in sorted(indices):
            piece = subst.get(i, self.tokens[i])
            if not piece:
                continue
            common = i not in subst and self.pos[i] != "PROPN" and piece != "I"
            if common and ((i == 0 and out) or (not out and lower)):
                piece = piece[:1].lower() + piece[1:]
            if not out:
                out = piece
            else:
                glue = previous == i - 1 and self.attached(i) and i not in subst
                out += piece if glue else " " + piece
            previous = i
        return out


# -- question generation -------------------------------------------------------------------------

_SUBJECT = {"nsubj", "nsubjpass", "csubj", "csubjpass", "expl"}
_AUX = {"aux", "auxpass"}
_NEVER = {"punct", "cc", "conj", "parataxis", "mark", "discourse", "intj", "meta", "dep", "preconj"}
_OPTIONAL = {"advmod", "npadvmod", "advcl", "prep", "appos", "acl", "relcl"}
IN_SITU_WORDS = 18
_PLACE_PREPS = {"in", "at", "near", "inside", "within", "throughout", "across", "outside", "to", "into"}
_TIME_PREPS = {"in", "on", "at", "during", "by"}
_MONTHS = (
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
).split()
_TIME_WORDS = set(_MONTHS) | set(
    "monday tuesday wednesday thursday friday saturday sunday spring summer autumn fall winter "
    "century decade christmas easter".split()
)
COUNTRIES = set(
    "afghanistan albania algeria angola argentina armenia australia austria bangladesh belgium bolivia "
    "bosnia brazil britain bulgaria burma cambodia canada chile china colombia congo croatia cuba cyprus "
    "czechoslovakia denmark ecuador egypt england estonia ethiopia finland france georgia germany ghana "
    "greece guatemala haiti honduras hungary iceland india indonesia iran iraq ireland israel italy jamaica "
    "japan jordan kenya korea kosovo kuwait laos latvia lebanon liberia libya lithuania macedonia malaysia "
    "mexico mongolia morocco mozambique nepal netherlands nicaragua nigeria norway pakistan palestine panama "
    "paraguay peru philippines poland portugal romania russia rwanda scotland serbia singapore slovakia "
    "somalia spain sudan sweden switzerland syria taiwan tanzania thailand tunisia turkey uganda ukraine "
    "uruguay venezuela vietnam wales yemen yugoslavia zimbabwe america usa".split()
) | {
    "the united states", "united states", "the united kingdom", "united kingdom", "the soviet union",
    "soviet union", "new zealand", "south africa", "north korea", "south korea", "saudi arabia",
    "east timor", "the philippines", "the netherlands", "united states of america", "the u.s.", "u.s.",
    "the uk", "uk", "el salvador", "sri lanka", "the dominican republic", "costa rica", "puerto rico",
}  # fmt: skip
US_STATES = set(
    "alabama alaska arizona arkansas california colorado connecticut delaware florida hawaii idaho illinois "
    "indiana iowa kansas kentucky louisiana maine maryland massachusetts michigan minnesota mississippi "
    "missouri montana nebraska nevada ohio oklahoma oregon pennsylvania tennessee texas utah vermont "
    "virginia wisconsin wyoming".split()
) | {
    "new hampshire", "new jersey", "new mexico", "new york state", "north carolina", "north dakota",
    "rhode island", "south carolina", "south dakota", "west virginia", "queensland", "victoria",
    "tasmania", "new south wales", "western australia", "south australia",
}  # fmt: skip
_ORG_KINDS = [
    (r"\b(universit|college|school|academy|institute)", ["what university", "which institution"]),
    (r"\bparty\b|\bdemocrats?\b|\brepublicans?\b|\blabor\b|\bliberals?\b", ["which party", "what party"]),
    (r"\b(company|corporation|corp|inc|ltd|airlines?|bank|motors)\b", ["what company", "which company"]),
    (r"\b(department|ministry|agency|administration|commission|bureau|office|service|board|authority)\b",
     ["which agency", "what government body"]),
    (r"\b(court)\b", ["which court", "what court"]),
    (r"\b(congress|senate|house|parliament|assembly|council|legislature)\b",
     ["which body", "what legislative body", "who"]),
    (r"\b(army|navy|force|forces|corps|police|guard)\b", ["what force", "which military organization"]),
    (r"\b(united nations|nato|league|union|alliance|organization|organisation|association)\b",
     ["what organization", "which organization"]),
]  # fmt: skip


def _pick(rng: random.Random, options: list[str]) -> str:
    return options[rng.randrange(len(options))]


def _kind_date(text: str) -> str | None:
    """'year', 'date' or 'time' for a usable DATE span, None for relative ones ("last year", "today")."""
    low = text.lower()
    if re.fullmatch(r"(the )?(year )?\d{4}s?", low):
        return "year"
    if re.search(r"\d", low) or any(w in _TIME_WORDS for w in re.findall(r"[a-z]+", low)):
        return "date"
    return None


def typed_wh(label: str, text: str, role: str, rng: random.Random) -> str | None:
    """A wh-phrase for an entity of spaCy type ``label``: ``role`` is "subject", "object" or "pobj" (the
    object of a preposition). None when no good question word exists for it."""
    low = text.lower()
    if label == "PERSON":
        return "whom" if role == "pobj" else "who"
    if label == "ORG":
        for pattern, options in _ORG_KINDS:
            if re.search(pattern, low):
                choice = _pick(rng, options)
                return "what organization" if choice == "who" and role != "subject" else choice
        options = ["what organization", "which organization", "what group"]
        return _pick(rng, options + (["who"] if role == "subject" else []))
    if label == "GPE":
        if low in COUNTRIES or low.removeprefix("the ") in COUNTRIES:
            return _pick(rng, ["what country", "which country", "which nation"])
        if low in US_STATES:
            return _pick(rng, ["what state", "which state"])
        return _pick(rng, ["what city", "what place", "which city"])
    if label == "LOC":
        if re.search(r"\briver\b", low):
            return "what river"
        if re.search(r"\b(ocean|sea|gulf)\b", low):
            return "which sea"
        if re.search(r"\b(mount|mountains?)\b", low):
            return "what mountain"
        return _pick(rng, ["what region", "what place", "which area"])
    if label == "FAC":
        if re.search(r"\bbridge\b", low):
            return "what bridge"
        if re.search(r"\bairport\b", low):
            return "which airport"
        return _pick(rng, ["what place", "what building", "which facility"])
    if label == "DATE":
        kind = _kind_date(text)
        if kind is None:
            return None
        if re.search(r"\d.*\b(years?|months?|weeks?|days?|decades?)\b", low):
            return "how long"
        if kind == "year":
            return _pick(rng, ["what year", "which year"])
        if any(m in low.split() for m in _MONTHS) and not re.search(r"\d", low):
            return "what month"
        return _pick(
            rng,
            ["what date", "what day"] if re.search(r"\d{1,2}\b.*\d{4}|\d{4}.*\b\d{1,2}\b", low) else ["when"],
        )
    if label == "TIME":
        return "what time" if re.search(r"\d", low) else None
    if label == "NORP":
        if re.search(r"\b(democrat|republican|communist|socialist|liberal|conservative|labor)", low):
            return "which party"
        if re.search(r"\b(christian|muslim|islamic|jewish|catholic|protestant|buddhist|hindu)", low):
            return "what religion"
        return _pick(rng, ["what nationality", "which people", "what group"])
    if label == "MONEY":
        return _pick(rng, ["how much", "how much money"])
    if label == "CARDINAL":
        return "how many" if low not in ("one", "1") else None
    if label == "PERCENT":
        return _pick(rng, ["what percentage", "what percent"])
    if label == "QUANTITY":
        return _pick(
            rng,
            ["how much", "how far"] if re.search(r"mile|kilomet|km|feet|metre|meter", low) else ["how much"],
        )
    if label == "EVENT":
        return "which war" if re.search(r"\bwar\b", low) else _pick(rng, ["what event", "which event"])
    if label == "LAW":
        if re.search(r"\btreaty\b", low):
            return "what treaty"
        if re.search(r"\bamendment\b", low):
            return "which amendment"
        return _pick(rng, ["what law", "which act", "what legislation"])
    if label == "WORK_OF_ART":
        return _pick(rng, ["what work", "what title"])
    if label == "PRODUCT":
        return _pick(rng, ["what product", "what"])
    if label == "LANGUAGE":
        return "what language"
    return None  # ORDINAL and anything new


def _clause(parse: Parse, verb: int, exclude: set[int], rng: random.Random, drop: float) -> set[int]:
    """The tokens of ``verb``'s clause minus ``exclude``, coordinated and parenthetical parts, and (each with
    probability ``drop``) optional modifiers: the shorter questions people ask."""
    keep = parse.subtree(verb) - exclude
    for child in parse.children[verb]:
        if child in exclude:
            continue
        if parse.dep[child] in _NEVER or (parse.dep[child] in _OPTIONAL and rng.random() < drop):
            keep -= parse.subtree(child)
    return keep


def _clause_verb(parse: Parse, token: int) -> tuple[int, int] | None:
    """(verb, child): the nearest verb above ``token`` that has a subject, and its dependent holding it."""
    node = token
    for _ in range(12):
        head = parse.head[node]
        if head == node:
            return None
        if parse.pos[head] in ("VERB", "AUX") and any(parse.dep[c] in _SUBJECT for c in parse.children[head]):
            return head, node
        node = head
    return None


def _inverted(parse: Parse, verb: int, moved: set[int], rng: random.Random, drop: float) -> str | None:
    """``verb``'s clause, minus ``moved``, in question order: auxiliary (or do-support) + subject + rest."""
    subjects = [c for c in parse.children[verb] if parse.dep[c] in _SUBJECT]
    if not subjects:
        return None
    subject = parse.subtree(subjects[0])
    if subject & moved:
        return None
    if any(parse.tag[c] == "TO" for c in parse.children[verb]):
        return None  # an infinitive has no tense to invert
    aux = [c for c in parse.children[verb] if parse.dep[c] in _AUX and c < verb]
    body = _clause(parse, verb, moved | subject, rng, drop)
    subject_text = parse.render(subject, lower=True)
    if aux:
        body.discard(aux[0])
        return " ".join(
            x for x in (parse.tokens[aux[0]].lower(), subject_text, parse.render(body, lower=True)) if x
        )
    if parse.lemma[verb] == "be":
        body.discard(verb)
        return " ".join(
            x for x in (parse.tokens[verb].lower(), subject_text, parse.render(body, lower=True)) if x
        )
    do = {"VBD": "did", "VBZ": "does", "VBP": "do"}.get(parse.tag[verb])
    if do is None or parse.pos[verb] != "VERB":
        return None
    rest = parse.render(body, subst={verb: parse.lemma[verb].lower()}, lower=True)
    return " ".join(x for x in (do, subject_text, rest) if x)


def _question(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip().rstrip(" .,;:!?-—")
    return text[:1].upper() + text[1:] + "?"


def _replace_entity(parse: Parse, start: int, end: int, wh: str) -> tuple[set[int], dict[int, str]]:
    """(tokens to drop, substitutions) replacing [start, end) by ``wh``: a possessive "'s" -> "whose", a
    person's title goes with the name ("General [Myers]" -> "who"), "a [million] jobs" -> "how many jobs"."""
    dropped = set(range(start + 1, end))
    root = parse.root(start, end)
    case = [c for c in parse.children[root] if parse.dep[c] == "case" and c >= end]
    if case and wh in ("who", "whom"):
        dropped.update(case)
        wh = "whose"
    if wh in ("who", "whom", "whose"):
        while start > 0 and parse.head[start - 1] == root and parse.dep[start - 1] == "compound":
            start -= 1
            dropped.add(start + 1)
    if wh.startswith("how ") and parse.dep[root] == "nummod":
        noun = parse.head[root]
        dropped.update(c for c in parse.children[noun] if parse.dep[c] in ("det", "quantmod") and c < start)
    dropped.discard(start)
    return dropped, {start: wh}


def entity_questions(
    parse: Parse, start: int, end: int, label: str, rng: random.Random, drop: float | None = None
) -> list[str]:
    """Questions whose answer is the entity [start, end) of ``parse``: the fronted form when the parse
    allows it (first), then the in-place one. ``drop``: the chance that each optional modifier of the clause
    is left out of the fronted form (default: 0, 0.5 or 0.8, drawn per question)."""
    if end - start > 8:
        return []
    root = parse.root(start, end)
    if label == "NORP" and (parse.dep[root] in ("amod", "compound") or parse.pos[root] == "ADJ"):
        return []  # "the Palestinian territories": no natural question asks for the adjective
    head = parse.head[root]
    role = "pobj" if parse.dep[root] == "pobj" else "subject" if parse.dep[root] in _SUBJECT else "object"
    prep = parse.tokens[head].lower() if role == "pobj" else ""
    wh = typed_wh(label, parse.render(range(start, end)), role, rng)
    if wh is None:
        return []
    drop = rng.choice((0.0, 0.5, 0.8)) if drop is None else drop
    found: list[str] = []
    clause = _clause_verb(parse, root)
    if clause is not None:
        verb, child = clause
        child_tree = parse.subtree(child)
        if parse.dep[child] in _SUBJECT:
            if child == root:
                phrase = wh
            elif len(child_tree) - (end - start) <= 6:
                dropped, subst = _replace_entity(parse, start, end, wh)
                phrase = parse.render(child_tree - dropped, subst)
            else:
                phrase = ""
            if phrase:
                body = _clause(parse, verb, child_tree, rng, drop)
                found.append(_question(f"{phrase} {parse.render(body, lower=True)}"))
        else:
            moved: set[int] | None = None
            bare = {"GPE": "where", "LOC": "where", "FAC": "where", "DATE": "when", "TIME": "when"}.get(label)
            if wh in ("when", "how long"):
                bare = wh
            if role == "pobj" and parse.dep[head] in ("prep", "agent") and bare:
                preps = _PLACE_PREPS if bare == "where" else _TIME_PREPS
                if bare == wh or (prep in preps and (bare == "where" or rng.random() < 0.6)):
                    moved, phrase = parse.subtree(head), bare
            if moved is None and len(child_tree) - (end - start) <= 4:
                dropped, subst = _replace_entity(parse, start, end, wh)
                moved, phrase = child_tree, parse.render(child_tree - dropped, subst)
            if moved is not None:
                rest = _inverted(parse, verb, moved, rng, drop)
                if rest:
                    found.append(_question(f"{phrase} {rest}"))
    in_situ_wh = "whom" if wh == "who" and role == "pobj" else wh
    dropped, subst = _replace_entity(parse, start, end, in_situ_wh)
    keep = set(range(len(parse.tokens)))
    if clause is not None:  # the entity's own clause, not the whole sentence
        clause_tokens = _clause(parse, clause[0], set(), rng, 0.0)
        if set(range(start, end)) <= clause_tokens and len(clause_tokens) >= 5:
            keep = clause_tokens
    if len(keep) > IN_SITU_WORDS:  # a long sentence: the words around the entity
        near = sorted(keep, key=lambda i: abs(i - start) if i < start else abs(i - end + 1))
        keep = set(near[: IN_SITU_WORDS + end - start])
    found.append(_question(parse.render(keep - dropped, subst)))
    return [q for q in found if len(q.split()) - len(wh.split()) >= 2]


# -- examples ------------------------------------------------------------------------------------


def window_examples(
    windows: list[Window],
    parses: dict[str, Parse],
    rng: random.Random,
    per_window: int = 3,
    unanswerable_share: float = 0.15,
    in_situ_share: float = 0.2,
) -> list[dict[str, Any]]:
    """Rows {"doc", "id", "question", "context", "answers": {"text", "answer_start"}}: up to ``per_window``
    questions about different entities of each window (fronted questions, ``in_situ_share`` left in
    place), and ``unanswerable_share`` of them moved to another window of the document without the answer."""
    by_doc: dict[str, list[int]] = {}
    for w, (doc_id, _) in enumerate(windows):
        by_doc.setdefault(doc_id, []).append(w)
    contexts = [" ".join(sentences) for _, sentences in windows]
    rows: list[dict[str, Any]] = []
    for w, (doc_id, sentences) in enumerate(windows):
        candidates = []
        offset = 0
        for sentence in sentences:
            parse = parses[sentence]
            for start, end, label in parse.entities:
                candidates.append((offset, parse, start, end, label))
            offset += len(sentence) + 1
        rng.shuffle(candidates)
        asked: set[str] = set()
        for offset, parse, start, end, label in candidates:
            if len(asked) >= per_window:
                break
            a, b = parse.char_span(start, end)
            answer = parse.text[a:b]
            if answer.lower() in asked:
                continue
            questions = entity_questions(parse, start, end, label, rng)
            if not questions:
                continue
            question = questions[-1] if len(questions) == 1 or rng.random() < in_situ_share else questions[0]
            asked.add(answer.lower())
            row: dict[str, Any] = {
                "doc": doc_id,
                "id": f"{doc_id}#{w}#{len(asked)}",
                "question": question,
                "context": contexts[w],
                "answers": {"text": [answer], "answer_start": [offset + a]},
                "type": label,
            }
            if rng.random() < unanswerable_share:
                others = [o for o in by_doc[doc_id] if o != w and answer.lower() not in contexts[o].lower()]
                if others:
                    row["context"] = contexts[rng.choice(others)]
                    row["answers"] = {"text": [], "answer_start": []}
            assert not row["answers"]["text"] or row["context"][offset + a : offset + b] == answer
            rows.append(row)
    return rows


def tokenize(tokenizer: Any, rows: list[dict[str, Any]], max_length: int) -> Any:
    """Features with start/end token positions of the answer ([CLS] = 0 for no answer, or an answer cut off
    by ``max_length``, which drops nothing: such rows are rare with these short contexts)."""
    import cove

    def encode(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(
            batch["question"],
            batch["context"],
            truncation="only_second",
            max_length=max_length,
            return_offsets_mapping=True,
        )
        starts, ends = [], []
        for i, answers in enumerate(batch["answers"]):
            start = end = 0
            if answers["text"]:
                a = answers["answer_start"][0]
                b = a + len(answers["text"][0])
                sequence = encoded.sequence_ids(i)
                offsets = encoded["offset_mapping"][i]
                inside = [
                    t for t, s in enumerate(sequence) if s == 1 and offsets[t][0] < b and offsets[t][1] > a
                ]
                if inside and offsets[inside[0]][0] <= a and offsets[inside[-1]][1] >= b:
                    start, end = inside[0], inside[-1]
            starts.append(start)
            ends.append(end)
        encoded["start_positions"] = starts
        encoded["end_positions"] = ends
        encoded.pop("offset_mapping")
        return dict(encoded)

    columns = list(rows[0])
    return cove.Dataset.from_list(rows).map(encode, batched=True, remove_columns=columns)


# -- evaluation ----------------------------------------------------------------------------------


def load_natural(path: str | Path) -> list[dict[str, Any]]:
    """The hand-written set: one {"id", "context", "question", "answers": [...]} per line."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines()):
        if line.strip():
            row = json.loads(line)
            answers = row["answers"]
            texts = answers["text"] if isinstance(answers, dict) else list(answers)
            for text in texts:
                if text not in row["context"]:
                    raise TrainingError(f"{path}:{n + 1}: answer {text!r} is not in its context.")
            starts = [row["context"].index(t) for t in texts]
            rows.append(
                {**row, "id": row.get("id", str(n)), "answers": {"text": texts, "answer_start": starts}}
            )
    return rows


def score(
    answer: Callable[[list[str], list[str]], list[str]], rows: list[dict[str, Any]]
) -> dict[str, float]:
    """Exact match and F1 (0-100, cove's squad metric) of ``answer(questions, contexts)`` on answerable rows."""
    from cove.metrics import load as load_metric

    rows = [r for r in rows if r["answers"]["text"]]
    predicted = answer([r["question"] for r in rows], [r["context"] for r in rows])
    result = load_metric("squad").compute(
        predictions=[{"id": r["id"], "prediction_text": p} for r, p in zip(rows, predicted)],
        references=[{"id": r["id"], "answers": r["answers"]} for r in rows],
    )
    return {"exact_match": round(float(result["exact_match"]), 2), "f1": round(float(result["f1"]), 2)}


def pipeline_answers(pipe: Any) -> Callable[[list[str], list[str]], list[str]]:
    def answer(questions: list[str], contexts: list[str]) -> list[str]:
        out = pipe(question=questions, context=contexts)
        out = out if isinstance(out, list) else [out]
        return [o["answer"] for o in out]

    return answer


def score_with_no_answer(pipe: Any, rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """squad_v2 exact/F1 (0-100) over answerable and unanswerable rows with handle_impossible_answer=True,
    overall and for the unanswerable ones (the share answered with ""); None without unanswerable rows."""
    from cove.metrics import load as load_metric

    if all(r["answers"]["text"] for r in rows):
        return None
    out = pipe(
        question=[r["question"] for r in rows],
        context=[r["context"] for r in rows],
        handle_impossible_answer=True,
    )
    out = out if isinstance(out, list) else [out]
    result = load_metric("squad_v2").compute(
        predictions=[
            {"id": r["id"], "prediction_text": o["answer"], "no_answer_probability": 0.0}
            for r, o in zip(rows, out)
        ],
        references=[{"id": r["id"], "answers": r["answers"]} for r in rows],
    )
    keys = {
        "exact": "exact_match",
        "f1": "f1",
        "HasAns_f1": "answerable_f1",
        "NoAns_exact": "no_answer_exact",
    }
    return {name: round(float(result[key]), 2) for key, name in keys.items()}


# -- the recipe ------------------------------------------------------------------------------


def build(
    output_dir: str | Path | None = None,
    *,
    epochs: float = 1.0,
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    max_length: int = 192,
    train_examples: int = 6000,
    test_examples: int = 600,
    label_sentences: int = 11000,
    frozen_layers: int = 2,
    seed: int = 42,
    bf16: bool | str = "auto",  # bf16 autocast only where the CPU computes bf16 natively and faster
    base_model: str = BASE_MODEL,
    labeler: Callable[[list[str]], list[dict[str, Any]]] | None = None,
    documents: dict[str, list[ner.Document]] | None = None,
    natural_set: str | Path | None = NATURAL_SET,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate questions, fine-tune, score on held-out documents (and the natural set), save and publish.

    ``documents`` (by source) and ``labeler`` replace the downloaded text and spaCy (tests use stand-ins).
    """
    import cove
    from cove.hardware import cpu_summary
    from cove.training.recipes import data_dir, local_model_dir, publish, save_with_card, training_arguments
    from cove.training.recipes.sources import pip_install_target
    from cove.training.utils import set_seed

    started, started_cpu = time.time(), _cpu_seconds()
    output_dir = Path(output_dir) if output_dir else local_model_dir(REPO_ID)
    if documents is None:
        documents = ner.source_documents(data_dir() / "downloads")
    if labeler is None:
        env = pip_install_target(ner.SPACY_REQUIREMENTS, data_dir() / "tools" / "spacy", "spaCy")
        labeler = ner.spacy_labeler(env, syntax=True)
    windows = choose_windows(documents, label_sentences, seed)
    sentences = sorted({s for _, window in windows for s in window})
    print(f"parsing {len(sentences)} sentences of {len(windows)} paragraphs ...", file=sys.stderr, flush=True)
    labelled = ner.cached_labels(sentences, labeler, data_dir() / "cache" / "qa-recipe", variant="syntax")
    parses = {s: Parse.from_row(s, row) for s, row in zip(sentences, labelled)}
    parsed = time.time()

    rows = window_examples(windows, parses, random.Random(seed))
    train_rows, test_rows = ner.split_by_document(rows, test_size=0.1, seed=seed)
    train_rows, test_rows = train_rows[:train_examples], test_rows[:test_examples]
    if not train_rows or not test_rows:
        raise TrainingError(f"Not enough generated questions to train and test on ({len(rows)} in all).")

    tokenizer = cove.AutoTokenizer.from_pretrained(base_model)
    train = tokenize(tokenizer, train_rows, max_length)
    set_seed(seed)  # the new start/end head is drawn from torch's RNG: seeded, a build is repeatable
    model = cove.AutoModelForQuestionAnswering.from_pretrained(base_model)
    freeze_lower_layers(model, frozen_layers)
    with tempfile.TemporaryDirectory(prefix="cove-recipe-") as work:
        args = training_arguments(
            work,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            bf16=bf16,
            progress=progress,
        )
        trainer = cove.Trainer(
            model,
            args,
            train_dataset=train,
            processing_class=tokenizer,
            data_collator=cove.DataCollatorWithPadding(tokenizer),
        )
        result = trainer.train()
        trained = time.time()
        save_with_card(
            trainer,
            output_dir,
            base_model,
            REPO_ID,
            dataset_name="sotu-lee-wiki-generated-qa",
            dataset_revision=f"sha256:{examples_digest(rows)}",
            tags=["question-answering", "extractive-qa"],
        )
    pipe = cove.pipeline("question-answering", model=str(output_dir), batch_size=32)
    results = {"generated": score(pipeline_answers(pipe), test_rows)}
    natural = load_natural(natural_set) if natural_set and Path(natural_set).is_file() else None
    if natural:
        results["natural"] = score(pipeline_answers(pipe), natural)
    with_no_answer = score_with_no_answer(pipe, test_rows)
    figures = {
        "output_dir": str(output_dir),
        "paragraphs": len(windows),
        "parsed_sentences": len(sentences),
        "generated_questions": len(rows),
        "train_examples": len(train),
        "test_questions": sum(bool(r["answers"]["text"]) for r in test_rows),
        **{f"{k}_{name}": v for name, scores in results.items() for k, v in scores.items()},
        "natural_questions": len(natural) if natural else 0,
        **{f"{k}_with_no_answer": v for k, v in (with_no_answer or {}).items()},
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "train_precision": "bf16 autocast" if args.bf16 else "fp32",
        "cpu": cpu_summary(),
        "threads": _threads(),
        "load_average": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
        "parse_seconds": round(parsed - started, 1),
        "train_seconds": round(trained - parsed, 1),
    }
    figures["total_seconds"] = round(time.time() - started, 1)
    figures["cpu_seconds"] = round(_cpu_seconds() - started_cpu, 1)
    write_card_results(output_dir / "README.md", results, figures, len(natural) if natural else 0)
    figures["published"] = publish(output_dir, REPO_ID, "Build with the question-answering recipe")
    if progress:
        print(
            f"qa: held-out EM {figures['exact_match_generated']} F1 {figures['f1_generated']}"
            + (f", natural EM {figures['exact_match_natural']} F1 {figures['f1_natural']}" if natural else "")
            + f"; {figures['total_seconds']} s wall (load {figures['load_average']}, {figures['train_precision']})",
            file=sys.stderr,
        )
    return figures


def freeze_lower_layers(model: Any, layers: int) -> None:
    """Freeze the embeddings and the first ``layers`` encoder layers (none when 0): backward then stops
    above them, which saves a share of each step's time."""
    if layers <= 0:
        return
    backbone = getattr(model, model.base_model_prefix)
    for module in (backbone.embeddings, *backbone.layers[:layers]):
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def _cpu_seconds() -> float:
    """CPU seconds of this process and its children (spaCy, pip)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def examples_digest(rows: list[dict[str, Any]]) -> str:
    """sha256 of the generated examples: the training data's fingerprint."""
    hasher = hashlib.sha256()
    for row in rows:
        hasher.update(json.dumps([row["id"], row["question"], row["context"], row["answers"]]).encode())
    return hasher.hexdigest()


def write_card_results(
    card: Path, results: dict[str, dict[str, float]], figures: dict[str, Any], natural: int
) -> None:
    """Put the pipeline tag and the exact-match/F1 results into the card's YAML (model-index) and body."""
    import yaml

    text = card.read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    meta["pipeline_tag"] = "question-answering"
    names = {
        "generated": ("sotu-lee-wiki-generated-qa", "held-out documents' generated questions"),
        "natural": (
            "cove-qa-natural",
            f"{natural} hand-written questions (tests/training/data/qa_natural.jsonl)",
        ),
    }
    meta["model-index"] = [
        {
            "name": REPO_ID,
            "results": [
                {
                    "task": {"type": "question-answering", "name": "Question Answering"},
                    "dataset": {"name": names[key][0], "type": names[key][0], "split": "test"},
                    "metrics": [
                        {"type": "exact_match", "value": scores["exact_match"], "name": "Exact Match"},
                        {"type": "f1", "value": scores["f1"], "name": "F1"},
                    ],
                }
                for key, scores in results.items()
            ],
        }
    ]
    lines = ["", "## This build", "", "| evaluation | exact match | F1 |", "|---|---|---|"]
    lines += [f"| {names[k][1]} | {v['exact_match']} | {v['f1']} |" for k, v in results.items()]
    if "f1_with_no_answer" in figures:
        lines += [
            f"| held-out questions with unanswerable ones, `handle_impossible_answer=True` (squad_v2) | "
            f"{figures['exact_match_with_no_answer']} | {figures['f1_with_no_answer']} |"
        ]
    lines += [
        "",
        f"{figures['train_examples']} training questions over {figures['paragraphs']} paragraphs, "
        f"{figures['steps']} steps, {figures['train_precision']} on {figures['cpu']} ({figures['threads']} "
        f"threads, load average {figures['load_average']}): parsing {figures['parse_seconds']} s, training "
        f"{figures['train_seconds']} s, {figures['total_seconds']} s wall and {figures['cpu_seconds']} CPU-s in all.",
        "",
    ]
    dumped = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    card.write_text(f"---\n{dumped}---\n{body.rstrip()}\n" + "\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from cove.training.recipes import precision_arg, print_figures, recipe_parser

    parser = recipe_parser(__doc__, learning_rate=1e-4)
    parser.set_defaults(epochs=1.0)
    parser.add_argument("--train-examples", type=int, default=6000)
    parser.add_argument("--label-sentences", type=int, default=11000)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument(
        "--frozen-layers", type=int, default=2, help="freeze the embeddings and N lower layers"
    )
    parser.add_argument("--natural", default=str(NATURAL_SET), help="the hand-written questions to score on")
    args = parser.parse_args(argv)
    figures = build(
        args.output,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_length=args.max_length,
        train_examples=args.train_examples,
        label_sentences=args.label_sentences,
        frozen_layers=args.frozen_layers,
        seed=args.seed,
        bf16=precision_arg(args),
        natural_set=args.natural,
    )
    print_figures(figures)
    return figures


if __name__ == "__main__":
    main()
