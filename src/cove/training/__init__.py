"""Fine-tuning: Trainer, TrainingArguments, data collators, callbacks and recipes."""

from cove.training.arguments import TrainingArguments
from cove.training.callbacks import (
    EarlyStoppingCallback,
    ProgressCallback,
    TensorBoardCallback,
    TrainerCallback,
    TrainerControl,
    TrainerState,
)
from cove.training.collators import (
    DataCollatorForLanguageModeling,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    default_data_collator,
)
from cove.training.trainer import Trainer, get_last_checkpoint
from cove.training.utils import EvalPrediction, PredictionOutput, TrainOutput, set_seed

__all__ = [
    "DataCollatorForLanguageModeling",
    "DataCollatorForTokenClassification",
    "DataCollatorWithPadding",
    "EarlyStoppingCallback",
    "EvalPrediction",
    "PredictionOutput",
    "ProgressCallback",
    "TensorBoardCallback",
    "TrainOutput",
    "Trainer",
    "TrainerCallback",
    "TrainerControl",
    "TrainerState",
    "TrainingArguments",
    "default_data_collator",
    "get_last_checkpoint",
    "set_seed",
]
