# Seed tutorial: 002, "Using Hugging Face Transformers" ("pipelines have default models selected for different
# tasks ... For many applications, such as text summarization and sentiment analysis, pre-trained models work
# well without any additional model training"); also 004, "Use Cases" (text summarization).
#
# The seeds name the task without a code block: this is transformers' summarization pipeline call, with the
# import as `cove`, on a short article written for this example. Cove's default summarizer is
# cove/minilm-extractive-summarizer (built by `cove setup-models` in seconds, no training): it returns the
# three sentences closest to the text's mean all-MiniLM-L6-v2 embedding, in the text's order, because no
# package ships seq2seq (T5/BART) weights; pass model= a T5 or BART folder for an abstractive summary.
from cove import pipeline

summarizer = pipeline("summarization")

ARTICLE = """The town of Millbrook opened its new public library on Saturday, after two years of building work.
The library has three floors, a reading garden on the roof and a workshop where anyone can repair a bicycle.
It cost four million dollars, paid for by the town council and a local charity. The old library, built in
1910, had no room for computers and flooded twice in the last decade. Children can now borrow tablets and
board games as well as books. The mayor said the library would stay open until nine every evening, so that
people who work during the day can use it too."""

print(summarizer(ARTICLE))
