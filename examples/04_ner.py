# Seed tutorial: 003, "Module 4: Named Entity Recognition (NER)" (4.2).
#
# Changed from the tutorial: the import (`transformers` -> `cove`). Nothing else.
# The default NER model is cove/minilm-ner (all-MiniLM-L6-v2 fine-tuned on PER/ORG/LOC/MISC, BIO tags), built
# into the local hub by `cove setup-models`. As in transformers, `pipeline("ner")` without aggregation returns
# one entry per word piece with its B-/I- tag; 05_ner_grouped_entities.py groups them. MiniLM is uncased, so
# the real default model may read "hugging face" as two everyday words and miss it (the README's NER notes).
from cove import pipeline

# Load NER pipeline
ner = pipeline("ner")

# Perform NER on a sample text
text = "Hugging Face is based in New York and was founded by Clément Delangue."
entities = ner(text)
print(entities)
