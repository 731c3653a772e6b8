"""``cove import PATH``: bring models and datasets on this machine into the hub (see cove.hub.importer)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="import a huggingface_hub cache, a model/dataset folder or a .safetensors/.gguf file into the hub",
        description=(
            "Import PATH into the hub: a huggingface_hub cache (~/.cache/huggingface/hub: every repo and "
            "revision, the cache's commits kept as hf-<hash> tags and its refs as branches), one repo folder "
            "of a cache, a model or dataset folder, or a single .safetensors/.gguf file. Revisions with "
            "missing, damaged or partly downloaded files are skipped and reported (exit status 1)."
        ),
    )
    p.add_argument("path", help="a cache, a cache repo folder, a model/dataset folder, or a file")
    p.add_argument(
        "--repo-id", default=None, help="namespace/name for a folder or file (with a cache: only that repo)"
    )
    p.add_argument(
        "--repo-type",
        default=None,
        choices=["model", "dataset", "space"],
        help="default: model (with a cache: a filter)",
    )
    p.add_argument("--private", action="store_true", help="create new repos private")
    p.add_argument(
        "--endpoint", default=None, help="a running hub's URL (default: the embedded hub of the data dir)"
    )
    p.add_argument(
        "--token",
        default=None,
        help="a write token for --endpoint (default: COVE_TOKEN/HF_TOKEN or the login)",
    )
    p.add_argument(
        "--data-dir", default=None, help="the embedded hub's data dir (default: $COVE_DATA_DIR or ~/.cove)"
    )
    p.add_argument(
        "--namespace",
        default=None,
        help="the organisation for cache repos named without one (default: the one the Hugging Face Hub moved "
        "them to, e.g. gpt2 -> openai-community, else 'hf')",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-revision lines")
    p.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    from cove.hub.importer import DEFAULT_NAMESPACE, import_path

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr)

    report = import_path(
        args.path,
        repo_id=args.repo_id,
        repo_type=args.repo_type,
        private=args.private,
        endpoint=args.endpoint,
        token=args.token,
        data_dir=args.data_dir,
        namespace=args.namespace or DEFAULT_NAMESPACE,
        log=log,
        progress=not args.quiet,
    )
    for skipped in report.skipped:
        print(
            f"skipped {skipped.repo_type} {skipped.repo_id}@{skipped.source[:12]}: {skipped.reason}",
            file=sys.stderr,
        )
    print(report.summary())
    return 1 if report.skipped else 0
