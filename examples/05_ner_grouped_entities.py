# Seed tutorial: 004, "Session 3 - Hugging Face Models", "Features of Hugging Face Transformers", items 3-4
# (entity recognition; "The `grouped_entities=True` option in the pipeline creation function allows the model
# to regroup together the parts of the sentence that correspond to the same entity").
#
# The seed describes the option without a code block: this is the transformers call it describes, on the
# sentence of seed 003's NER module, with the import as `cove`. `grouped_entities=True` is transformers'
# older spelling of `aggregation_strategy="simple"`; both work. The default NER model is cove/minilm-ner,
# built by `cove setup-models`.
from cove import pipeline

ner = pipeline("ner", grouped_entities=True)

text = "Hugging Face is based in New York and was founded by Clément Delangue."
for entity in ner(text):
    print(entity)
