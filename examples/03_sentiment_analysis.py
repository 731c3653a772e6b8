# Seed tutorial: 003, "Module 3: Text Classification with Hugging Face Models" (3.2, sentiment analysis).
#
# Changed from the tutorial: the import (`transformers` -> `cove`). Nothing else.
# The tutorial's prose names distilbert-base-uncased, but its code uses the pipeline's default model; Cove's
# default is cove/minilm-sentiment (all-MiniLM-L6-v2 fine-tuned on sentence polarity, labels NEGATIVE /
# POSITIVE), built into the local hub by `cove setup-models`.
from cove import pipeline

# Load sentiment analysis pipeline
classifier = pipeline("sentiment-analysis")

# Analyze sentiment of a sentence
result = classifier("I love using Hugging Face!")
print(result)
