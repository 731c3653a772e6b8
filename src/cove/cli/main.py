"""The ``cove`` command. Each group of subcommands lives in its own module with a ``register``."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add subcommands; each defines register(subparsers) and sets a `func` default.
_COMMAND_MODULES = [
    "cove.cli.run",
    "cove.cli.convert",
    "cove.cli.setup_models",
    "cove.cli.hub",
    "cove.cli.scale",
    "cove.cli.launch",
    "cove.cli.import_",
    "cove.cli.infer",
    "cove.cli.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cove", description="Cove: self-hosted, offline-first NLP.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from cove.errors import CoveError

    try:
        return int(args.func(args) or 0)
    except CoveError as exc:
        print(f"cove: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
