# Seed tutorial: 003, "Module 6: Question Answering with Hugging Face" (6.2).
#
# Changed from the tutorial: the import (`transformers` -> `cove`). Nothing else.
# The default question-answering model is built by `cove setup-models` (a MiniLM fine-tuned for extractive QA
# by a recipe, issue 18 item 3); until that recipe is there, `pipeline("question-answering")` says it has no
# default model.
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
