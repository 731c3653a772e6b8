"""summarization: text2text-generation whose records say ``summary_text`` (``summary_token_ids``), with the
model's ``task_specific_params["summarization"]`` (T5's ``"summarize: "`` prefix, BART's beam and length
settings) applied."""

from __future__ import annotations

from cove.pipelines.text2text_generation import Text2TextGenerationPipeline


class SummarizationPipeline(Text2TextGenerationPipeline):
    task = "summarization"
    return_name = "summary"
