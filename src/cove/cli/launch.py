"""``cove launch``: run a training script in one or several processes, as ``accelerate launch`` does.

One process runs the script directly; several go through torch's own launcher
(``python -m torch.distributed.run``, i.e. torchrun), which sets RANK/WORLD_SIZE/MASTER_* for
``cove.Accelerator`` (and ``cove.Trainer``) to pick up. ``--mixed_precision`` reaches the script's
``Accelerator(mixed_precision=None)`` through $COVE_MIXED_PRECISION.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from cove.errors import TrainingError

PRECISIONS = ("no", "bf16", "auto")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "launch",
        help="run a training script in N processes (torchrun, gloo on CPU), like `accelerate launch`",
        description="Run SCRIPT (or -m MODULE) with its arguments in --nproc_per_node processes.",
    )
    p.add_argument(
        "--nproc_per_node",
        "--nproc-per-node",
        "--num_processes",
        "--num-processes",
        dest="nproc_per_node",
        type=int,
        default=1,
        help="processes on this machine (default 1: the script runs directly)",
    )
    p.add_argument("--nnodes", type=int, default=1, help="machines taking part (default 1)")
    p.add_argument("--node_rank", "--machine_rank", dest="node_rank", type=int, default=0)
    p.add_argument(
        "--master_addr", "--main_process_ip", dest="master_addr", default=None, help="rank 0's address"
    )
    p.add_argument(
        "--master_port",
        "--main_process_port",
        dest="master_port",
        type=int,
        default=None,
        help="rank 0's port (default: a free one on a single machine)",
    )
    p.add_argument(
        "--mixed_precision",
        "--mixed-precision",
        dest="mixed_precision",
        choices=PRECISIONS,
        default=None,
        help="the default for Accelerator(mixed_precision=None) in the script",
    )
    p.add_argument("-m", "--module", action="store_true", help="SCRIPT is a module name, run as `python -m`")
    p.add_argument("script", help="the training script (or module, with -m)")
    p.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments passed on to the script")
    p.set_defaults(func=_launch)


def launch_command(args: argparse.Namespace) -> list[str]:
    """The command line that runs the script as asked."""
    if args.nproc_per_node < 1:
        raise TrainingError(f"--nproc_per_node must be at least 1, got {args.nproc_per_node}.")
    if args.nnodes < 1:
        raise TrainingError(f"--nnodes must be at least 1, got {args.nnodes}.")
    if not args.module and not Path(args.script).is_file():
        raise TrainingError(
            f"{args.script} is not a file: pass the training script's path (or -m and a module name)."
        )
    target = ["-m", args.script] if args.module else [args.script]
    if args.nproc_per_node == 1 and args.nnodes == 1:
        return [sys.executable, *target, *args.script_args]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.nproc_per_node)]
    if args.nnodes > 1:
        if not args.master_addr:
            raise TrainingError(
                f"--nnodes {args.nnodes} needs --master_addr: the address of the machine running node_rank 0."
            )
        command += ["--nnodes", str(args.nnodes), "--node_rank", str(args.node_rank)]
        command += ["--master_addr", args.master_addr, "--master_port", str(args.master_port or 29500)]
    elif args.master_port is not None:
        command += ["--master_addr", args.master_addr or "127.0.0.1", "--master_port", str(args.master_port)]
    else:
        command.append("--standalone")  # a local rendezvous on a free port
    if args.module:
        command.append("--module")
    return [*command, args.script, *args.script_args]


def _launch(args: argparse.Namespace) -> int:
    command = launch_command(args)
    env = dict(os.environ)
    if args.mixed_precision is not None:
        env["COVE_MIXED_PRECISION"] = args.mixed_precision
    if args.nproc_per_node > 1:
        # the cores shared out between the processes, as accelerate does (torchrun alone would set 1)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc_per_node)))
    try:
        return subprocess.run(command, env=env).returncode
    except KeyboardInterrupt:  # the children got the same Ctrl-C
        return 130
