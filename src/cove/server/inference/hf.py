"""The Hugging Face Inference API: ``{"inputs": ..., "parameters": {...}}`` in, the shapes huggingface_hub's
InferenceClient parses out. Each task translates its payload into one ``TaskJob`` (what ``cove.pipeline``
is called with) and the pipeline's result into the API's shape; text-generation goes to ``tgi.py``.

Parameters are checked by name: an unknown one is a 422 naming it and the ones the task takes. Inputs
longer than the model takes are a 422 naming the limit, unless the request asks for truncation
(``parameters.truncation``; feature-extraction's root-level ``truncate``, as TEI).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cove.server.inference.engine import ServedModel, TaskJob
from cove.server.inference.errors import InferenceInputError

# keys of the HF API's "options" object: the hosted API's cache and cold-start switches (Cove neither
# caches answers nor keeps callers waiting for a load it could answer later)
_OPTIONS = {"use_cache", "wait_for_model"}
# feature-extraction's parameters travel at the body's root (TEI's /embed and InferenceClient's payload)
EMBED_KEYS = ("normalize", "prompt_name", "truncate", "truncation_direction", "dimensions", "encoding_format")
_GENERATION_OPTIONS = (
    "max_new_tokens",
    "max_length",
    "min_length",
    "min_new_tokens",
    "num_beams",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "length_penalty",
    "early_stopping",
    "num_return_sequences",
    "bad_words_ids",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "seed",
)


@dataclass
class Prepared:
    job: TaskJob
    shape: Callable[[Any], Any]  # the pipeline's result -> the API's answer


# -- checks ---------------------------------------------------------------------------------------


def check_keys(data: dict[str, Any], allowed: set[str] | tuple[str, ...], where: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InferenceInputError(
            f"Unknown {where} {', '.join(map(repr, unknown))}: this endpoint takes {', '.join(sorted(allowed)) or 'none'}."
        )


def text(value: Any, what: str = "inputs") -> str:
    if not isinstance(value, str):
        raise InferenceInputError(f"{what} must be a string, got {_kind(value)}.")
    if not value.strip():
        raise InferenceInputError(f"{what} is empty: send some text.")
    return value


def texts(value: Any, what: str = "inputs") -> list[str]:
    """A string or a non-empty list of strings, as a list."""
    if isinstance(value, str):
        return [text(value, what)]
    if not isinstance(value, list) or not value:
        raise InferenceInputError(
            f"{what} must be a string or a non-empty list of strings, got {_kind(value)}."
        )
    return [text(v, f"{what}[{i}]") for i, v in enumerate(value)]


def flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InferenceInputError(f"{what} must be true or false, got {_kind(value)}.")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    name = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number"}.get(
        type(value), type(value).__name__
    )
    return f"{name} ({value!r:.60})"


def _truncation(parameters: dict[str, Any]) -> bool:
    value = parameters.pop("truncation", None)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if value in ("do_not_truncate",):
        return False
    if value in ("longest_first", "only_first", "only_second"):
        return True
    raise InferenceInputError(
        f"parameters.truncation must be true/false or one of do_not_truncate, longest_first, only_first, "
        f"only_second; got {value!r}."
    )


# -- the tasks ------------------------------------------------------------------------------------


def prepare(served: ServedModel, task: str, body: dict[str, Any]) -> Prepared:
    """The job and answer shape of an HF API request for task (not text-generation)."""
    extra = EMBED_KEYS if task == "feature-extraction" else ()
    check_keys(body, {"inputs", "parameters", "options", *extra}, "body field")
    if "inputs" not in body:
        raise InferenceInputError('The body needs "inputs": {"inputs": ..., "parameters": {...}}.')
    parameters = body.get("parameters")
    parameters = {} if parameters is None else parameters
    if not isinstance(parameters, dict):
        raise InferenceInputError(f"parameters must be an object, got {_kind(parameters)}.")
    options = body.get("options")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise InferenceInputError(f"options must be an object, got {_kind(options)}.")
    check_keys(options, _OPTIONS, "option")
    parameters = dict(parameters)
    inputs = body["inputs"]
    if task == "feature-extraction":
        for key in EMBED_KEYS:  # TEI's and InferenceClient's root level, or in parameters
            if key in body:
                parameters[key] = body[key]
        return embed(served, inputs, parameters)
    if task == "sentence-similarity":
        return similarity(served, inputs, parameters)
    return _TASKS[task](served, inputs, parameters)


def embed(
    served: ServedModel,
    inputs: Any,
    parameters: dict[str, Any],
    *,
    pooled: bool | None = None,
    normalize_default: bool | None = None,
    as_list: bool = False,
) -> Prepared:
    """feature-extraction: pooled sentence embeddings for sentence-transformers models (as the Hub's API
    answers), each token's hidden state for others (as transformers' pipeline). TEI and OpenAI always pool
    (``pooled=True``) and answer a list of vectors for one string too (``as_list``); TEI normalises unless
    told not to (``normalize_default=True``), others as the model's modules say."""
    check_keys(parameters, {*EMBED_KEYS, "truncation"}, "parameter")
    truncate = parameters.pop("truncate", None)
    truncate = _truncation(parameters) if truncate is None else flag(truncate, "truncate")
    direction = parameters.get("truncation_direction")
    if direction not in (None, "right", "Right"):
        raise InferenceInputError(
            f"truncation_direction={direction!r}: Cove truncates on the right only; send 'right' or leave it out."
        )
    encoding = parameters.get("encoding_format")
    if encoding not in (None, "float"):
        raise InferenceInputError(
            f"encoding_format={encoding!r}: this endpoint answers floats; base64 is on /v1/embeddings."
        )
    if pooled is None:
        pooled = served.info.sentence_transformers
    dimensions = parameters.get("dimensions")
    if dimensions is not None:
        hidden = served.info.config.get("hidden_size") or served.info.config.get("dim")
        if not pooled or dimensions != hidden:
            raise InferenceInputError(
                f"dimensions={dimensions!r}: {served.repo_id!r} gives {hidden}-dimensional embeddings only."
            )
    items = texts(inputs)
    prompt_name = parameters.get("prompt_name")
    if prompt_name is not None:
        prompts = served.info.prompts
        if prompt_name not in prompts:
            known = ", ".join(sorted(prompts)) or "none"
            raise InferenceInputError(
                f"prompt_name={prompt_name!r} is not one of {served.repo_id!r}'s prompts ({known})."
            )
        items = [prompts[prompt_name] + t for t in items]
    tokens = _checked_tokens(served, items, truncate)
    normalize = parameters.get("normalize")
    if normalize is not None:
        flag(normalize, "normalize")
        if not pooled:
            raise InferenceInputError(
                "normalize applies to pooled sentence embeddings; this model answers each token's hidden state."
            )
    params: dict[str, Any] = {"truncation": truncate}
    if pooled:
        params["normalize"] = normalize_default if normalize is None else normalize
    single = isinstance(inputs, str)
    job = TaskJob(
        task="sentence-similarity" if pooled else "feature-extraction",
        inputs=items[0] if single else items,
        params=params,
        tokens=tokens,
    )
    if as_list:
        return Prepared(job, lambda result: [result] if single else result)
    return Prepared(job, lambda result: result)


