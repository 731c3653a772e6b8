"""Build Cove's default sentiment model: fine-tune all-MiniLM-L6-v2 on Pang & Lee's sentence polarity corpus.

The recipe itself lives in the package (src/cove/training/recipes/sentiment.py) so `cove setup-models`
can run it from an installed Cove; read it there. This script runs it:

    python recipes/sentiment.py [--output DIR] [--epochs 2] [--fp32 | --bf16]
"""

import os

# OpenMP threads that sleep instead of spinning while they wait: on a busy machine spinning burned ~4x the
# CPU per step for no speed-up (measured); set before torch loads, and only if the user has not chosen.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cove.training.recipes.sentiment import main

if __name__ == "__main__":
    main()
