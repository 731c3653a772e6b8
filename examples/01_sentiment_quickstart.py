# Seed tutorial: 001, "Hugging Face Ecosystem Overview", section "Transformers Library Overview"
# ("Pipelines for quick usage").
#
# Changed from the tutorial: the import (`transformers` -> `cove`). Nothing else.
# The default sentiment model is cove/minilm-sentiment (all-MiniLM-L6-v2 fine-tuned on sentence polarity),
# which `cove setup-models` builds into the local hub; without it the pipeline says to run that command.
from cove import pipeline

classifier = pipeline("sentiment-analysis")
print(classifier("I love Hugging Face!"))
