# Seed tutorial: 001, "Core Libraries" (`evaluate`: easy metric computation, accuracy, F1, etc.) and
# "Exercises", Task 1 ("Track F1-score while evaluating").
#
# The seed names evaluate without a code block: this is the evaluate quickstart (load, compute, add_batch,
# combine) with the import changed: `import evaluate` -> `import cove.metrics as evaluate`. Cove's metrics
# are built in, so `load` needs no download.
import cove.metrics as evaluate

# One metric, all at once
accuracy = evaluate.load("accuracy")
print(accuracy.compute(references=[0, 1, 0, 1], predictions=[1, 0, 0, 1]))

# F1, tracked batch by batch while evaluating (as an eval loop would)
f1 = evaluate.load("f1")
for references, predictions in [([0, 1, 1], [0, 1, 0]), ([1, 0, 1], [1, 1, 1])]:
    f1.add_batch(references=references, predictions=predictions)
print(f1.compute())

# Several metrics as one
clf_metrics = evaluate.combine(["accuracy", "f1", "precision", "recall"])
print(clf_metrics.compute(predictions=[0, 1, 0], references=[0, 1, 1]))

# A span metric, for question answering
squad = evaluate.load("squad")
predictions = [
    {"prediction_text": "New York", "id": "q1"},
    {"prediction_text": "the Transformers", "id": "q2"},
]
references = [
    {"answers": {"answer_start": [39], "text": ["New York"]}, "id": "q1"},
    {"answers": {"answer_start": [78], "text": ["the Transformers library"]}, "id": "q2"},
]
print(squad.compute(predictions=predictions, references=references))
