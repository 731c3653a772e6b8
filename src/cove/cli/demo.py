"""``cove demo MODEL``: a Gradio app for a model (or a task's default model), launched here or written as
a space repo with --share-on-hub."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="launch a Gradio demo of a model, or push it as a space",
        description="Examples: cove demo cove/minilm-sentiment | cove demo ./my-ner --port 7861 | "
        "cove demo sentiment-analysis | cove demo ./my-t5 --task summarization | "
        "cove demo cove/minilm-sentiment --share-on-hub alice/sentiment-demo",
    )
    p.add_argument("model", help="model name or folder (the hub's, or COVE_ENDPOINT's), or a task name")
    p.add_argument("--task", default=None, help="the pipeline task (default: the model card's pipeline_tag)")
    p.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    p.add_argument("--share-on-hub", metavar="REPO", default=None, help="write the demo as this space repo")
    p.add_argument("--private", action="store_true", help="--share-on-hub: make the space private")
    p.add_argument("--token", default=None, help="--share-on-hub: a write token (default: the stored login)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16 or auto, as for cove run")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    import cove.demo

    if args.share_on_hub:
        url = cove.demo.share_on_hub(
            args.model, args.share_on_hub, task=args.task, token=args.token, private=args.private
        )
        print(f"Space written: {url}")
        return 0
    print(f"Loading {args.model}...", file=sys.stderr, flush=True)
    if args.task:
        app = cove.demo.interface(args.task, model=args.model, dtype=args.dtype)
    else:
        app = cove.demo.interface(args.model, dtype=args.dtype)
    try:
        app.launch(
            server_name=args.host,
            server_port=args.port,
            show_error=True,
            quiet=True,
            prevent_thread_lock=True,
        )
    except OSError as exc:  # gradio's "Cannot find empty port": another server holds it
        print(
            f"cove: error: cannot serve on {args.host}:{args.port} ({exc}): pass another --port.",
            file=sys.stderr,
        )
        return 1
    print(
        f"Serving the demo of {args.model} on http://{args.host}:{args.port}/ (Ctrl+C stops it)", flush=True
    )
    try:
        app.block_thread()
    finally:
        app.close()
    return 0
