"""Sentence splitting for extractive summarization: punctuation followed by space and a capital, a digit or
an opening quote ends a sentence, except after common abbreviations and single initials; blank lines and
line breaks between paragraphs always do."""

from __future__ import annotations

import re

# lower-cased, without the final period
ABBREVIATIONS = frozenset(
    {
        "e.g", "i.e", "et al", "etc", "cf", "vs", "fig", "figs", "eq", "eqs", "sec", "tab", "no", "nos", "vol",
        "pp", "p", "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "inc", "ltd", "co", "corp", "dept",
        "approx", "resp", "u.s", "u.k", "a.m", "p.m", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
        "sept", "oct", "nov", "dec", "ref", "refs", "al", "ch", "chap", "art",
    }
)  # fmt: skip

_BOUNDARY = re.compile(r"""([.!?…]+["'”’)\]]*)\s+(?=["'“‘(\[]?[A-Z0-9])""")
_PARAGRAPH = re.compile(r"\n\s*\n|\r\n\s*\r\n")


def _ends_with_abbreviation(text: str) -> bool:
    match = re.search(r"(?:^|[\s(\[])((?:[A-Za-z]\.)*[A-Za-z]+)\.$", text)
    if match is None:
        return False
    word = match.group(1).lower()
    if word in ABBREVIATIONS or word.replace(".", "") in {a.replace(".", "") for a in ABBREVIATIONS}:
        return True
    if re.fullmatch(r"[A-Za-z]", word):  # an initial: "J. Smith"
        return True
    return bool(re.search(r"\bet al$", text[:-1].lower()))


def split_sentences(text: str) -> list[str]:
    """The sentences of text, stripped, in order; empty pieces dropped."""
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        start = 0
        for match in _BOUNDARY.finditer(paragraph):
            end = match.end(1)
            candidate = paragraph[start:end]
            if match.group(1) == "." and _ends_with_abbreviation(candidate):
                continue
            sentences.append(candidate.strip())
            start = match.end()
        tail = paragraph[start:].strip()
        if tail:
            sentences.append(tail)
    return [s for s in sentences if s]
