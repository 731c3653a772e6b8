"""Build Cove's default sentiment model: fine-tune all-MiniLM-L6-v2 on Pang & Lee's sentence polarity corpus.

The recipe itself lives in the package (src/cove/training/recipes/sentiment.py) so `cove setup-models`
can run it from an installed Cove; read it there. This script runs it:

    python recipes/sentiment.py [--output DIR] [--epochs 2] [--fp32]
"""

from cove.training.recipes.sentiment import main

if __name__ == "__main__":
    main()
