"""What every pipeline shares: loading, parameters, and one batching loop.

A task defines ``preprocess`` (one input -> one or more features: token lists for the model plus whatever
postprocess needs), ``forward`` (a padded batch -> one output per row, cut to that row's length) and
``postprocess`` (an input and its features' outputs -> the JSON-serialisable result). The loop tokenizes a
window of inputs, sorts the features by length, pads each batch only to its own longest feature, runs the model
under ``torch.inference_mode`` and hands results back in input order. Inputs may be any iterable (a generator
too): they are consumed window by window, so memory stays bounded.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator, Sized
from pathlib import Path
from typing import Any, ClassVar

from cove.errors import PipelineError

WINDOW = 1024  # inputs tokenized and batched together


@dataclasses.dataclass
class Feature:
    inputs: dict[str, list[int]]  # model inputs, unpadded
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Prepared:
    """Inputs through ``preprocess``: all their features, and the span of features each input owns."""

    items: list[Any]
    features: list[Feature]
    spans: list[tuple[int, int]]


def pad_batch(rows: list[dict[str, list[int]]], pad_token_id: int) -> dict[str, Any]:
    """Right-pad token lists to the batch's longest and stack them into tensors."""
    import torch

    longest = max(len(r["input_ids"]) for r in rows)
    out: dict[str, Any] = {}
    for key in rows[0]:
        fill = pad_token_id if key == "input_ids" else 0
        out[key] = torch.tensor([r[key] + [fill] * (longest - len(r[key])) for r in rows], dtype=torch.long)
    return out