def similarity(served: ServedModel, inputs: Any, parameters: dict[str, Any]) -> Prepared:
    check_keys(parameters, {"truncation"}, "parameter")
    truncate = _truncation(parameters)
    if not isinstance(inputs, dict):
        raise InferenceInputError(
            f'sentence-similarity takes inputs {{"source_sentence": ..., "sentences": [...]}}, got {_kind(inputs)}.'
        )
    check_keys(inputs, {"source_sentence", "sentences"}, "inputs field")
    source = text(inputs.get("source_sentence"), "inputs.source_sentence")
    others = inputs.get("sentences")
    if isinstance(others, str) or not others:
        raise InferenceInputError("inputs.sentences must be a non-empty list of strings to compare with.")
    items = [source, *texts(others, "inputs.sentences")]
    tokens = _checked_tokens(served, items, truncate)
    job = TaskJob(
        task="sentence-similarity",
        inputs=items,
        params={"truncation": truncate, "normalize": None},
        tokens=tokens,
        similarity=True,
    )
    return Prepared(job, lambda result: result)


def _checked_tokens(served: ServedModel, items: list[str], truncate: bool) -> int:
    total = 0
    limit = served.input_limit
    for i, item in enumerate(items):
        n = served.count_tokens(item)
        served.check_length(n, truncate, "The input" if len(items) == 1 else f"Input {i}")
        total += min(n, limit) if limit else n
    return total


