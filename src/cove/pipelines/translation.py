"""translation and translation_xx_to_yy: text2text-generation whose records say ``translation_text``.

The task name picks the model's ``task_specific_params`` entry (T5's ``translation_en_to_de`` carries the
``"translate English to German: "`` prefix); plain ``translation`` on a model with such entries takes the first,
as transformers 4.57 does. A model whose entries do not include the asked pair refuses it, naming the pairs
it has. ``src_lang``/``tgt_lang`` are accepted as in transformers; for the single-pair models Cove runs
(T5's prefixes, Marian, BART) they change nothing: the tokenizers have no language-code tokens to set.
mBART, whose tokenizer places such codes, is refused for now.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from cove.errors import PipelineError
from cove.pipelines.text2text_generation import Text2TextGenerationParams, Text2TextGenerationPipeline

logger = logging.getLogger("cove.pipelines")

TASK_PATTERN = re.compile(r"translation_([^_]+)_to_([^_]+)")


@dataclass
class TranslationParams(Text2TextGenerationParams):
    src_lang: str | None = None
    tgt_lang: str | None = None


class TranslationPipeline(Text2TextGenerationPipeline):
    task = "translation"
    Params = TranslationParams
    return_name = "translation"

    def pipeline_generation_config(self) -> Any:
        if getattr(self.model.config, "model_type", None) == "mbart":
            # mBART picks its languages by language-code tokens (src_lang="en_XX") that its tokenizer places;
            # running without them would translate to no language in particular
            raise PipelineError(
                f"{self.task_name!r} with an mBART model needs its language codes (src_lang='en_XX', "
                "tgt_lang='de_DE'), which Cove's translation pipeline does not set yet: use "
                "'text2text-generation' with the codes in the input and forced_bos_token_id=<target code id>."
            )
        task_params = getattr(self.model.config, "task_specific_params", None) or {}
        pairs = sorted(k for k in task_params if TASK_PATTERN.fullmatch(k))
        if self.task_name == "translation" and pairs:
            self.task_name = next(k for k in task_params if TASK_PATTERN.fullmatch(k))
            logger.warning(
                '"translation" was asked instead of "translation_XX_to_YY": using %r', self.task_name
            )
        elif self.task_name != "translation" and pairs and self.task_name not in task_params:
            raise PipelineError(
                f"This model cannot do {self.task_name!r}: its config.task_specific_params know {pairs}. Ask "
                "for one of those, or pass a model trained for that pair."
            )
        return super().pipeline_generation_config()
