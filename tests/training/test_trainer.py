"""The training loop on a tiny BERT: pinned loss curve, resume == uninterrupted, accumulation, eval, saving."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import cove
from cove.errors import TrainingError
from cove.training.collators import DataCollatorWithPadding
from tests.training.helpers import ToyTokenizer, accuracy, tiny_model, toy_examples

TRAIN = toy_examples(70, seed=0)
EVAL = toy_examples(24, seed=1)


def make_trainer(tmp_path, model=None, **kwargs):
    defaults = dict(
        num_train_epochs=3,
        per_device_train_batch_size=8,
        learning_rate=2e-3,
        weight_decay=0.01,
        warmup_steps=3,
        lr_scheduler_type="cosine",
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        report_to="none",
    )
    defaults.update(kwargs)
    extra = {k: defaults.pop(k) for k in ("compute_metrics", "callbacks", "eval_dataset") if k in defaults}
    args = cove.TrainingArguments(str(tmp_path), **defaults)
    return cove.Trainer(
        model if model is not None else tiny_model(),
        args,
        train_dataset=TRAIN,
        data_collator=DataCollatorWithPadding(ToyTokenizer()),
        **extra,
    )


def losses(trainer):
    return [r["loss"] for r in trainer.state.log_history if "loss" in r]


# Measured with Cove on torch 2.13 (CPU). tests/parity/test_trainer_parity.py checks live that transformers'
# Trainer gives the same curve on the same model, data and arguments.
PINNED = {
    0: 0.6931567192077637,
    1: 0.6913478970527649,
    2: 0.6888900995254517,
    3: 0.6876546144485474,
    4: 0.6831241250038147,
    26: 0.5188995003700256,
}
PINNED_TRAINING_LOSS = 0.635551400758602


def test_pinned_loss_curve(tmp_path):
    trainer = make_trainer(tmp_path)
    out = trainer.train()
    curve = losses(trainer)
    assert out.global_step == 27 == len(curve)  # ceil(70 / 8) = 9 updates per epoch, 3 epochs
    for step, expected in PINNED.items():
        assert curve[step] == pytest.approx(expected, abs=1e-5), step
    assert out.training_loss == pytest.approx(np.mean(curve), rel=1e-6)
    assert out.training_loss == pytest.approx(PINNED_TRAINING_LOSS, abs=1e-5)
    assert out.metrics["train_loss"] == out.training_loss
    assert out.metrics["epoch"] == 3.0
    lrs = [r["learning_rate"] for r in trainer.state.log_history if "loss" in r]
    assert lrs[:4] == pytest.approx([0.0, 2e-3 / 3, 4e-3 / 3, 2e-3])  # warmup, logged before the step
    assert lrs[-1] < lrs[4]  # cosine decay


def test_log_written_as_jsonl(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=4)
    trainer.train()
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    assert records[-1]["train_loss"] == pytest.approx(np.mean(losses(trainer)))


def test_gradient_accumulation_equals_larger_batch(tmp_path):
    big = make_trainer(
        tmp_path / "a", per_device_train_batch_size=16, max_steps=6, lr_scheduler_type="linear"
    )
    big.train()
    small = make_trainer(
        tmp_path / "b",
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        max_steps=6,
        lr_scheduler_type="linear",
    )
    small.train()
    assert losses(small) == pytest.approx(losses(big), abs=1e-5)
    for (name, a), (_, b) in zip(big.model.named_parameters(), small.model.named_parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)


def test_resumed_run_equals_uninterrupted(tmp_path):
    # dropout on, so the RNG state in the checkpoint matters too
    full = make_trainer(tmp_path / "full", model=tiny_model(dropout=0.1), save_strategy="steps", save_steps=4)
    full.train()
    ckpt = tmp_path / "full" / "checkpoint-12"  # mid-epoch: 9 updates per epoch
    assert set(os.listdir(ckpt)) >= {
        "model.safetensors",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
        "trainer_state.json",
    }
    resumed = make_trainer(tmp_path / "resumed", model=tiny_model(seed=123, dropout=0.1))
    out = resumed.train(resume_from_checkpoint=str(ckpt))
    assert out.global_step == 27
    for (name, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        assert (a - b).abs().max().item() < 1e-6, name
    assert losses(resumed) == pytest.approx(losses(full), abs=1e-6)  # restored history + the rest


def test_resume_true_takes_latest_checkpoint(tmp_path):
    first = make_trainer(tmp_path, max_steps=6, save_strategy="steps", save_steps=3)
    first.train()
    assert cove.training.get_last_checkpoint(tmp_path).endswith("checkpoint-6")
    second = make_trainer(tmp_path, max_steps=8, save_strategy="no")
    out = second.train(resume_from_checkpoint=True)
    assert out.global_step == 8 and len(losses(second)) == 8  # 6 restored from the checkpoint's history
    assert losses(second)[:6] == losses(first)
    with pytest.raises(TrainingError, match="no checkpoint"):
        make_trainer(tmp_path / "empty").train(resume_from_checkpoint=True)


def test_evaluate_predict_and_best_model(tmp_path):
    trainer = make_trainer(
        tmp_path,
        eval_dataset=EVAL,
        compute_metrics=accuracy,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        save_total_limit=1,
    )
    trainer.train()
    evals = [r for r in trainer.state.log_history if "eval_accuracy" in r]
    assert len(evals) == 3
    best = max(evals, key=lambda r: r["eval_accuracy"])
    assert trainer.state.best_metric == best["eval_accuracy"]
    # the best checkpoint survives rotation, plus the latest so training can resume
    kept = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    assert f"checkpoint-{trainer.state.best_global_step}" in kept and len(kept) <= 2
    metrics = trainer.evaluate()
    assert metrics["eval_accuracy"] == pytest.approx(best["eval_accuracy"])  # the best model was reloaded
    assert set(metrics) >= {"eval_loss", "eval_accuracy", "eval_runtime", "eval_samples_per_second"}
    pred = trainer.predict(EVAL)
    assert pred.predictions.shape == (24, 2)
    assert pred.label_ids.tolist() == [e["label"] for e in EVAL]
    assert pred.metrics["test_accuracy"] == pytest.approx(best["eval_accuracy"])
    # eval loss is the mean over examples
    logits = torch.from_numpy(pred.predictions)
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(pred.label_ids)).item()
    assert pred.metrics["test_loss"] == pytest.approx(expected, abs=1e-5)


def test_early_stopping(tmp_path):
    trainer = make_trainer(
        tmp_path,
        learning_rate=0.0,  # nothing improves, so the second evaluation stops the run
        warmup_steps=0,
        num_train_epochs=10,
        eval_dataset=EVAL,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        load_best_model_at_end=True,
        callbacks=[cove.EarlyStoppingCallback(early_stopping_patience=2)],
    )
    out = trainer.train()
    assert out.global_step == 6


@pytest.mark.parametrize(("cpu", "autocast"), [("amx", True), ("avx2", False)])
def test_bf16_auto_autocasts_only_where_native(tmp_path, fake_cpu, cpu, autocast):
    fake_cpu(cpu)
    trainer = make_trainer(tmp_path, bf16="auto")
    assert isinstance(trainer._autocast(), torch.autocast) is autocast


def test_bf16_autocast_trains(tmp_path):
    bf16 = make_trainer(tmp_path / "bf16", bf16=True, learning_rate=5e-3, num_train_epochs=2)
    out = bf16.train()
    fp32 = make_trainer(tmp_path / "fp32", learning_rate=5e-3, num_train_epochs=2)
    reference = fp32.train()
    assert next(bf16.model.parameters()).dtype == torch.float32  # master weights stay fp32
    curve = losses(bf16)
    assert np.mean(curve[-4:]) < np.mean(curve[:4]) - 0.02  # it learns
    assert out.training_loss == pytest.approx(reference.training_loss, abs=0.03)
    assert curve != losses(fp32)  # and bf16 really changed the arithmetic


def test_save_model_writes_card_with_lineage(tmp_path):
    base = tmp_path / "base"
    tiny_model(seed=5).save_pretrained(base)
    model = cove.AutoModelForSequenceClassification.from_pretrained(base)
    trainer = make_trainer(
        tmp_path / "run",
        model=model,
        eval_dataset=EVAL,
        compute_metrics=accuracy,
        eval_strategy="epoch",
        num_train_epochs=1,
    )
    trainer.train()
    out = tmp_path / "final"
    trainer.save_model(str(out))
    import yaml

    text = (out / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["base_model"] == str(base)
    assert meta["base_model_revision"].startswith("sha256:")
    result = meta["model-index"][0]["results"][0]
    assert result["task"]["type"] == "text-classification"
    values = {m["type"]: m["value"] for m in result["metrics"]}
    last_eval = [r for r in trainer.state.log_history if "eval_accuracy" in r][-1]
    assert values["accuracy"] == pytest.approx(last_eval["eval_accuracy"])
    assert meta["training"]["hyperparameters"]["learning_rate"] == 2e-3
    assert len(meta["training"]["train_dataset"]["fingerprint"]) == 16
    reloaded = cove.AutoModelForSequenceClassification.from_pretrained(out)
    for (name, a), (_, b) in zip(trainer.model.state_dict().items(), reloaded.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    assert json.loads((out / "training_args.json").read_text())["learning_rate"] == 2e-3


def test_dataset_fingerprint_changes_with_data(tmp_path):
    from cove.training.model_card import dataset_lineage

    a = dataset_lineage(TRAIN)["fingerprint"]
    b = dataset_lineage(TRAIN[:-1])["fingerprint"]
    assert a != b


def test_push_to_hub_uploads_output_dir(tmp_path, monkeypatch):
    import cove.hub

    calls = {}

    def create_repo(repo_id, **kwargs):
        calls["create"] = (repo_id, kwargs)

    def upload_folder(repo_id, folder, **kwargs):
        calls["upload"] = (repo_id, sorted(os.listdir(folder)), kwargs)
        return "commit-url"

    monkeypatch.setattr(cove.hub, "create_repo", create_repo, raising=False)
    monkeypatch.setattr(cove.hub, "upload_folder", upload_folder, raising=False)
    trainer = make_trainer(tmp_path, max_steps=2, hub_model_id="me/tiny", save_strategy="steps", save_steps=1)
    trainer.train()
    assert trainer.push_to_hub() == "commit-url"
    repo, files, kwargs = calls["upload"]
    assert kwargs["commit_message"] == "End of training"
    assert repo == "me/tiny" and calls["create"][0] == "me/tiny"
    assert {"README.md", "config.json", "model.safetensors"} <= set(files)
    assert not any(f.startswith("checkpoint-") for f in files)  # checkpoints stay local


def test_unused_columns_dropped_and_missing_labels_explained(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=1)
    trainer.train()  # "text" would crash the model if it reached forward()
    unlabeled = [{"input_ids": e["input_ids"]} for e in TRAIN]
    args = cove.TrainingArguments(str(tmp_path / "x"), max_steps=1, disable_tqdm=True)
    bad = cove.Trainer(
        tiny_model(), args, train_dataset=unlabeled, data_collator=DataCollatorWithPadding(ToyTokenizer())
    )
    with pytest.raises(TrainingError, match="no loss"):
        bad.train()


def test_torch_dataset_is_accepted(tmp_path):
    class TorchData(torch.utils.data.Dataset):
        def __len__(self):
            return len(TRAIN)

        def __getitem__(self, i):
            return {"input_ids": TRAIN[i]["input_ids"], "labels": TRAIN[i]["label"]}

    a = make_trainer(tmp_path / "a", max_steps=3)
    a.train()
    b = make_trainer(tmp_path / "b", max_steps=3)
    b.train_dataset = TorchData()
    b.train()
    assert losses(a) == pytest.approx(losses(b), abs=1e-6)


def test_checkpoint_state_roundtrip(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=4, save_strategy="steps", save_steps=2)
    trainer.train()
    state = json.loads(Path(tmp_path, "checkpoint-4", "trainer_state.json").read_text())
    assert state["global_step"] == 4 and len([r for r in state["log_history"] if "loss" in r]) == 4
    optimizer = torch.load(Path(tmp_path, "checkpoint-4", "optimizer.pt"), weights_only=True)
    assert optimizer["state"][0]["step"].item() == 4


def test_save_strategy_best_saves_only_improvements(tmp_path):
    trainer = make_trainer(
        tmp_path, eval_dataset=EVAL, eval_strategy="steps", eval_steps=3, save_strategy="best", max_steps=12
    )
    trainer.train()
    evals = [r["eval_loss"] for r in trainer.state.log_history if "eval_loss" in r]
    best, improved = float("inf"), []
    for step, loss in zip(range(3, 13, 3), evals):
        if loss < best:
            best, improved = loss, [*improved, step]
    assert sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("checkpoint-*")) == improved


def test_group_by_length_batches_similar_lengths(tmp_path):
    trainer = make_trainer(tmp_path, group_by_length=True, per_device_train_batch_size=4)
    loader = trainer.get_train_dataloader()
    loader.sampler.set_epoch(0)
    order = list(loader.sampler)
    assert sorted(order) == list(range(len(TRAIN)))  # a permutation: every example once
    lengths = [len(TRAIN[i]["input_ids"]) for i in order]
    assert lengths[0] == max(lengths)
    padded = sum(max(lengths[i : i + 4]) * len(lengths[i : i + 4]) for i in range(0, len(lengths), 4))
    plain = make_trainer(tmp_path, per_device_train_batch_size=4).get_train_dataloader()
    rand = [len(TRAIN[i]["input_ids"]) for i in plain.sampler]
    padded_rand = sum(max(rand[i : i + 4]) * len(rand[i : i + 4]) for i in range(0, len(rand), 4))
    assert padded < 0.9 * padded_rand
    loader.sampler.set_epoch(1)
    assert list(loader.sampler) != order  # reshuffled each epoch


def test_cove_dataset_trains_like_a_list_and_its_fingerprint_reaches_the_card(tmp_path):
    from cove.training.model_card import dataset_lineage

    dataset = cove.Dataset.from_list(TRAIN)
    a = make_trainer(tmp_path / "list", max_steps=4)
    a.train()
    b = make_trainer(tmp_path / "arrow", max_steps=4, group_by_length=False)
    b.train_dataset = dataset
    b.train()
    assert losses(b) == pytest.approx(losses(a), abs=1e-6)
    assert dataset.column_names == ["input_ids", "label", "text"]  # the Trainer left the user's dataset alone
    assert dataset_lineage(dataset)["fingerprint"] == dataset._fingerprint
    grouped = make_trainer(tmp_path / "grouped", group_by_length=True)
    grouped.train_dataset = dataset
    assert grouped._lengths(dataset) == [len(e["input_ids"]) for e in TRAIN]


def test_progress_bar_shows_loss_and_eta(tmp_path, capsys):
    trainer = make_trainer(tmp_path, max_steps=4, disable_tqdm=False)
    trainer.train()
    err = capsys.readouterr().err
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "4/4" in final and "loss=" in final and "lr=" in final
    assert re.search(r"\[\d+:\d\d<\d+:\d\d", final), final  # elapsed<remaining: tqdm's ETA
    last_loss = losses(trainer)[-1]
    assert f"loss={last_loss:.4f}" in final
    trainer.evaluate(EVAL)  # 24 examples, eval batch 8: a bar over 3 batches
    err = capsys.readouterr().err.replace("\r", "\n")
    assert re.search(r"eval: 100%.*3/3", err), err
    make_trainer(tmp_path / "quiet", max_steps=2, disable_tqdm=True).train()
    assert "loss=" not in capsys.readouterr().err


def test_push_to_hub_argument_pushes_when_training_ends(tmp_path, monkeypatch):
    import cove.hub

    pushed = []
    monkeypatch.setattr(cove.hub, "create_repo", lambda repo_id, **kw: None, raising=False)
    monkeypatch.setattr(
        cove.hub,
        "upload_folder",
        lambda repo_id, folder, **kw: pushed.append((repo_id, sorted(os.listdir(folder)))),
        raising=False,
    )
    make_trainer(tmp_path / "my-model", max_steps=2, push_to_hub=True).train()
    assert [repo for repo, _ in pushed] == ["my-model"]  # hub_model_id defaults to output_dir's name
    assert "model.safetensors" in pushed[0][1]
    make_trainer(tmp_path / "other", max_steps=2, push_to_hub=True, hub_model_id="team/named").train()
    assert pushed[-1][0] == "team/named"
    make_trainer(tmp_path / "off", max_steps=2).train()
    assert len(pushed) == 2  # push_to_hub=False: nothing uploaded


def test_old_evaluation_strategy_name_evaluates(tmp_path):
    trainer = make_trainer(tmp_path, evaluation_strategy="epoch", eval_dataset=EVAL, num_train_epochs=2)
    trainer.train()
    assert [r["step"] for r in trainer.state.log_history if "eval_loss" in r] == [9, 18]
    trainer = make_trainer(tmp_path, eval_strategy="no", eval_dataset=EVAL, num_train_epochs=1)
    trainer.train()
    assert not any("eval_loss" in r for r in trainer.state.log_history)
