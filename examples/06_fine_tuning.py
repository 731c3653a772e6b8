# Seed tutorial: 003, "Module 5: Fine-Tuning Pre-trained Models" (5.2, Trainer/TrainingArguments on MRPC).
#
# Changed from the tutorial:
# - the imports: `transformers` -> `cove`, `datasets` -> `cove`;
# - `distilbert-base-uncased` cannot exist offline: the nearest bundled model is
#   sentence-transformers/all-MiniLM-L6-v2, a BERT, so the DistilBert classes become the Bert ones (Cove, like
#   transformers, refuses to load a BERT checkpoint into DistilBert classes). `cove import` brings the real
#   model in from a huggingface_hub cache, after which the tutorial's own lines run;
# - `load_dataset("glue", "mrpc")` cannot exist offline either: examples/data/paraphrase-pairs is a tiny
#   MRPC-shaped dataset (sentence1, sentence2, label, idx; train and validation splits) written for these
#   examples;
# - `max_length=32` in the tokenizer call: `padding="max_length"` alone pads every pair to 512 tokens (the
#   model's maximum), about 10 s a step on a 2-core CPU; these short pairs fit in 32 (the longest is 27);
# - the last two lines print the evaluation (the tutorial prints nothing).
from pathlib import Path

from cove import BertForSequenceClassification, BertTokenizer, Trainer, TrainingArguments, load_dataset

DATA = Path(__file__).resolve().parent / "data" / "paraphrase-pairs"

# Load a pre-trained BERT-family model and tokenizer (the tutorial's DistilBERT is not available offline)
model = BertForSequenceClassification.from_pretrained("sentence-transformers/all-MiniLM-L6-v2", num_labels=2)
tokenizer = BertTokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")

# Load dataset
dataset = load_dataset(str(DATA))


# Tokenize the dataset
def tokenize_function(examples):
    return tokenizer(
        examples["sentence1"], examples["sentence2"], padding="max_length", truncation=True, max_length=32
    )


tokenized_datasets = dataset.map(tokenize_function, batched=True)

# Set up training arguments
training_args = TrainingArguments(
    output_dir="./results",
    evaluation_strategy="epoch",
    learning_rate=2e-5,
    per_device_train_batch_size=16,
    per_device_eval_batch_size=16,
    num_train_epochs=3,
)

# Initialize the Trainer
trainer = Trainer(
    model=model,
    args=training_args,
    train_dataset=tokenized_datasets["train"],
    eval_dataset=tokenized_datasets["validation"],
)

# Fine-tune the model
result = trainer.train()
print(result)
print(trainer.evaluate())
