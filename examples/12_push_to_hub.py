# Seed tutorials: 001, "When to Use What" (upload models/datasets: `huggingface_hub`) and "Key Services"
# (Hugging Face Hub: share/download models, datasets); 004, "Hugging Face Hub" (host and collaborate,
# version control).
#
# The seeds name the hub without a code block: this is transformers' and datasets' `push_to_hub` and
# huggingface_hub's `create_repo` / `upload_folder`, with the imports changed (`transformers`, `datasets` ->
# `cove`, `huggingface_hub` -> `cove.hub`). With no hub configured (no COVE_ENDPOINT / HF_ENDPOINT), Cove
# pushes into the embedded local hub of its data dir (COVE_DATA_DIR, default ~/.cove), where
# `from_pretrained`, `load_dataset` and `cove serve` find it; with `cove serve` running and COVE_ENDPOINT set,
# the same lines push over HTTP (after `cove login`).
import tempfile
from pathlib import Path

import torch

from cove import AutoModelForSequenceClassification, AutoTokenizer, load_dataset
from cove.hub import create_repo, upload_folder

DATA = Path(__file__).resolve().parent / "data" / "paraphrase-pairs"

# A model and its tokenizer, pushed to a repo of their own
model = AutoModelForSequenceClassification.from_pretrained(
    "sentence-transformers/all-MiniLM-L6-v2", num_labels=2
)
tokenizer = AutoTokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
print("model commit:", model.push_to_hub("my-username/my-paraphrase-model", commit_message="Add the model"))
print("tokenizer commit:", tokenizer.push_to_hub("my-username/my-paraphrase-model"))

# ... and loaded back by its hub name, as anyone with access would
reloaded = AutoModelForSequenceClassification.from_pretrained("my-username/my-paraphrase-model")
reloaded_tokenizer = AutoTokenizer.from_pretrained("my-username/my-paraphrase-model")
inputs = reloaded_tokenizer("The shop closes at six.", "At six the shop shuts.", return_tensors="pt")
model.eval()
with torch.no_grad():
    same = torch.equal(model(**inputs).logits, reloaded(**inputs).logits)
print("reloaded model gives the same logits:", same)

# A dataset, pushed as Parquet with its card, then loaded by name
dataset = load_dataset(str(DATA))
print("dataset commit:", dataset.push_to_hub("my-username/paraphrase-pairs"))
print(load_dataset("my-username/paraphrase-pairs"))

# Any folder, as huggingface_hub's create_repo + upload_folder do it
create_repo("my-username/notes", exist_ok=True)
with tempfile.TemporaryDirectory() as folder:
    (Path(folder) / "README.md").write_text("# Notes\n\nWhat I tried, and what worked.\n")
    print(
        "folder commit:",
        upload_folder(repo_id="my-username/notes", folder_path=folder, commit_message="Notes"),
    )