def batched_forward(
    rows: list[dict[str, list[int]]],
    forward: Callable[[dict[str, Any]], list[Any]],
    *,
    batch_size: int,
    pad_token_id: int,
    progress: Any = None,
    max_tokens: int | None = None,
) -> list[Any]:
    """Run ``forward`` over length-sorted, per-batch-padded batches; results come back in input order.

    A batch holds at most ``batch_size`` rows and, with ``max_tokens``, at most that many padded tokens
    (rows x its longest row; a row longer than that runs alone). Encoder models skip the padded positions
    (``skip_padding``): every task's ``forward`` cuts each row to its own length, so their values are never
    used."""
    import torch

    from cove.models.modeling import skip_padding

    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]), reverse=True)
    results: list[Any] = [None] * len(rows)
    with torch.inference_mode(), skip_padding():
        start = 0
        while start < len(order):
            end = min(start + batch_size, len(order))
            if max_tokens is not None:  # sorted longest first: the batch's first row sets its width
                width = max(1, len(rows[order[start]]["input_ids"]))
                end = min(end, start + max(1, max_tokens // width))
            idx = order[start:end]
            for i, result in zip(idx, forward(pad_batch([rows[i] for i in idx], pad_token_id))):
                results[i] = result
            if progress is not None:
                progress.update(len(idx))
            start = end
    return results


def windows(inputs: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(inputs)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def check_text(text: Any, task: str, what: str = "input") -> str:
    if text is None:
        raise PipelineError(f"{task} got None as {what}: pass a string.")
    if not isinstance(text, str):
        raise PipelineError(f"{task} takes strings; the {what} is a {type(text).__name__} ({text!r:.60}).")
    return text


def load_model_and_tokenizer(
    auto_model: Any,
    model: Any,
    tokenizer: Any,
    *,
    dtype: Any,
    device: Any,
    loader_kwargs: dict[str, Any] | None = None,
) -> tuple[Any, Any, Path | None]:
    """(model, tokenizer, the model's folder when it was loaded here from a name).

    A model name is resolved once: the model, and the tokenizer when none is given, both load from that
    snapshot. ``loader_kwargs`` are from_pretrained keywords (token, revision, local_files_only, the
    pipeline's ``model_kwargs``: cache_dir, config overrides, ...); the download ones also reach a tokenizer
    given by name.
    """
    from cove.hub.resolve import HubOptions, Snapshot, resolve
    from cove.tokenization.auto import AutoTokenizer

    kwargs = dict(loader_kwargs or {})
    hub = HubOptions.pop_from(kwargs)
    folder = None
    if isinstance(model, str | Snapshot) or hasattr(model, "__fspath__"):
        snapshot = resolve(model, hub)
        folder = snapshot.folder(hub.subfolder)
        if dtype is not None:
            kwargs["dtype"] = dtype
        if device is not None and kwargs.get("device_map") is None:
            kwargs["device"] = device
        model = auto_model.from_pretrained(snapshot, subfolder=hub.subfolder, **kwargs)
        if tokenizer is None or (isinstance(tokenizer, str) and tokenizer == snapshot.name):
            tokenizer = AutoTokenizer.from_pretrained(snapshot, subfolder=hub.subfolder)
    else:
        if kwargs:
            raise PipelineError(
                f"{sorted(kwargs)} are loading options, but the model was given as an object: load it with "
                "them first, or pass the model's name."
            )
        if dtype is not None:
            from cove.models.modeling import resolve_dtype

            model = model.to(resolve_dtype(dtype, model.config, device))
        if device is not None:
            model = model.to(device)
    if isinstance(tokenizer, str) or hasattr(tokenizer, "__fspath__"):
        tokenizer = AutoTokenizer.from_pretrained(
            tokenizer,
            token=hub.token,
            cache_dir=hub.cache_dir,
            local_files_only=hub.local_files_only,
            force_download=hub.force_download,
        )
    if tokenizer is None:
        raise PipelineError("A model object was given without a tokenizer: pass tokenizer= as well.")
    return model.eval(), tokenizer, folder


class Pipeline:
    task: ClassVar[str] = ""
    auto_model: ClassVar[str] = "AutoModel"
    defaults_key: ClassVar[str | None] = None  # the task's entry in pipelines/defaults.py, when not `task`
    Params: ClassVar[type] = type(None)
    default_batch_size: ClassVar[int] = 8

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        *,
        device: Any = None,
        dtype: Any = None,
        batch_size: int | None = None,
        progress: bool = False,
        revision: str | None = None,
        token: str | bool | None = None,
        trust_remote_code: bool | None = None,
        local_files_only: bool = False,
        device_map: Any = None,
        model_kwargs: dict[str, Any] | None = None,
        use_fast: bool = True,  # Cove has one (fast) tokenizer implementation
        **params: Any,
    ):
        from cove.hub.resolve import refuse_remote_code
        from cove.models import auto

        refuse_remote_code(trust_remote_code)
        loader_kwargs: dict[str, Any] = dict(model_kwargs or {})
        for key, value in (
            ("revision", revision),
            ("token", token),
            ("local_files_only", local_files_only or None),
            ("device_map", device_map),
        ):
            if value is None:
                continue
            if key in loader_kwargs:
                raise PipelineError(f"{key} is given both to the pipeline and in model_kwargs: pass it once.")
            loader_kwargs[key] = value
        if "dtype" in loader_kwargs and dtype is not None:
            raise PipelineError("dtype is given both to the pipeline and in model_kwargs: pass it once.")
        if device is not None and device_map is not None:
            raise PipelineError(f"Pass device= or device_map=, not both (got {device!r} and {device_map!r}).")
        if model is None:
            model = self.resolve_default_model()
        self.model, self.tokenizer, self.model_folder = load_model_and_tokenizer(
            getattr(auto, self.auto_model),
            model,
            tokenizer,
            dtype=dtype,
            device=device,
            loader_kwargs=loader_kwargs,
        )
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise PipelineError(f"batch_size must be a positive integer, got {batch_size!r}.")
        self.batch_size = batch_size or self.default_batch_size
        self.progress = progress
        self.params = self.make_params(self.Params(), params)

    # -- defaults and parameters ---------------------------------------------------------------

    @classmethod
    def resolve_default_model(cls) -> Any:
        from cove.pipelines.defaults import default_model

        return default_model(cls.defaults_key or cls.task)

    def make_params(self, base: Any, overrides: dict[str, Any]) -> Any:
        overrides = self.rename_params(dict(overrides))
        names = {f.name for f in dataclasses.fields(base)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise PipelineError(f"{self.task} does not take {unknown}; its parameters are {sorted(names)}.")
        params = dataclasses.replace(base, **overrides)
        self.validate_params(params)
        return params

    def rename_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Older spellings -> current names (a task overrides this)."""
        return params

    def validate_params(self, params: Any) -> None:
        """Raise PipelineError for bad values (a task overrides this)."""

    # -- the three stages ----------------------------------------------------------------------

    def normalize_inputs(self, inputs: Any, params: Any) -> tuple[str, Iterable[Any]]:
        """(how a single input was given: "str", "dict", or "" for an iterable of inputs; the inputs)."""
        if inputs is None:
            raise PipelineError(f"{self.task} got None: pass a string or a list of strings.")
        if isinstance(inputs, str):
            return "str", [inputs]
        if isinstance(inputs, dict):
            return "dict", [inputs]
        if not hasattr(inputs, "__iter__"):
            raise PipelineError(
                f"{self.task} takes a string or an iterable of strings, got {type(inputs).__name__}."
            )
        return "", inputs

    def preprocess(self, item: Any, params: Any) -> list[Feature]:
        raise NotImplementedError

    def forward(self, batch: dict[str, Any], params: Any) -> list[Any]:
        raise NotImplementedError

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: Any) -> Any:
        raise NotImplementedError

    def finalize(self, results: list[Any], single: str, params: Any) -> Any:
        return results[0] if single else results

    # -- the loop ------------------------------------------------------------------------------

    def __call__(self, inputs: Any, **params: Any) -> Any:
        call_params = self.make_params(self.params, params)
        single, items = self.normalize_inputs(inputs, call_params)
        progress = None
        if self.progress:
            from tqdm.auto import tqdm

            progress = tqdm(
                desc=self.task, unit="feature", total=len(items) if isinstance(items, Sized) else None
            )
        results: list[Any] = []
        try:
            for chunk in windows(items, WINDOW):
                prepared = self.prepare(chunk, call_params)
                outputs = (
                    batched_forward(
                        [f.inputs for f in prepared.features],
                        lambda batch: self.forward(batch, call_params),
                        batch_size=self.batch_size,
                        pad_token_id=self.tokenizer.pad_token_id or 0,
                        progress=progress,
                    )
                    if prepared.features
                    else []
                )
                results.extend(self.complete(prepared, outputs, call_params))
        finally:
            if progress is not None:
                progress.close()
        return self.finalize(results, single, call_params)

    def prepare(self, items: list[Any], params: Any) -> Prepared:
        """Preprocess inputs; their features' model outputs go to ``complete``. The inference server
        batches the features of several requests together between the two."""
        features: list[Feature] = []
        spans = []
        for item in items:
            feats = self.preprocess(item, params)
            spans.append((len(features), len(features) + len(feats)))
            features.extend(feats)
        return Prepared(list(items), features, spans)

    def complete(self, prepared: Prepared, outputs: list[Any], params: Any) -> list[Any]:
        """Each input's result from its features' outputs (``outputs[i]`` belongs to ``features[i]``)."""
        return [
            self.postprocess(item, list(zip(prepared.features[a:b], outputs[a:b])), params)
            for item, (a, b) in zip(prepared.items, prepared.spans)
        ]


def model_inputs(enc: Any, i: int | None = None) -> dict[str, list[int]]:
    """The model's inputs from a tokenizer result (row i of a batch, or the single row)."""
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return {k: list(enc[k] if i is None else enc[k][i]) for k in keys}
