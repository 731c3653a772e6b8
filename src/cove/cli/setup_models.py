"""``cove setup-models``: build Cove's default task models with the recipes (skipping ones already built)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("setup-models", help="fine-tune the default task models (sentiment, ...) locally")
    p.add_argument("recipes", nargs="*", help="recipes to build (default: all)")
    p.add_argument("--force", action="store_true", help="rebuild even when the model already exists")
    p.add_argument("--list", action="store_true", help="list the recipes and where their models live")
    p.set_defaults(func=_setup_models)


def _setup_models(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: no spinning threads (recipes)
    from cove.errors import TrainingError
    from cove.hardware import describe, prefers_bf16
    from cove.training.recipes import DEFAULT_MODELS, RECIPES, local_model_dir

    announced = False
    names = args.recipes or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise TrainingError(f"Unknown recipe(s) {unknown}; available: {sorted(RECIPES)}.")
    for name in names:
        module_name, tasks = RECIPES[name]
        repo_id = DEFAULT_MODELS[tasks[0]]
        folder = local_model_dir(repo_id)
        built = (folder / "config.json").is_file()
        if args.list:
            print(f"{name:12} tasks={','.join(tasks)} model={repo_id} path={folder} built={built}")
            continue
        if built and not args.force:
            print(f"{name}: {repo_id} already built at {folder} (use --force to rebuild)")
            continue
        if not announced:  # what TrainingArguments(bf16="auto") will pick, before the minutes it costs
            print(f"precision: {'bf16 autocast' if prefers_bf16('cpu') else 'fp32'} ({describe()})")
            announced = True
        print(f"{name}: building {repo_id} -> {folder}")
        module = importlib.import_module(module_name)
        started = time.time()
        figures = module.build(folder)
        print(json.dumps(figures, indent=2))
        print(_budget_report(name, time.time() - started, getattr(module, "BUDGET_SECONDS", None), folder))
    return 0


def _budget_report(name: str, wall: float, budget: float | None, folder: object) -> str:
    """One line on the build's wall time against the recipe's budget; an overrun is reported, not fatal."""
    took = f"{int(wall // 60)}m{wall % 60:02.0f}s"
    if budget is None:
        return f"{name}: built in {took}"
    limit = f"{int(budget // 60)}m{budget % 60:02.0f}s"
    if wall <= budget:
        return f"{name}: built in {took}, within its {limit} budget"
    load = f"load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "load unknown"
    return (
        f"{name}: built in {took}, over its {limit} budget ({load} on {os.cpu_count()} CPUs). The model is "
        f"complete and saved in {folder}; the budget is for an idle 2-core machine, and a busier or slower "
        "one takes longer (the figures above give each phase's time)."
    )
