import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_import_cove_is_lazy():
    out = _run(
        "import sys, cove; print(sorted(m for m in ('torch', 'pyarrow', 'fastapi', 'numpy') if m in sys.modules))"
    )
    assert out == "[]"


def test_import_cove_under_budget():
    code = "import time; t = time.perf_counter(); import cove; print(time.perf_counter() - t)"
    best = min(float(_run(code)) for _ in range(3))  # best of three: the machine is shared and noisy
    assert best < 0.3, f"import cove took {best:.3f}s"


def test_lazy_exports_resolve():
    out = _run("import cove; print(cove.AutoModel.__module__, cove.BertModel.__name__)")
    assert out == "cove.models.auto BertModel"


def test_subpackages_are_attributes():
    out = _run(
        "import cove, sys; print(cove.metrics.load('accuracy').compute(predictions=[1], references=[1]))"
    )
    assert out == "{'accuracy': 1.0}"


def test_tutorial_class_names_import():
    out = _run(
        "from cove import GPT2LMHeadModel, GPT2Tokenizer, GPT2TokenizerFast, BertTokenizerFast, "
        "T5ForConditionalGeneration, T5Tokenizer, BartForConditionalGeneration, BartTokenizer, MarianMTModel, "
        "MarianTokenizer, LlamaTokenizerFast, DistilBertTokenizer, RobertaTokenizerFast; "
        "print(GPT2Tokenizer is GPT2TokenizerFast, BartTokenizer.__name__, MarianMTModel.__module__)"
    )
    assert out == "True RobertaTokenizer cove.models.marian"
