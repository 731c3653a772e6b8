"""pipeline(..., dtype="auto") and `cove run --dtype auto`: the checkpoint's dtype, but never an emulated bf16."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import cove

from .conftest import make_model, transformers


@pytest.fixture(scope="module")
def bf16_classifier(tmp_path_factory):
    folder = make_model(tmp_path_factory.mktemp("bf16-seq"), "bert", "seq", labels=["NEG", "POS"])
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
    model.to(torch.bfloat16).save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    return str(folder)


@pytest.mark.parametrize(("cpu", "expected"), [("avx2", torch.float32), ("amx", torch.bfloat16)])
def test_pipeline_auto_dtype(bf16_classifier, fake_cpu, cpu, expected):
    fake_cpu(cpu)
    pipe = cove.pipeline("text-classification", model=bf16_classifier, dtype="auto")
    assert next(pipe.model.parameters()).dtype == expected
    assert pipe("a fine film")[0]["label"] in ("NEG", "POS")


def test_pipeline_auto_on_a_model_object(bf16_classifier, fake_cpu):
    fake_cpu("avx2")
    model = cove.AutoModelForSequenceClassification.from_pretrained(bf16_classifier, dtype="bfloat16")
    pipe = cove.pipeline("text-classification", model=model, tokenizer=bf16_classifier, dtype="auto")
    assert next(pipe.model.parameters()).dtype == torch.float32


def test_cove_run_dtype_auto(bf16_classifier, fake_cpu, caplog, capsys):
    from cove.cli.main import main

    fake_cpu("avx2")
    with caplog.at_level(logging.WARNING, logger="cove.hardware"):
        assert (
            main(["run", "text-classification", "a fine film", "--model", bf16_classifier, "--dtype", "auto"])
            == 0
        )
    assert json.loads(capsys.readouterr().out)[0]["label"] in ("NEG", "POS")
    (message,) = [r.getMessage() for r in caplog.records if r.name == "cove.hardware"]
    assert message.startswith("dtype='auto': ") and "loading it in float32" in message


def test_cove_run_unknown_dtype_is_an_error(bf16_classifier, capsys):
    from cove.cli.main import main

    assert main(["run", "text-classification", "x", "--model", bf16_classifier, "--dtype", "float64"]) == 1
    assert "dtype='float64' is not supported" in capsys.readouterr().err
