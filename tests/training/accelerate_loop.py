"""One small training loop written against accelerate's API, run with `cove.Accelerator` or with the
`accelerate` package (the only difference is which Accelerator class it gets).

Run alone or under torchrun / `cove launch`:
    python -m tests.training.accelerate_loop cove|accelerate OUT_DIR [--mixed-precision bf16]
Each process writes OUT_DIR/<backend>_<rank>.json (losses, learning rates, grad norms, gathered eval) and
OUT_DIR/<backend>_<rank>.safetensors (final weights); with cove it then repeats the run, stopped after one
epoch and resumed from save_state in fresh objects (cove_resumed_<rank>.*).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader

from cove.training.collators import DataCollatorWithPadding
from cove.training.optim import get_scheduler
from tests.training.helpers import ToyTokenizer, tiny_model, toy_examples

TRAIN_SIZE = 37  # with batch 4: a short last batch, and an uneven last round over 2 processes
EVAL_SIZE = 9
EPOCHS = 2


class Outputs(NamedTuple):
    loss: torch.Tensor
    logits: torch.Tensor


class PlainOutputs(torch.nn.Module):
    """The model with a namedtuple for output. accelerate's bf16 forward rebuilds a Mapping output as
    ``type(output)(dict)``, which Cove's dataclass ModelOutput does not accept (its first field would get
    the dict), so the bf16 comparison runs both sides on this wrapper."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, **batch: Any) -> Outputs:
        out = self.model(**batch)
        return Outputs(out.loss, out.logits)


def accelerator_class(backend: str) -> Any:
    if backend == "cove":
        from cove import Accelerator

        return Accelerator
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    # accelerate keeps its state in process-wide singletons: start each run from a clean one
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return Accelerator


def _collate_eval(features: list[dict]) -> dict:
    batch = DataCollatorWithPadding(ToyTokenizer())(
        [{k: f[k] for k in ("input_ids", "label")} for f in features]
    )
    batch["idx"] = [f["idx"] for f in features]  # a list of ints: gathered as objects
    return batch


def build(backend: str, mixed_precision: str, model_seed: int = 0) -> tuple[Any, ...]:
    Accelerator = accelerator_class(backend)
    torch.manual_seed(1234)
    model = tiny_model(seed=model_seed, dropout=0.1)  # dropout: the RNG streams must match too
    if mixed_precision != "no":
        model = PlainOutputs(model)
    torch.manual_seed(1234)
    train = toy_examples(TRAIN_SIZE, seed=1, with_text=False)
    evaluation = [{**ex, "idx": i} for i, ex in enumerate(toy_examples(EVAL_SIZE, seed=2, with_text=False))]
    train_loader = DataLoader(
        train, batch_size=4, shuffle=True, collate_fn=DataCollatorWithPadding(ToyTokenizer())
    )
    eval_loader = DataLoader(evaluation, batch_size=2, collate_fn=_collate_eval)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=2, num_training_steps=24)
    accelerator = Accelerator(gradient_accumulation_steps=2, mixed_precision=mixed_precision)
    model, optimizer, train_loader, eval_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, eval_loader, scheduler
    )
    return accelerator, model, optimizer, train_loader, eval_loader, scheduler


def run_epochs(parts: tuple[Any, ...], epochs: range, record: dict[str, list]) -> None:
    accelerator, model, optimizer, train_loader, eval_loader, scheduler = parts
    for _ in epochs:
        model.train()
        for batch in train_loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    record["grad_norms"].append(float(accelerator.clip_grad_norm_(model.parameters(), 1.0)))
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            record["losses"].append(loss.item())
            record["lrs"].append(scheduler.get_last_lr()[0])
            record["sync"].append(bool(accelerator.sync_gradients))
        model.eval()
        predictions, labels, ids = [], [], []
        with torch.no_grad():
            for batch in eval_loader:
                idx = batch.pop("idx")
                logits = model(**batch).logits
                pred, label = accelerator.gather_for_metrics((logits.argmax(-1), batch["labels"]))
                predictions += pred.tolist()
                labels += label.tolist()
                ids += accelerator.gather_for_metrics(idx)
        record["eval"].append({"predictions": predictions, "labels": labels, "ids": ids})
        record["mean_loss"].append(float(accelerator.reduce(torch.tensor(record["losses"][-1]), "mean")))


def _record() -> dict[str, list]:
    return {"losses": [], "lrs": [], "grad_norms": [], "sync": [], "eval": [], "mean_loss": []}


def _write(parts: tuple[Any, ...], record: dict, out: Path, name: str) -> None:
    from safetensors.torch import save_file

    accelerator, model = parts[0], parts[1]
    weights = {k: v.detach().contiguous() for k, v in accelerator.unwrap_model(model).state_dict().items()}
    record["num_processes"] = accelerator.num_processes
    record["process_index"] = accelerator.process_index
    rank = accelerator.process_index
    save_file(weights, str(out / f"{name}_{rank}.safetensors"))
    (out / f"{name}_{rank}.json").write_text(json.dumps(record))


def main(backend: str, out_dir: str, mixed_precision: str = "no", resume: bool = True) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = build(backend, mixed_precision)
    record = _record()
    run_epochs(parts, range(EPOCHS), record)
    _write(parts, record, out, backend)
    if not resume or backend != "cove":
        return  # accelerate's save_state cannot store Cove models: their fused q/k/v are views of one tensor
    # the same run, stopped after the first epoch and resumed from its saved state in fresh objects
    parts = build(backend, mixed_precision)
    first = _record()
    run_epochs(parts, range(1), first)
    parts[0].save_state(out / f"state_{backend}")
    parts = build(backend, mixed_precision, model_seed=99)  # other weights: load_state must replace them
    parts[0].load_state(out / f"state_{backend}")
    second = _record()
    run_epochs(parts, range(1, EPOCHS), second)
    resumed = {key: first[key] + second[key] for key in first}
    _write(parts, resumed, out, f"{backend}_resumed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["cove", "accelerate"])
    parser.add_argument("out_dir")
    parser.add_argument("--mixed-precision", default="no")
    parser.add_argument("--no-resume", action="store_true")
    args = parser.parse_args()
    main(args.backend, args.out_dir, args.mixed_precision, resume=not args.no_resume)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    os.environ.pop("COVE_MIXED_PRECISION", None)
