"""Padding-free training steps equal padded ones, and the progress bar's ETA from each step's planned work."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import cove
from cove.models.bert import dropout_mask, embed_tokens, train_dropout, training_attention
from cove.models.modeling import padding_mask, skip_padding
from cove.training.callbacks import StepTimeModel, TrainerCallback
from cove.training.collators import DataCollatorWithPadding
from tests.training.helpers import VOCAB, ToyTokenizer, tiny_model, toy_examples

DROPOUT = {
    "bert": {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1},
    "roberta": {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": 1},
    "distilbert": {"dropout": 0.1, "attention_dropout": 0.1},
}
SIZES = {
    "bert": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37},
    "roberta": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37},
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 37},
}


def _batch(task: str):
    torch.manual_seed(0)
    lengths = torch.tensor([14, 9, 5, 12, 3, 14])
    mask = (torch.arange(14)[None] < lengths[:, None]).long()
    ids = torch.randint(5, VOCAB, (6, 14)) * mask + 2 * (1 - mask)  # padded with a non-zero id
    if task == "seq":
        labels = torch.randint(0, 3, (6,))
    else:
        labels = torch.where(mask.bool(), torch.randint(0, 3, (6, 14)), -100)
    return ids, mask, labels


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
@pytest.mark.parametrize("task", ["seq", "token"])
def test_padding_free_step_equals_the_padded_step(family, task):
    """Same loss and gradients with dropout on: the masks are drawn in the padded layout."""
    config = cove.AutoConfig.for_model(
        family, vocab_size=VOCAB, max_position_embeddings=64, num_labels=3, **SIZES[family], **DROPOUT[family]
    )
    auto = cove.AutoModelForSequenceClassification if task == "seq" else cove.AutoModelForTokenClassification
    torch.manual_seed(1)
    model = auto.from_config(config).train()
    ids, mask, labels = _batch(task)

    def step(padding_free: bool):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(7)
        with skip_padding(training=True) if padding_free else torch.enable_grad():
            out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return out, grads

    padded, padded_grads = step(False)
    packed, packed_grads = step(True)
    torch.testing.assert_close(packed.loss, padded.loss, atol=1e-6, rtol=1e-6)
    assert packed_grads.keys() == padded_grads.keys()
    for name, grad in padded_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-6, rtol=1e-5, msg=name)
    if task == "token":
        real = mask.bool()
        torch.testing.assert_close(packed.logits[real], padded.logits[real], atol=1e-6, rtol=1e-6)
        # the padded positions were never computed: their hidden states are zeros, so the logits the bias
        bias = model.classifier.bias.detach().expand_as(packed.logits[~real])
        assert torch.equal(packed.logits[~real].detach(), bias)
    torch.manual_seed(7)
    other = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    torch.manual_seed(8)
    assert model(input_ids=ids, attention_mask=mask, labels=labels).loss != other  # dropout is on


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.77, 1e-3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_mask_is_torchs_mask_from_the_same_stream(p, dtype):
    for shape in [(7,), (3, 5, 11), (4, 2, 9, 9)]:
        torch.manual_seed(3)
        expected = torch.empty(shape, dtype=dtype).bernoulli_(1 - p).div_(1 - p)
        after = torch.rand(4)
        torch.manual_seed(3)
        assert torch.equal(dropout_mask(shape, p, dtype), expected)
        assert torch.equal(torch.rand(4), after)  # the generator advanced by as much


def test_training_dropout_and_attention_equal_torchs():
    x = torch.randn(2, 6, 8, requires_grad=True)
    torch.manual_seed(5)
    expected = F.dropout(x, 0.1, training=True)
    torch.manual_seed(5)
    assert torch.equal(train_dropout(x, 0.1), expected)
    q, k, v = (torch.randn(2, 3, 6, 4) for _ in range(3))
    mask = padding_mask(torch.tensor([[1] * 6, [1] * 4 + [0] * 2]), torch.float32)
    torch.manual_seed(6)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.1)
    after = torch.rand(4)
    torch.manual_seed(6)
    torch.testing.assert_close(training_attention(q, k, v, mask, 0.1), expected, atol=1e-6, rtol=1e-6)
    assert torch.equal(torch.rand(4), after)


def test_training_embedding_gradient_reuses_its_memory_and_equals_torchs():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(50, 8, padding_idx=0).train()
    ids = torch.randint(0, 50, (4, 9))
    ids[:, -2:] = 0
    g = torch.randn(4, 9, 8)
    (emb(ids) * g).sum().backward()
    expected = emb.weight.grad.clone()
    pointers = set()
    for _ in range(3):
        emb.zero_grad(set_to_none=True)
        (embed_tokens(emb, ids) * g).sum().backward()
        assert torch.equal(emb.weight.grad, expected)
        pointers.add(emb.weight.grad.data_ptr())
    assert len(pointers) == 1  # the same memory each step
    (embed_tokens(emb, ids) * g).sum().backward()  # accumulating into the kept gradient
    assert torch.equal(emb.weight.grad, 2 * expected)
    kept = emb.weight.grad
    emb.zero_grad(set_to_none=True)
    (embed_tokens(emb, ids) * g).sum().backward()  # a gradient someone still holds is never written over
    assert torch.equal(kept, 2 * expected) and torch.equal(emb.weight.grad, expected)


def _trainer(tmp_path, **kwargs):
    args = dict(
        num_train_epochs=2,
        per_device_train_batch_size=8,
        learning_rate=2e-3,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        report_to="none",
        seed=5,
    )
    args.update(kwargs)
    return cove.Trainer(
        tiny_model(dropout=0.1),
        cove.TrainingArguments(str(tmp_path), **args),
        train_dataset=toy_examples(60, seed=2, with_text=False),
        data_collator=DataCollatorWithPadding(ToyTokenizer()),
    )


def test_trainer_padding_free_and_padded_give_the_same_run(tmp_path):
    runs = []
    for padding_free in (True, False):
        trainer = _trainer(tmp_path / str(padding_free), padding_free=padding_free)
        trainer.train()
        losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
        runs.append((losses, trainer.model.state_dict()))
    (free, free_state), (padded, padded_state) = runs
    assert len(free) == 16 and free == pytest.approx(padded, abs=1e-5)
    for name, value in padded_state.items():
        torch.testing.assert_close(free_state[name], value, atol=1e-5, rtol=1e-4, msg=name)


class _Recorder(TrainerCallback):
    def __init__(self) -> None:
        self.costs = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.costs = kwargs.get("step_costs")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"group_by_length": True, "padding_free": True},
        {"group_by_length": False, "padding_free": False, "max_steps": 11},
        {"group_by_length": True, "padding_free": True, "gradient_accumulation_steps": 3},
    ],
)
def test_planned_step_costs_are_the_tokens_each_step_computes(tmp_path, kwargs):
    trainer = _trainer(tmp_path, disable_tqdm=False, **kwargs)
    seen: list[list[torch.Tensor]] = []
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        seen.append(batch["attention_mask"])
        return batch

    trainer.data_collator = counting
    recorder = _Recorder()
    trainer.add_callback(recorder)
    out = trainer.train()
    ga = kwargs.get("gradient_accumulation_steps", 1)
    per_batch = [float(m.sum() if kwargs["padding_free"] else m.numel()) for m in seen]
    # batches of an epoch grouped into optimizer steps (the last step of an epoch may take fewer)
    steps, epoch_batches = [], 8  # 60 examples in batches of 8
    for start in range(0, len(per_batch), epoch_batches):
        epoch = per_batch[start : start + epoch_batches]
        steps += [sum(epoch[i : i + ga]) for i in range(0, len(epoch), ga)]
    assert recorder.costs == steps[: out.global_step]
    assert len(recorder.costs) == out.global_step
    assert len(set(recorder.costs)) > 1


def test_step_time_model_predicts_from_the_work_ahead():
    costs = [400.0, 100.0, 300.0, 50.0, 250.0, 500.0, 80.0, 120.0, 90.0, 60.0]  # length-grouped mix
    model = StepTimeModel(costs, start_step=0, now=0.0)

    def duration(cost: float) -> float:
        return 0.2 + 0.01 * cost  # a fixed overhead (optimizer) + time per token

    now = 0.0
    predicted = []
    for step, cost in enumerate(costs, start=1):
        now += duration(cost)
        predicted.append(model.step_done(step, now=now))
    # after the first step (warm-up, not fitted) there is nothing to fit yet; from 2 on a proportional
    # estimate; from 6 fitted steps the fit is exact
    assert predicted[0] is None
    actual_left = [sum(duration(c) for c in costs[i:]) for i in range(1, len(costs) + 1)]
    for step in range(6, len(costs) + 1):
        assert predicted[step - 1] == pytest.approx(actual_left[step - 1], abs=1e-6)
    assert model.errors(now, within=(0.6, 0.9)) == pytest.approx([0.0] * 4, abs=1e-6)
    # a steps/s average (tqdm's ETA) would be off by the mix of lengths ahead
    mean_step = now / len(costs)
    assert abs(mean_step * 4 - actual_left[5]) / actual_left[5] > 0.3
