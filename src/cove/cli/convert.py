"""``cove convert gguf FILE OUT_DIR``: a GGUF file -> an HF-format folder (config, safetensors, tokenizer)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a checkpoint into an HF-format folder")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    g = kinds.add_parser(
        "gguf", help="dequantize a GGUF file into config.json + model.safetensors + tokenizer"
    )
    g.add_argument("file", help="the .gguf file")
    g.add_argument("out_dir", help="folder to write (created if missing)")
    g.set_defaults(func=_gguf)


def _gguf(args: argparse.Namespace) -> int:
    from cove.checkpoint.gguf import convert_gguf

    out = convert_gguf(args.file, args.out_dir)
    print(f"wrote {out} ({', '.join(sorted(p.name for p in out.iterdir()))})")
    return 0
