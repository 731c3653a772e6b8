"""Each TrainingArguments option of the issue's checklist has the effect transformers' Trainer gives it:
both Trainers run the same tiny model, data and arguments, and the logs, checkpoints and weights agree."""

from __future__ import annotations

import copy
import os

import pytest
import torch

import cove
from cove.training.collators import DataCollatorWithPadding
from tests.training.helpers import ToyTokenizer, accuracy, tiny_config, toy_examples

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

pytestmark = pytest.mark.parity

TRAIN = toy_examples(40, seed=0, with_text=False)
EVAL = toy_examples(12, seed=1, with_text=False)
BASE = dict(
    per_device_train_batch_size=8,
    per_device_eval_batch_size=6,
    learning_rate=3e-3,
    logging_steps=1,
    report_to="none",
    disable_tqdm=True,
    save_strategy="no",
    seed=3,
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """A tiny model gains nothing from a second thread; on a loaded shared machine OpenMP's spin-waits
    made these runs ~8x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("init")
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(
        transformers.BertConfig(**tiny_config().to_dict())
    ).save_pretrained(folder)
    return folder


def run_both(tmp_path, init_dir, callbacks=None, **kwargs):
    """(cove Trainer, transformers Trainer) after train() with the same arguments."""
    kwargs = {**BASE, **kwargs}
    common = dict(
        train_dataset=TRAIN,
        eval_dataset=EVAL,
        data_collator=DataCollatorWithPadding(ToyTokenizer()),
        compute_metrics=accuracy,
    )
    hf_kwargs = dict(kwargs)
    ratio = hf_kwargs.pop("warmup_ratio", 0)  # transformers 5 spells a ratio as warmup_steps < 1
    if ratio and not hf_kwargs.get("warmup_steps"):
        hf_kwargs["warmup_steps"] = ratio
    theirs = transformers.Trainer(
        transformers.BertForSequenceClassification.from_pretrained(init_dir),
        transformers.TrainingArguments(str(tmp_path / "hf"), **hf_kwargs),
        callbacks=[transformers.EarlyStoppingCallback(**c) for c in callbacks or []],
        **common,
    )
    # BERT's classification loss ignores num_items_in_batch, so transformers 5 must divide by the accumulation
    # steps itself; it does when told the model takes no loss kwargs (else it sums the micro-batch losses:
    # huggingface/transformers#37766). Cove averages, so gradient accumulation equals the larger batch.
    theirs.model_accepts_loss_kwargs = False
    theirs.train()
    mine = cove.Trainer(
        cove.AutoModelForSequenceClassification.from_pretrained(init_dir),
        cove.TrainingArguments(str(tmp_path / "cove"), **kwargs),
        callbacks=[cove.EarlyStoppingCallback(**c) for c in callbacks or []],
        **common,
    )
    mine.train()
    return mine, theirs


def column(trainer, key):
    """The logged values of ``key`` in order (the end-of-training summary left out)."""
    return [r[key] for r in trainer.state.log_history if key in r and "train_loss" not in r]


def steps(trainer, key):
    return [r["step"] for r in trainer.state.log_history if key in r and "train_loss" not in r]


def checkpoints(folder):
    return sorted(
        (p for p in os.listdir(folder) if p.startswith("checkpoint-")), key=lambda p: int(p.split("-")[1])
    )


def assert_same_weights(mine, theirs, atol=1e-5):
    ref = theirs.model.state_dict()
    for name, value in mine.model.checkpoint_state_dict().items():  # transformers' parameter names
        if name.endswith("attention.self.key.bias"):
            # softmax ignores a shift shared by all keys, so this bias's gradient is zero up to rounding, and
            # Adam turns that rounding (padding-free steps round differently) into lr-sized steps; it has no
            # effect on any output
            continue
        torch.testing.assert_close(value, ref[name], atol=atol, rtol=1e-4, msg=name)


@pytest.mark.parametrize("scheduler", ["linear", "cosine", "constant", "constant_with_warmup"])
def test_schedulers_and_warmup_ratio(tmp_path, init_dir, scheduler):
    mine, theirs = run_both(tmp_path, init_dir, max_steps=8, lr_scheduler_type=scheduler, warmup_ratio=0.25)
    values = column(mine, "learning_rate")
    assert values == pytest.approx(column(theirs, "learning_rate"), abs=1e-9)
    assert column(mine, "loss") == pytest.approx(column(theirs, "loss"), abs=1e-5)
    if scheduler == "constant":
        assert values == [3e-3] * 8  # no warmup, whatever warmup_ratio says
    else:
        assert values[:2] == pytest.approx([0.0, 1.5e-3])  # 2 warmup steps (25% of 8)
        assert (values[-1] < 3e-3) == (scheduler in ("linear", "cosine"))


def test_warmup_steps_override_ratio_and_max_grad_norm_clips(tmp_path, init_dir):
    mine, theirs = run_both(
        tmp_path, init_dir, max_steps=6, warmup_steps=3, warmup_ratio=0.5, max_grad_norm=0.05
    )
    assert column(mine, "learning_rate")[:4] == pytest.approx([0.0, 1e-3, 2e-3, 3e-3])
    assert column(mine, "learning_rate") == pytest.approx(column(theirs, "learning_rate"), abs=1e-9)
    # grad_norm is logged before clipping, as transformers does; the clipped update changes the weights
    assert column(mine, "grad_norm") == pytest.approx(column(theirs, "grad_norm"), rel=1e-4)
    assert max(column(mine, "grad_norm")) > 0.05
    assert column(mine, "loss") == pytest.approx(column(theirs, "loss"), abs=1e-5)
    assert_same_weights(mine, theirs)
    unclipped, _ = run_both(tmp_path / "b", init_dir, max_steps=6, warmup_steps=3, max_grad_norm=1e9)
    assert column(unclipped, "loss")[-1] != pytest.approx(column(mine, "loss")[-1], abs=1e-4)


def test_gradient_accumulation_and_max_steps(tmp_path, init_dir):
    mine, theirs = run_both(
        tmp_path, init_dir, gradient_accumulation_steps=2, max_steps=4, num_train_epochs=50
    )
    assert mine.state.global_step == theirs.state.global_step == 4  # max_steps wins over epochs
    assert column(mine, "loss") == pytest.approx(column(theirs, "loss"), abs=1e-5)
    assert column(mine, "epoch") == pytest.approx(column(theirs, "epoch"))
    assert_same_weights(mine, theirs)


@pytest.mark.parametrize(
    ("strategy", "extra"),
    [
        ("no", {}),
        ("steps", {"save_steps": 2}),
        ("steps", {"save_steps": 2, "save_total_limit": 2}),
        ("epoch", {}),
    ],
)
def test_save_strategy_and_total_limit_keep_the_same_checkpoints(tmp_path, init_dir, strategy, extra):
    run_both(tmp_path, init_dir, num_train_epochs=2, save_strategy=strategy, **extra)
    # 40 examples / batch 8 = 5 steps per epoch, 10 in all
    expected = {
        "no": [],
        "steps": ["checkpoint-2", "checkpoint-4", "checkpoint-6", "checkpoint-8", "checkpoint-10"],
        "epoch": ["checkpoint-5", "checkpoint-10"],
    }[strategy]
    if "save_total_limit" in extra:
        expected = expected[-2:]
    assert checkpoints(tmp_path / "cove") == checkpoints(tmp_path / "hf") == expected


@pytest.mark.parametrize(
    ("metric", "greater"),
    [
        ("loss", None),
        ("accuracy", None),
        ("loss", True),
    ],  # the last picks the worst loss: greater_is_better counts
)
def test_load_best_model_at_end(tmp_path, init_dir, metric, greater):
    mine, theirs = run_both(
        tmp_path,
        init_dir,
        max_steps=10,
        learning_rate=2e-2,  # big steps, so the evaluations differ
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=greater,
    )
    evals = column(mine, f"eval_{metric}")
    assert evals == pytest.approx(column(theirs, f"eval_{metric}"), abs=1e-5)
    assert mine.state.best_metric == pytest.approx(theirs.state.best_metric, abs=1e-5)
    assert mine.state.best_global_step == theirs.state.best_global_step
    pick = max if (greater if greater is not None else metric != "loss") else min
    assert mine.state.best_metric == pytest.approx(pick(evals), abs=1e-7)
    assert os.path.basename(mine.state.best_model_checkpoint) == os.path.basename(
        theirs.state.best_model_checkpoint
    )
    assert checkpoints(tmp_path / "cove") == checkpoints(tmp_path / "hf")
    assert_same_weights(mine, theirs)  # both reloaded the best checkpoint
    best = cove.AutoModelForSequenceClassification.from_pretrained(mine.state.best_model_checkpoint)
    for name, value in best.state_dict().items():
        assert torch.equal(value, mine.model.state_dict()[name]), name


def test_early_stopping_stops_at_the_same_step(tmp_path, init_dir):
    mine, theirs = run_both(
        tmp_path,
        init_dir,
        callbacks=[{"early_stopping_patience": 2, "early_stopping_threshold": 0.01}],
        num_train_epochs=20,
        learning_rate=1e-4,  # slow progress: improvements stay under the threshold
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        load_best_model_at_end=True,
    )
    assert mine.state.global_step == theirs.state.global_step < 100
    assert column(mine, "eval_loss") == pytest.approx(column(theirs, "eval_loss"), abs=1e-6)


def test_eval_strategy_steps_and_epoch(tmp_path, init_dir):
    # steps: every eval_steps, and at the last step (transformers 5)
    for strategy, extra, expected in (("steps", {"eval_steps": 3}, [3, 6, 9, 10]), ("epoch", {}, [5, 10])):
        mine, theirs = run_both(
            tmp_path / strategy, init_dir, num_train_epochs=2, eval_strategy=strategy, **extra
        )
        assert steps(mine, "eval_loss") == steps(theirs, "eval_loss") == expected
        assert column(mine, "eval_accuracy") == column(theirs, "eval_accuracy")


def test_predict_matches(tmp_path, init_dir):
    mine, theirs = run_both(tmp_path, init_dir, max_steps=3)
    ours, ref = mine.predict(EVAL), theirs.predict(EVAL)
    torch.testing.assert_close(
        torch.from_numpy(ours.predictions), torch.from_numpy(ref.predictions), atol=1e-5, rtol=1e-4
    )
    assert ours.label_ids.tolist() == ref.label_ids.tolist()
    assert ours.metrics["test_loss"] == pytest.approx(ref.metrics["test_loss"], abs=1e-5)
    assert ours.metrics["test_accuracy"] == ref.metrics["test_accuracy"]


def test_causal_lm_collator_matches_transformers():
    from cove.hub.resolve import resolve_model_dir

    tok = transformers.AutoTokenizer.from_pretrained(
        str(resolve_model_dir("sentence-transformers/all-MiniLM-L6-v2"))
    )
    feats = [
        dict(tok(t)) for t in ("A short one.", "A somewhat longer sentence, with punctuation!", "Two words")
    ]
    for kwargs in ({}, {"pad_to_multiple_of": 8}):
        ours = cove.DataCollatorForLanguageModeling(tok, mlm=False, **kwargs)(copy.deepcopy(feats))
        ref = transformers.DataCollatorForLanguageModeling(tok, mlm=False, **kwargs)(copy.deepcopy(feats))
        assert set(ours) == set(ref)
        for key in ref:
            assert torch.equal(ours[key], ref[key]), (kwargs, key)
        assert (ours["labels"] == -100).sum() == (ours["attention_mask"] == 0).sum() > 0  # padding ignored
