# Seed tutorial: 003, "Module 6: Question Answering with Hugging Face" (6.2).
#
# Changed from the tutorial: the import (`transformers` -> `cove`). Nothing else.
# The default question-answering model, cove/minilm-qa, is built by `cove setup-models` (the bundled MiniLM
# fine-tuned for extractive QA on questions generated from the NER recipe's text).
from cove import pipeline

# Load question answering pipeline
qa = pipeline("question-answering")

# Define context and question
context = """
Hugging Face is an AI company based in New York. It provides NLP tools such as the Transformers library.
"""
question = "Where is Hugging Face based?"

# Get the answer
answer = qa(question=question, context=context)
print(answer)
