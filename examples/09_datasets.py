# Seed tutorials: 000, "I. Hugging Face Ecosystem" ("The Dataset Hub ... The `datasets` library facilitates easy
# loading and processing, including streaming support"), and 001, "When to Use What" (custom dataset:
# `datasets`).
#
# The seeds describe `datasets` without a code block: this is the datasets quickstart's load / inspect / map /
# filter / split / stream sequence, with the import as `cove`. `load_dataset("glue", "mrpc")` cannot exist
# offline, so the hub name becomes examples/data/paraphrase-pairs, a tiny MRPC-shaped folder (train.csv,
# validation.csv, README.md) written for these examples; the last part builds a custom dataset from this
# script's own rows, as a user's own data would be.
import json
import tempfile
from pathlib import Path

from cove import AutoTokenizer, Dataset, load_dataset

DATA = Path(__file__).resolve().parent / "data" / "paraphrase-pairs"

# Load a dataset (a folder in the hub layout: one file per split)
dataset = load_dataset(str(DATA))
print(dataset)
print(dataset["train"].features)
print(dataset["train"][0])

# Process it with map: one example at a time ...
dataset = dataset.map(lambda example: {"words": len(example["sentence1"].split())})
print("words in the first sentence1:", dataset["train"][0]["words"])

# ... or in batches, here with a tokenizer
tokenizer = AutoTokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
tokenized = dataset.map(
    lambda batch: tokenizer(batch["sentence1"], batch["sentence2"], truncation=True), batched=True
)
print(tokenized["train"].column_names)

# Select, filter, split
paraphrases = dataset["train"].filter(lambda example: example["label"] == 1)
print("paraphrase pairs in train:", paraphrases.num_rows)
splits = dataset["train"].train_test_split(test_size=0.25, seed=42)
print("split sizes:", splits["train"].num_rows, splits["test"].num_rows)

# Stream it instead of loading it all
stream = load_dataset(str(DATA), split="validation", streaming=True)
for example in stream.take(2):
    print("streamed:", example["sentence1"])

# A custom dataset: your own rows, in memory or in a JSON Lines file
rows = [
    {"text": "The soup was cold and the bread was stale.", "label": 0},
    {"text": "A friendly waiter and the best pie in town.", "label": 1},
    {"text": "We waited an hour for a table.", "label": 0},
]
in_memory = Dataset.from_list(rows)
print(in_memory)
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "reviews.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    reviews = load_dataset("json", data_files=str(path), split="train")
    print("reviews from json:", reviews.num_rows, reviews["label"])
