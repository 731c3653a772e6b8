"""A live `cove serve` on 127.0.0.1 per test module, with tiny random models pushed into it by the stock
huggingface_hub client (each with a card naming its task) and the bundled models imported as `cove serve`
imports them on first start."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.server.conftest import LiveHub, _online_to_localhost, start_hub  # noqa: F401  # the fixture too

transformers = pytest.importorskip("transformers")

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM = "HuggingFaceTB/SmolLM2-135M-Instruct"
NLI_LABELS = ["contradiction", "neutral", "entailment"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def card(task: str | None) -> str:
    return f"---\npipeline_tag: {task}\n---\n# A tiny test model\n" if task else "# no metadata\n"


@contextlib.contextmanager
def online() -> Iterator[None]:
    """huggingface_hub online for a module-scoped fixture (the suite runs offline; these clients only ever
    talk to the 127.0.0.1 server the module started)."""
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        yield


def push(hub: LiveHub, repo_id: str, folder: str | Path, task: str | None, *, private: bool = False) -> str:
    """Upload folder (+ a README naming task) as repo_id with the owner's token; returns the commit id."""
    folder = Path(folder)
    (folder / "README.md").write_text(card(task))
    owner = repo_id.split("/")[0]
    with online():
        api = hub.api(owner if owner in hub.tokens else "alice")
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=f"add {task}")
    return info.oid


def encoder(tmp: Path, name: str, head: str, labels: list[str] | None = None, family: str = "bert") -> Path:
    from tests.pipelines.conftest import make_model

    return make_model(tmp / name, family, head, labels)


def causal_lm(tmp: Path, name: str = "tiny-llama") -> Path:
    """A tiny random Llama with a chat template (the text-generation tests' checkpoint)."""
    import torch

    from tests.pipelines.test_text_generation import save_tokenizer

    folder = tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    vocab = save_tokenizer(folder)
    config = transformers.LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():  # larger logits: no near-ties between tokens under greedy search
        for p in model.parameters():
            p.mul_(3)
    model.save_pretrained(folder)
    return folder


def t5(tmp: Path, name: str = "tiny-t5") -> Path:
    from tests.pipelines.seq2seq_models import make_seq2seq

    return Path(make_seq2seq(tmp / name, "t5"))


def import_bundled(hub: LiveHub) -> list[str]:
    from cove.server.bootstrap import import_bundled as run

    store = hub.app.state.hub.store  # type: ignore[attr-defined]
    with store.session() as s:
        return run(store, s)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveHub]]:
    """serve(**settings) starts this module's hub (once); it stops when the module ends."""
    started: list[tuple[LiveHub, object, object]] = []

    def start(**settings: object) -> LiveHub:
        assert not started, "one server per test module"
        live, server, thread = start_hub(tmp_path_factory.mktemp("infer-hub"), **settings)
        started.append((live, server, thread))
        return live

    yield start
    for _, server, thread in started:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=30)  # type: ignore[attr-defined]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
