"""Headline figure: fine-tuning steps/s and peak memory, Cove's Trainer vs transformers' Trainer.

Both fine-tune the real all-MiniLM-L6-v2 (loaded by each library from the same files) for sequence
classification on the same synthetic token batches (mixed lengths, padded per batch by the same collator),
with the same TrainingArguments (AdamW fused, linear schedule, weight decay, grad clipping, logging every
step, no checkpoints). Each run happens in its own subprocess so peak RSS is that run's alone; runs are
interleaved and repeated, medians reported, with the load average (the machine is shared).

The same padded batches reach both Trainers. Cove's trains padding-free (``padding_free=True``, its
default): its encoders run the token-wise layers (projections, feed-forward, norms) on the real tokens only
and attention on the padded layout, and dropout draws its masks in the padded layout. The masks are
torch's own, bit for bit, from the same random stream, but drawn faster: ``random_()`` on int64 takes the
same 64-bit numbers ``bernoulli_`` does and the keep test runs vectorised on integers
(cove.models.bert.dropout_mask), and in training the attention (SDPA's math path, which torch takes when
there is dropout) is written out so that its mask is drawn that way too. As padding is masked out of
attention and out of the loss, that is the padded pass's math: the per-step loss curves are printed
side by side with their largest difference (float rounding, ~1e-6; the parity is tested in
tests/parity/test_trainer_parity.py). ``--with-padded`` adds a Cove run with ``padding_free=False``.

    python benchmarks/training.py [--steps 30] [--batch 16] [--repeats 2] [--bf16] [--with-padded]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from cove.hardware import describe

NAME = "sentence-transformers/all-MiniLM-L6-v2"


def _examples(n: int, seed: int = 0) -> list[dict]:
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ids = [rng.randint(1000, 30000) for _ in range(rng.randint(16, 96))]
        out.append({"input_ids": [101, *ids, 102], "label": int(sum(ids) % 2)})
    return out


def _start_checkpoint(folder: str) -> None:
    """MiniLM with a seeded classification head, saved once: both Trainers start from the same weights."""
    import torch

    import cove
    from cove.hub.resolve import resolve_model_dir

    torch.manual_seed(0)
    model = cove.AutoModelForSequenceClassification.from_pretrained(resolve_model_dir(NAME), num_labels=2)
    model.save_pretrained(folder)


def _run(side: str, folder: str, steps: int, batch: int, bf16: bool) -> dict:
    """One training run in this process; prints a JSON line with the figures."""
    import resource
    import time

    import torch

    from cove.training.collators import DataCollatorWithPadding

    class Tok:
        pad_token_id = 0

    data = _examples(steps * batch)
    kwargs = dict(
        max_steps=steps,
        per_device_train_batch_size=batch,
        learning_rate=5e-5,
        weight_decay=0.01,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        bf16=bf16,
        seed=0,
    )
    out_dir = tempfile.mkdtemp()
    if side.startswith("cove"):
        import cove

        model = cove.AutoModelForSequenceClassification.from_pretrained(folder)
        trainer = cove.Trainer(
            model,
            cove.TrainingArguments(out_dir, padding_free=side == "cove", **kwargs),
            train_dataset=data,
            data_collator=DataCollatorWithPadding(Tok()),
        )
    else:
        import transformers

        transformers.logging.set_verbosity_error()
        model = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
        trainer = transformers.Trainer(
            model,
            transformers.TrainingArguments(out_dir, **kwargs),
            train_dataset=data,
            data_collator=DataCollatorWithPadding(Tok()),
        )
    torch.set_num_threads(torch.get_num_threads())

    def cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    start, cpu_start = time.perf_counter(), cpu_seconds()
    out = trainer.train()
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    return {
        "side": side,
        "steps_per_s": out.global_step / elapsed,
        # the machine is shared: steps per CPU-second is the figure other load disturbs least
        "steps_per_cpu_s": out.global_step / cpu,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_loss": losses[-1],
        "train_loss": out.training_loss,
        "losses": losses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument(
        "--with-padded", action="store_true", help="also run Cove's Trainer with padding_free=False"
    )
    parser.add_argument("--child", choices=["cove", "cove-padded", "transformers"], help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_run(args.child, args.start, args.steps, args.batch, args.bf16)))
        return
    start = tempfile.mkdtemp(prefix="cove-bench-start-")
    _start_checkpoint(start)
    sides = ["transformers", "cove", *(["cove-padded"] if args.with_padded else [])]
    results: dict[str, list[dict]] = {side: [] for side in sides}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for side in sides:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                side,
                "--start",
                start,
                "--steps",
                str(args.steps),
                "--batch",
                str(args.batch),
            ]
            if args.bf16:
                cmd.append("--bf16")
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            loads.append(os.getloadavg()[0])
            run = results[side][-1]
            print(  # as each run ends, so a long benchmark on a busy machine shows (and keeps) its figures
                f"  {side}: {run['steps_per_s']:.3f} steps/s, {run['steps_per_cpu_s']:.3f} steps/CPU-s, "
                f"load {loads[-1]:.1f}",
                file=sys.stderr,
                flush=True,
            )
    print(f"hardware: {describe()}")
    print(f"load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}")
    print(
        f"MiniLM-L6 sequence classification, {args.steps} steps, batch {args.batch}, "
        f"{'bf16 autocast' if args.bf16 else 'fp32'}, median of {args.repeats}"
    )
    print(
        f"{'':14}{'steps/s':>10}{'steps/CPU-s':>13}{'peak RSS MiB':>14}{'final loss':>12}{'train loss':>12}"
    )
    med = {}
    for side, runs in results.items():
        med[side] = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k not in ("side", "losses")}
        m = med[side]
        print(
            f"{side:14}{m['steps_per_s']:10.3f}{m['steps_per_cpu_s']:13.3f}{m['peak_rss_mib']:14.0f}"
            f"{m['final_loss']:12.4f}{m['train_loss']:12.4f}"
        )
    ratio = med["cove"]["steps_per_s"] / med["transformers"]["steps_per_s"]
    cpu_ratio = med["cove"]["steps_per_cpu_s"] / med["transformers"]["steps_per_cpu_s"]
    mem = med["cove"]["peak_rss_mib"] / med["transformers"]["peak_rss_mib"]
    print(
        f"cove / transformers: speed {ratio:.2f}x (per CPU-second {cpu_ratio:.2f}x), peak memory {mem:.2f}x"
    )
    curves = {side: runs[0]["losses"] for side, runs in results.items()}
    print("loss per step (first repeat):")
    print("step " + "".join(f"{side:>14}" for side in curves))
    for step, values in enumerate(zip(*curves.values()), start=1):
        print(f"{step:4} " + "".join(f"{v:14.6f}" for v in values))
    for side in sides[1:]:
        diff = max(abs(a - b) for a, b in zip(curves[side], curves["transformers"]))
        print(f"{side} vs transformers: largest loss difference over {len(curves[side])} steps {diff:.2e}")


if __name__ == "__main__":
    main()