def text_classification(served: ServedModel, inputs: Any, parameters: dict[str, Any]) -> Prepared:
    check_keys(parameters, {"top_k", "function_to_apply", "truncation"}, "parameter")
    truncate = _truncation(parameters)
    single = not isinstance(inputs, list)
    items = [inputs] if single else inputs
    if not items:
        raise InferenceInputError("inputs is an empty list: send at least one text.")
    total = 0
    for i, item in enumerate(items):
        where = "inputs" if single else f"inputs[{i}]"
        if isinstance(item, dict):
            check_keys(item, {"text", "text_pair"}, f"{where} field")
            first = text(item.get("text"), f"{where}.text")
            pair = item.get("text_pair")
            n = served.count_tokens(first, None if pair is None else text(pair, f"{where}.text_pair"))
        else:
            n = served.count_tokens(text(item, where))
        served.check_length(n, truncate, "The input" if single else f"Input {i}")
        total += n
    fn = parameters.get("function_to_apply")
    params = {
        "top_k": parameters.get("top_k"),
        "function_to_apply": fn.lower() if isinstance(fn, str) else fn,
        "truncation": truncate,
    }
    job = TaskJob("text-classification", inputs, params, total)
    # the API answers one ranked list per input, a lone input's inside a list too
    return Prepared(job, lambda result: [result] if single else result)


def token_classification(served: ServedModel, inputs: Any, parameters: dict[str, Any]) -> Prepared:
    check_keys(parameters, {"aggregation_strategy", "ignore_labels", "stride", "truncation"}, "parameter")
    truncate = _truncation(parameters)
    params = {
        # the Hub's API groups entities unless asked otherwise (its answers carry entity_group)
        "aggregation_strategy": parameters.get("aggregation_strategy") or "simple",
        "stride": parameters.get("stride"),
    }
    if parameters.get("ignore_labels") is not None:
        params["ignore_labels"] = parameters["ignore_labels"]
    items = texts(inputs)
    total = 0
    for i, item in enumerate(items):
        n = served.count_tokens(item)
        if params["stride"] is None:  # with a stride, long inputs run in overlapping windows
            served.check_length(n, truncate, "The input" if len(items) == 1 else f"Input {i}")
        total += n
    return Prepared(TaskJob("token-classification", inputs, params, total), lambda result: result)


def question_answering(served: ServedModel, inputs: Any, parameters: dict[str, Any]) -> Prepared:
    names = {
        "top_k",
        "doc_stride",
        "max_answer_len",
        "max_seq_len",
        "max_question_len",
        "handle_impossible_answer",
        "align_to_words",
    }
    check_keys(parameters, names, "parameter")
    single = isinstance(inputs, dict)
    items = [inputs] if single else inputs
    if not isinstance(items, list) or not items:
        raise InferenceInputError(
            f'question-answering takes inputs {{"question": ..., "context": ...}}, got {_kind(inputs)}.'
        )
    total = 0
    for i, item in enumerate(items):
        where = "inputs" if single else f"inputs[{i}]"
        if not isinstance(item, dict):
            raise InferenceInputError(
                f'{where} must be {{"question": ..., "context": ...}}, got {_kind(item)}.'
            )
        check_keys(item, {"question", "context"}, f"{where} field")
        # long contexts run in overlapping windows (doc_stride), long questions are cut (max_question_len)
        total += served.count_tokens(text(item.get("question"), f"{where}.question"))
        total += served.count_tokens(text(item.get("context"), f"{where}.context"))
    params = {k: v for k, v in parameters.items() if v is not None}
    return Prepared(TaskJob("question-answering", items[0] if single else items, params, total), lambda r: r)


