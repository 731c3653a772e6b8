"""Build Cove's default NER model: fine-tune all-MiniLM-L6-v2 on public-domain and open English text labelled by spaCy.

The recipe itself lives in the package (src/cove/training/recipes/ner.py) so `cove setup-models` can run
it from an installed Cove; read it there. This script runs it:

    python recipes/ner.py [--output DIR] [--epochs 2] [--train-sentences 6000] [--seed 42] [--fp32 | --bf16]
"""

import os

# OpenMP threads that sleep instead of spinning while they wait (see recipes/sentiment.py); before torch loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cove.training.recipes.ner import main

if __name__ == "__main__":
    main()
