"""``cove import PATH``: bring models and datasets into the hub (placeholder until the command lands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    del sub