def fill_mask(served: ServedModel, inputs: Any, parameters: dict[str, Any]) -> Prepared:
    check_keys(parameters, {"top_k", "targets", "truncation"}, "parameter")
    truncate = _truncation(parameters)
    items = texts(inputs)
    total = 0
    for i, item in enumerate(items):
        n = served.count_tokens(item)
        served.check_length(n, truncate, "The input" if len(items) == 1 else f"Input {i}")
        total += n
    params = {k: v for k, v in parameters.items() if v is not None}
    return Prepared(TaskJob("fill-mask", inputs, params, total), lambda result: result)


def zero_shot(served: ServedModel, inputs: Any, parameters: dict[str, Any]) -> Prepared:
    check_keys(
        parameters, {"candidate_labels", "hypothesis_template", "multi_label", "truncation"}, "parameter"
    )
    truncate = _truncation(parameters)
    labels = parameters.get("candidate_labels")
    if isinstance(labels, str):
        labels = [x.strip() for x in labels.split(",") if x.strip()]
    if not isinstance(labels, list) or not labels:
        raise InferenceInputError(
            "zero-shot-classification needs parameters.candidate_labels: a list of labels."
        )
    labels = texts(labels, "parameters.candidate_labels")
    template = parameters.get("hypothesis_template") or "This example is {}."
    items = texts(inputs)
    longest = max(labels, key=len)
    total = 0
    for i, item in enumerate(items):
        n = served.count_tokens(item, template.format(longest) if "{}" in template else template)
        served.check_length(n, truncate, "The input" if len(items) == 1 else f"Input {i}")
        total += n * len(labels)
    params: dict[str, Any] = {"candidate_labels": labels}
    for key in ("hypothesis_template", "multi_label"):
        if parameters.get(key) is not None:
            params[key] = parameters[key]
    single = isinstance(inputs, str)

    def shape(result: Any) -> Any:
        def pairs(one: dict[str, Any]) -> list[dict[str, Any]]:
            return [{"label": lab, "score": s} for lab, s in zip(one["labels"], one["scores"])]

        return pairs(result) if single else [pairs(r) for r in result]

    return Prepared(TaskJob("zero-shot-classification", inputs, params, total), shape)


def seq2seq(task: str) -> Callable[[ServedModel, Any, dict[str, Any]], Prepared]:
    def run(served: ServedModel, inputs: Any, parameters: dict[str, Any]) -> Prepared:
        allowed = {"truncation", "clean_up_tokenization_spaces", "generate_parameters", *_GENERATION_OPTIONS}
        if task == "translation":
            allowed |= {"src_lang", "tgt_lang"}
        check_keys(parameters, allowed, "parameter")
        truncate = _truncation(parameters)
        generate = parameters.pop("generate_parameters", None) or {}
        if not isinstance(generate, dict):
            raise InferenceInputError(
                f"parameters.generate_parameters must be an object, got {_kind(generate)}."
            )
        check_keys(generate, _GENERATION_OPTIONS, "generate_parameters field")
        items = texts(inputs)
        params: dict[str, Any] = {**generate, **{k: v for k, v in parameters.items() if v is not None}}
        params["truncation"] = truncate
        if task == "translation":
            src, tgt = params.pop("src_lang", None), params.pop("tgt_lang", None)
            pair = f"translation_{src}_to_{tgt}"
            known = served.info.config.get("task_specific_params") or {}
            if src and tgt and pair in known:
                params["task_name"] = pair
            elif src or tgt:
                params.update({k: v for k, v in (("src_lang", src), ("tgt_lang", tgt)) if v})
        total = sum(served.count_tokens(item) for item in items)
        return Prepared(TaskJob(task, inputs, params, total), lambda result: result)

    return run


_TASKS: dict[str, Callable[[ServedModel, Any, dict[str, Any]], Prepared]] = {
    "text-classification": text_classification,
    "token-classification": token_classification,
    "question-answering": question_answering,
    "fill-mask": fill_mask,
    "zero-shot-classification": zero_shot,
    "summarization": seq2seq("summarization"),
    "translation": seq2seq("translation"),
    "text2text-generation": seq2seq("text2text-generation"),
}
