"""Encoder-decoder generation speed: Cove vs transformers on tiny-but-not-trivial T5 and BART.

Each family is built by transformers from a fixed seed (6 encoder and 6 decoder layers, d_model 512, the
real vocabulary size so the LM head costs what it does in t5-small / bart-base), saved to a temporary
folder and loaded from there by both ``cove.AutoModelForSeq2SeqLM`` and transformers. Random encoder inputs
of different lengths (right-padded, with an attention mask) at batch 1 and 8 generate ``--new-tokens`` new
tokens (``min_new_tokens`` equal to it, so eos never stops a row early) greedily and with 4 beams. Cove and
transformers alternate within every repeat, so machine drift hits both; medians of tokens/s (returned new
tokens over the whole batch per second, the encoder included) are printed side by side with the ratio and
whether the generated tokens are identical. A mismatch is a failure: it is printed and the exit code is 1.

    python benchmarks/seq2seq.py [--repeats 3] [--new-tokens 64] [--families t5,bart] [--threads N]
                                 [--batches 1,8] [--modes greedy,beam]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

SEED = 0
MODES = {"greedy": dict(num_beams=1), "beam": dict(num_beams=4)}


def make_config(family: str):
    import transformers

    if family == "t5":  # t5-small's shape: relu feed-forward, tied embeddings
        return transformers.T5Config(
            vocab_size=32128,
            d_model=512,
            d_kv=64,
            d_ff=2048,
            num_layers=6,
            num_heads=8,
            decoder_start_token_id=0,
        )
    if family == "bart":  # bart-base's vocabulary and feed-forward, 6+6 layers at width 512
        return transformers.BartConfig(
            vocab_size=50265,
            d_model=512,
            encoder_layers=6,
            decoder_layers=6,
            encoder_attention_heads=8,
            decoder_attention_heads=8,
            encoder_ffn_dim=2048,
            decoder_ffn_dim=2048,
            max_position_embeddings=1024,
        )
    raise SystemExit(f"unknown family {family!r}: choose from t5, bart")


def save_random_model(family: str, folder: Path) -> None:
    import transformers

    torch.manual_seed(SEED)
    transformers.AutoModelForSeq2SeqLM.from_config(make_config(family)).eval().save_pretrained(folder)


def make_inputs(batch: int, vocab: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(SEED + batch)
    lengths = [48] if batch == 1 else [int(x) for x in torch.randint(16, 97, (batch,), generator=g)]
    width = max(lengths)
    ids = torch.randint(3, vocab, (batch, width), generator=g)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    ids[mask == 0] = pad
    return ids, mask


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run(model, ids, mask, new_tokens: int, options: dict) -> tuple[float, torch.Tensor]:
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, **options)
    with torch.inference_mode():
        start = time.perf_counter()
        out = model.generate(ids, attention_mask=mask, **kwargs)
        total = time.perf_counter() - start
    # decoder output starts with decoder_start_token_id: every other column is a new token
    return (out.shape[1] - 1) * out.shape[0] / total, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--families", default="t5,bart")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--modes", default="greedy,beam", help="greedy and/or beam (4 beams)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    import transformers

    import cove
    from cove.hardware import describe

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    print(f"hardware: {describe()}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; transformers {transformers.__version__}; "
        f"load average {load_average()} on {os.cpu_count()} CPUs"
    )
    print(
        f"random weights (seed {SEED}), fp32, {args.new_tokens} new tokens (min_new_tokens too), "
        f"median of {args.repeats} interleaved runs\n"
    )
    header = (
        f"{'family':6} {'mode':7} {'batch':>5} | {'cove tok/s':>10} {'hf tok/s':>9} {'ratio':>6} | "
        f"tokens identical | load avg"
    )
    print(header)
    print("-" * len(header))
    failures = []
    with tempfile.TemporaryDirectory(prefix="cove-s2s-bench-") as tmp:
        for family in args.families.split(","):
            folder = Path(tmp) / family
            save_random_model(family, folder)
            ours = cove.AutoModelForSeq2SeqLM.from_pretrained(folder)
            peer = transformers.AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
            params = sum(p.numel() for p in peer.parameters()) / 1e6
            config = peer.config
            for mode in args.modes.split(","):
                if mode not in MODES:
                    raise SystemExit(f"unknown mode {mode!r}: choose from {', '.join(MODES)}")
                options = MODES[mode]
                label = f"beam {options['num_beams']}" if mode == "beam" else mode
                for batch in (int(b) for b in args.batches.split(",")):
                    ids, mask = make_inputs(batch, config.vocab_size, config.pad_token_id)
                    run(ours, ids, mask, 4, options)  # warm-up: first-call allocations and kernels
                    run(peer, ids, mask, 4, options)
                    speeds: dict[str, list[float]] = {"cove": [], "hf": []}
                    same = True
                    for _ in range(args.repeats):
                        tps, a = run(ours, ids, mask, args.new_tokens, options)
                        speeds["cove"].append(tps)
                        tps, b = run(peer, ids, mask, args.new_tokens, options)
                        speeds["hf"].append(tps)
                        same = same and a.shape == b.shape and bool((a == b).all())
                    cove_tps, hf_tps = (statistics.median(v) for v in speeds.values())
                    if not same:
                        failures.append(f"{family} {label} batch {batch}")
                    print(
                        f"{family:6} {label:7} {batch:>5} | {cove_tps:>10.1f} {hf_tps:>9.1f} "
                        f"{cove_tps / hf_tps:>5.2f}x | {'yes' if same else 'NO':>16} | {load_average()}",
                        flush=True,
                    )
            print(f"  ({family}: {params:.1f}M parameters, inputs of 16-96 tokens at batch 8, 48 at batch 1)")
            del ours, peer
    if failures:
        print("FAILED: generated tokens differ for " + ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
