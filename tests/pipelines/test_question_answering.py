"""question-answering against transformers 4.57.6's pipeline (transformers 5 removed it), run in a subprocess."""

from __future__ import annotations

import json

import pytest

import cove
from cove.errors import PipelineError
from tests.pipelines.test_pipelines_parity import assert_same
from tests.reference4 import run_reference

pytestmark = pytest.mark.parity

CONTEXT = (
    "Hugging Face Inc. is a company based in New York City. Its headquarters are in DUMBO, therefore very "
    "close to the Manhattan Bridge. The company was founded in 2016 by Clément Delangue, Julien Chaumond and "
    "Thomas Wolf. It develops tools for building applications using machine learning, notably the Transformers "
    "library for natural language processing, and a platform that lets users share models and datasets."
)
QUESTIONS = ["Where is Hugging Face based?", "Who founded the company?", "When was it founded?"]

REFERENCE = """
import json, sys
from transformers import pipeline
p = json.loads(sys.stdin.read())
qa = pipeline("question-answering", model=p["model"], tokenizer=p["model"])
out = []
for call in p["calls"]:
    r = qa(**call)
    out.append(json.loads(json.dumps(r, default=float)))
print(json.dumps(out))
"""


def calls():
    long_context = " ".join([CONTEXT] * 6)
    return [
        {"question": QUESTIONS[0], "context": CONTEXT},
        {"question": QUESTIONS, "context": CONTEXT},
        {"question": QUESTIONS[1], "context": CONTEXT, "top_k": 3},
        {"question": QUESTIONS[2], "context": CONTEXT, "handle_impossible_answer": True, "top_k": 2},
        {"question": QUESTIONS[0], "context": CONTEXT, "max_answer_len": 3, "align_to_words": False},
        {"question": QUESTIONS[1], "context": long_context, "max_seq_len": 64, "doc_stride": 16, "top_k": 2},
        {"question": QUESTIONS[:2], "context": [CONTEXT, long_context], "max_seq_len": 96, "doc_stride": 32},
    ]


@pytest.mark.parametrize("family", ["bert", "distilbert", "roberta"])
def test_question_answering_matches_transformers4(models, family):
    folder = models(family, "qa")
    expected = run_reference(REFERENCE, {"model": folder, "calls": calls()})
    qa = cove.pipeline("question-answering", model=folder)
    got = [qa(**call) for call in calls()]
    json.dumps(got)
    assert_same(got, expected)


def test_question_answering_positional_and_dict_inputs(models):
    qa = cove.pipeline("question-answering", model=models("bert", "qa"))
    one = qa(question=QUESTIONS[0], context=CONTEXT)
    assert set(one) == {"score", "start", "end", "answer"}
    assert CONTEXT[one["start"] : one["end"]] == one["answer"]
    assert qa(QUESTIONS[0], CONTEXT) == one
    assert qa({"question": QUESTIONS[0], "context": CONTEXT}) == one
    assert qa([{"question": QUESTIONS[0], "context": CONTEXT}] * 2) == [one, one]


def test_question_answering_bad_input(models):
    qa = cove.pipeline("question-answering", model=models("bert", "qa"))
    with pytest.raises(PipelineError, match="context"):
        qa(question="Where?")
    with pytest.raises(PipelineError, match="empty"):
        qa(question="Where?", context="")
    with pytest.raises(PipelineError, match="None"):
        qa({"question": None, "context": CONTEXT})
    with pytest.raises(PipelineError, match="top_k"):
        qa(question="Where?", context=CONTEXT, top_k=0)
    with pytest.raises(PipelineError, match="doc_stride"):
        qa(question="Where?", context=CONTEXT, doc_stride=500, max_seq_len=64)
    with pytest.raises(PipelineError, match="2 questions but 1 contexts"):
        qa(question=["a", "b"], context=["c"])
