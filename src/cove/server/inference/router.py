"""The inference routes: thin translations of the HF Inference API, OpenAI, TGI and TEI onto the engine.

Routes are ``async`` and hand every blocking step to worker threads: the token check, the model lookup and
load, the input checks and tokenization, the answer's JSON. They await the model's worker, so the event
loop stays free for the hub's other traffic while models compute. Every error becomes
``{"error", "error_type"}`` (``errors.error_answer``) through the route class, which also counts requests
by model, task and status for ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from cove.server import rawpath  # noqa: F401  # registers the {x:seg} convertor
from cove.server.body import read_body
from cove.server.deps import Hub
from cove.server.inference import chat, hf, openai, service, tgi
from cove.server.inference.engine import Engine, ServedModel, Target
from cove.server.inference.errors import InferenceInputError, error_answer
from cove.server.inference.metrics import SECONDS_BUCKETS
from cove.server.inference.service import ModelRef
from cove.server.inference.tasks import PIPELINE_OF, SERVED_TASKS
from cove.server.responses import sanitized

_JSON_IN_THREAD = 64 * 1024  # bodies and answers larger than this are (de)serialised off the event loop
# A request this small, for a loaded model its caller resolved a moment ago, is checked and queued on the
# event loop: tokenizing a few KB takes microseconds, while two thread hops per request under a burst of
# them starve the model's worker of the GIL.
_SMALL_BODY = 4096
_TRANSLATION_PAIR = re.compile(r"translation_([^_]+)_to_([^_]+)")


class InferenceRoute(APIRoute):
    """Errors in the inference API's shape, and a request count per model, task and status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        kind = self.name

        async def serve(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:
                response = error_answer(exc)
            engine: Engine | None = getattr(request.app.state, "inference", None)
            if engine is not None:
                engine.metrics.count(
                    "cove_inference_requests_total",
                    model=getattr(request.state, "inference_model", ""),
                    task=getattr(request.state, "inference_task", kind),
                    status=str(response.status_code),
                )
            return response

        return serve


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
# what the published schema says besides the hub's own error statuses (server/openapi.py adds those)
_RESPONSES: dict[int | str, dict[str, Any]] = {
    424: {"description": "The model failed while computing", "content": _ERROR},
    429: {"description": "The model's queue is full: retry after Retry-After seconds", "content": _ERROR},
    500: {"description": "The model's files did not load", "content": _ERROR},
}
_JSON_OR_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer, or with stream=true its server-sent events",
        "content": {"application/json": {"schema": {}}, "text/event-stream": {"schema": {"type": "string"}}},
    }
}
_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
_READY: dict[int | str, dict[str, Any]] = {200: {"description": "Ready (an empty body, as TGI answers)"}}
_TEXT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text format 0.0.4",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}

router = APIRouter(route_class=InferenceRoute, tags=["inference"], responses=_RESPONSES)
MODEL = "/models/{namespace:seg}/{name:seg}"


def install(app: FastAPI) -> None:
    """The engine on app.state (loading nothing yet), the routes, and closing the engine at shutdown."""
    hub: Hub = app.state.hub
    engine = Engine(hub.settings, hub.store)
    app.state.inference = engine
    app.include_router(router)
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> Any:
        async with previous(application) as state:
            try:
                yield state
            finally:
                await run_in_threadpool(engine.close)

    app.router.lifespan_context = lifespan


# -- plumbing -------------------------------------------------------------------------------------


def _hub(request: Request) -> Hub:
    return request.app.state.hub


def _engine(request: Request) -> Engine:
    return request.app.state.inference


async def read_json(request: Request) -> dict[str, Any]:
    settings = _hub(request).settings
    raw = await read_body(request, settings.max_inference_bytes, settings, setting="COVE_MAX_INFERENCE_BYTES")
    if not raw.strip():
        raise InferenceInputError("The request body is empty: send a JSON object.")
    try:
        data = await run_in_threadpool(json.loads, raw) if len(raw) > _JSON_IN_THREAD else json.loads(raw)
    except RecursionError as exc:
        raise InferenceInputError(
            "The request body is nested too deeply: send a flat JSON document."
        ) from exc
    except ValueError as exc:  # UnicodeDecodeError included
        raise InferenceInputError(f"Malformed JSON in the request body: {exc}. Send a JSON object.") from exc
    if not isinstance(data, dict):
        raise InferenceInputError(f"The request body must be a JSON object, got a {type(data).__name__}.")
    request.state.small_body = len(raw) <= _SMALL_BODY
    return data


def _plain(obj: Any) -> Any:  # numpy scalars and arrays, tensors in pipeline results
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


try:  # an embedding's 384 floats encode ~20x faster than with json (which holds the GIL all along)
    import orjson
except ImportError:  # pragma: no cover - it comes with the demo and test extras
    orjson = None  # type: ignore[assignment]


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities as null (JSON has none), lone surrogates as U+FFFD."""
    if orjson is not None:
        try:
            return orjson.dumps(
                value, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
            )
        except TypeError:  # lone surrogates (orjson takes valid UTF-8 only), or truly not JSON: json says
            pass
    plain = _plain
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=plain)
    except ValueError:  # a NaN or an infinity: JSON has none
        text = json.dumps(sanitized(json.loads(json.dumps(value, default=plain))), ensure_ascii=False)
    return text.encode("utf-8")


async def json_answer(value: Any, status: int = 200) -> Response:
    content = await run_in_threadpool(dumps, value)
    return Response(content, status_code=status, media_type="application/json")


def _ref(namespace: str, name: str, revision: str | None) -> ModelRef:
    return ModelRef.parse(f"{namespace}/{name}", revision)


def _start(request: Request, ref: ModelRef, task: str | None) -> tuple[Target, str]:
    """Resolve the model for the caller and pick the task (in a worker thread)."""
    target = service.resolve(_hub(request), service.credentials(request), ref)
    request.state.inference_model = target.repo_id
    chosen = target.info.check(task, target.repo_id)
    request.state.inference_task = chosen
    return target, chosen


async def _run(
    request: Request,
    ref: ModelRef | tuple[Target, str],
    task: str | None,
    prepare: Callable[[ServedModel, Target, str], hf.Prepared],
) -> Response:
    """Resolve (unless ref is an already resolved (target, task)), load, check the input, queue it, await
    the model's worker and answer its JSON."""
    hub, engine = _hub(request), _engine(request)

    def start() -> tuple[hf.Prepared, Any]:
        target, chosen = ref if isinstance(ref, tuple) else _start(request, ref, task)
        served = service.load(hub, engine, target)
        prepared = prepare(served, target, chosen)
        return prepared, served.submit(prepared.job)

    fast = _fast_start(request, ref, task)
    if fast is not None:
        target, chosen, served = fast
        prepared = prepare(served, target, chosen)
        future = served.submit(prepared.job)
    else:
        prepared, future = await run_in_threadpool(start)
    result = await asyncio.wrap_future(future)
    if getattr(request.state, "small_body", False) and prepared.job.task != "feature-extraction":
        # a small input's answer (labels, one pooled vector, ...) is small: no thread hop for its JSON
        return Response(dumps(prepared.shape(result)), media_type="application/json")
    return await json_answer(await run_in_threadpool(prepared.shape, result))


def _fast_start(
    request: Request, ref: ModelRef | tuple[Target, str], task: str | None
) -> tuple[Target, str, ServedModel] | None:
    """(target, task, loaded model) without blocking, for a small body whose model lookup is cached and
    whose model is loaded; else None (the caller takes the thread path)."""
    if not getattr(request.state, "small_body", False):
        return None
    if isinstance(ref, tuple):
        target, chosen = ref
    else:
        cached = service.cached(_hub(request), service.credentials(request), ref)
        if cached is None:
            return None
        target, chosen = cached, cached.info.check(task, cached.repo_id)
        request.state.inference_model, request.state.inference_task = target.repo_id, chosen
    served = _engine(request).peek(target.commit)
    return None if served is None else (target, chosen, served)


# -- the HF Inference API -------------------------------------------------------------------------


@router.post(MODEL, responses=_JSON_OR_STREAM)
async def hf_inference(namespace: str, name: str, request: Request, revision: str | None = None) -> Response:
    return await _hf(request, _ref(namespace, name, revision), None)


@router.post(MODEL + "/pipeline/{task:seg}", responses=_JSON_OR_STREAM)
async def hf_pipeline(
    namespace: str, name: str, task: str, request: Request, revision: str | None = None
) -> Response:
    return await _hf(request, _ref(namespace, name, revision), task)


async def _hf(request: Request, ref: ModelRef, task: str | None) -> Response:
    body = await read_json(request)
    pair = _TRANSLATION_PAIR.fullmatch(task or "")
    if pair:  # /pipeline/translation_en_to_de: that pair of the model's task_specific_params
        parameters = body.get("parameters")
        parameters = dict(parameters) if isinstance(parameters, dict) else {}
        parameters.setdefault("src_lang", pair.group(1))
        parameters.setdefault("tgt_lang", pair.group(2))
        body = {**body, "parameters": parameters}
    cached = service.cached(_hub(request), service.credentials(request), ref)
    if cached is not None and getattr(request.state, "small_body", False):
        target, chosen = cached, cached.info.check(task, cached.repo_id)
        request.state.inference_model, request.state.inference_task = target.repo_id, chosen
    else:
        target, chosen = await run_in_threadpool(_start, request, ref, task)
    if chosen == "text-generation":
        return await _generate(request, (target, chosen), body, "hf")

    def prepare(served: ServedModel, target: Target, chosen: str) -> hf.Prepared:
        # an embedding model's /models/ID endpoint answers both shapes: sentence-similarity's inputs
        # are an object, feature-extraction's a string or a list
        if task is None and chosen in ("feature-extraction", "sentence-similarity"):
            chosen = "sentence-similarity" if isinstance(body.get("inputs"), dict) else "feature-extraction"
            request.state.inference_task = chosen
        return hf.prepare(served, chosen, body)

    return await _run(request, (target, chosen), task, prepare)


@router.get("/api/tasks")
async def api_tasks(request: Request) -> Response:
    hub = _hub(request)

    def listing() -> dict[str, Any]:
        from cove.store import RepoQuery, list_repo_page

        out = {}
        with hub.store.session() as s:
            for task in SERVED_TASKS:
                page = list_repo_page(
                    s, RepoQuery("model", tags=(task,), readable=(), sort="downloads", limit=3)
                )
                out[task] = {
                    "id": task,
                    "label": task.replace("-", " ").capitalize(),
                    "pipeline": PIPELINE_OF[task],
                    "widgetModels": [row.repo_id for row in page.rows],
                    "libraries": ["cove", "transformers"],
                }
        return out

    return await json_answer(await run_in_threadpool(listing))


# -- generation -----------------------------------------------------------------------------------


async def _generate(
    request: Request, ref: ModelRef | tuple[Target, str], body: dict[str, Any], protocol: str
) -> Response:
    """protocol: "hf" (/models/ID), "tgi" (/generate, or POST / with "stream" in the body), "tgi-stream"
    (/generate_stream), "chat" or "completions" (OpenAI)."""
    hub, engine = _hub(request), _engine(request)

    def start() -> tuple[ServedModel, list[chat.GenerationJob], list[list[Any]]]:
        if isinstance(ref, tuple):
            target = ref[0]
        else:
            target, _ = _start(request, ref, "text-generation")
        served = service.load(hub, engine, target)
        if protocol == "chat":
            jobs = [chat.chat_job(served, body, target.repo_id)]
        elif protocol == "completions":
            jobs = chat.completion_jobs(served, body, target.repo_id)
        else:
            jobs = [chat.tgi_job(served, body, stream=True if protocol == "tgi-stream" else None)]
        assert served.generator is not None
        handles: list[list[Any]] = []
        try:
            for job in jobs:
                group: list[Any] = []
                handles.append(group)
                for params in job.choices:
                    group.append(served.generator.submit(job.prompt, params))
        except BaseException:
            for handle in (h for g in handles for h in g):
                handle.cancel()
            raise
        return served, jobs, handles

    served, jobs, handles = await run_in_threadpool(start)
    flat = [h for group in handles for h in group]
    observed = _Observed(served, flat)
    job = jobs[0]
    if job.stream:
        stream: AsyncIterator[bytes]
        if protocol == "chat":
            stream = chat.chat_stream(job, flat, served.tokenizer)
        elif protocol == "completions":
            echo = (
                [j.prompt_text for j, group in zip(jobs, handles) for _ in group] if job.full_text else None
            )
            stream = chat.chat_stream(
                job,
                flat,
                served.tokenizer,
                kind="completion",
                echo=echo,
                prompt_tokens=sum(len(j.prompt) for j in jobs),
            )
        else:
            stream = chat.tgi_stream(job, flat[0])
        return StreamingResponse(
            observed.wrap(stream),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    work = asyncio.ensure_future(
        asyncio.gather(*(asyncio.gather(*(_events(h) for h in group)) for group in handles))
    )
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        observed.done()  # a client gone (or this task cancelled) frees its rows at the next step
    if not work.done():
        work.cancel()
        return Response(status_code=499)  # nginx's "client closed request": no one reads it
    events = work.result()
    results = [[h.result(timeout=0) for h in group] for group in handles]
    answer: Any
    if protocol == "chat":
        answer = chat.chat_answer(job, results[0], list(events[0]), served.tokenizer)
    elif protocol == "completions":
        answer = chat.completion_answer(jobs, results)
    else:
        answer = chat.tgi_answer(job, results[0][0], events[0][0])
        if protocol == "hf":
            answer = [answer]
    return await json_answer(answer)


async def _disconnected(request: Request) -> None:
    """Return when the client has gone. The body is read already, so the next ASGI message is the
    disconnect (uvicorn sends it when the connection closes); a non-streamed answer has no send to fail on
    and would otherwise hold its rows to the last token."""
    try:
        while (await request.receive())["type"] != "http.disconnect":
            await asyncio.sleep(0.05)  # not a body message again: never spin
    except Exception:  # a receive that fails has no client behind it either
        return


async def _events(handle: Any) -> list[Any]:
    return [event async for event in handle]


class _Observed:
    """Queue time (to a request's first event) and compute time (from it to the end) for /metrics; the
    handles are cancelled when the answer ends or is abandoned (a no-op for finished ones)."""

    def __init__(self, served: ServedModel, handles: list[Any]):
        self.served, self.handles = served, handles
        self.started = time.monotonic()

    async def wrap(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        first: float | None = None
        try:
            async for piece in stream:
                if first is None:
                    first = time.monotonic()
                yield piece
        finally:
            self.done(first)

    def done(self, first: float | None = None) -> None:
        for handle in self.handles:
            handle.cancel()
        end = time.monotonic()
        first = first or end
        metrics, name = self.served.metrics, self.served.repo_id
        metrics.observe("cove_inference_queue_seconds", first - self.started, SECONDS_BUCKETS, model=name)
        metrics.observe("cove_inference_compute_seconds", end - first, SECONDS_BUCKETS, model=name)
        metrics.count(
            "cove_inference_prompt_tokens_total", sum(h.prompt_tokens for h in self.handles), model=name
        )
        generator = self.served.generator
        if generator is not None:
            generator.sync_metrics()


@router.post("/generate")
async def tgi_generate_default(request: Request) -> Response:
    body = await read_json(request)
    return await _generate(request, _default(request, "inference_model", "/generate"), body, "tgi")


@router.post("/generate_stream", responses=_STREAM)
async def tgi_generate_stream_default(request: Request) -> Response:
    body = await read_json(request)
    return await _generate(
        request, _default(request, "inference_model", "/generate_stream"), body, "tgi-stream"
    )


@router.post("/", responses=_JSON_OR_STREAM)
async def tgi_root(request: Request) -> Response:
    """TGI's POST /: generate, streamed when the body says "stream": true (InferenceClient(model=URL))."""
    body = await read_json(request)
    return await _generate(request, _default(request, "inference_model", "/"), body, "tgi")


@router.post(MODEL + "/generate")
async def tgi_generate(namespace: str, name: str, request: Request, revision: str | None = None) -> Response:
    body = await read_json(request)
    return await _generate(request, _ref(namespace, name, revision), body, "tgi")


@router.post(MODEL + "/generate_stream", responses=_STREAM)
async def tgi_generate_stream(
    namespace: str, name: str, request: Request, revision: str | None = None
) -> Response:
    body = await read_json(request)
    return await _generate(request, _ref(namespace, name, revision), body, "tgi-stream")


@router.post("/v1/chat/completions", responses=_JSON_OR_STREAM)
async def openai_chat(request: Request) -> Response:
    body = await read_json(request)
    return await _generate(request, _openai_ref(body), body, "chat")


@router.post(MODEL + "/v1/chat/completions", responses=_JSON_OR_STREAM)
async def openai_model_chat(
    namespace: str, name: str, request: Request, revision: str | None = None
) -> Response:
    body = await read_json(request)
    return await _generate(request, _ref(namespace, name, revision), body, "chat")


@router.post("/v1/completions", responses=_JSON_OR_STREAM)
async def openai_completions(request: Request) -> Response:
    body = await read_json(request)
    return await _generate(request, _openai_ref(body), body, "completions")


@router.post(MODEL + "/v1/completions", responses=_JSON_OR_STREAM)
async def openai_model_completions(
    namespace: str, name: str, request: Request, revision: str | None = None
) -> Response:
    body = await read_json(request)
    return await _generate(request, _ref(namespace, name, revision), body, "completions")


# -- TEI and TGI ----------------------------------------------------------------------------------


def _default(request: Request, setting: str, route: str) -> ModelRef:
    settings = _hub(request).settings
    name = getattr(settings, setting) or settings.inference_model
    if not name:
        from cove.errors import RepoNotFoundError

        raise RepoNotFoundError(
            f"No model is served at {route}: set COVE_{setting.upper()} (or COVE_INFERENCE_MODEL) to a repo id, "
            f"or call /models/{{repo_id}}{route}."
        )
    return ModelRef.parse(name)


@router.post("/embed")
async def tei_embed_default(request: Request) -> Response:
    return await _tei_embed(request, _default(request, "inference_embed_model", "/embed"))


@router.post(MODEL + "/embed")
async def tei_embed(namespace: str, name: str, request: Request, revision: str | None = None) -> Response:
    return await _tei_embed(request, _ref(namespace, name, revision))


async def _tei_embed(request: Request, ref: ModelRef) -> Response:
    body = await read_json(request)
    return await _run(request, ref, "feature-extraction", lambda served, _t, _c: tgi.tei_embed(served, body))


@router.get("/info")
async def info_default(request: Request) -> Response:
    return await _info(request, _default(request, "inference_model", "/info"))


@router.get(MODEL + "/info")
async def model_info(namespace: str, name: str, request: Request, revision: str | None = None) -> Response:
    return await _info(request, _ref(namespace, name, revision))


async def _info(request: Request, ref: ModelRef) -> Response:
    engine = _engine(request)

    def describe() -> dict[str, Any]:
        target, _ = _start(request, ref, None)
        served = next((m for m in engine.loaded() if m.commit == target.commit), None)
        return tgi.info(target, served, _hub(request).settings)

    return await json_answer(await run_in_threadpool(describe))


@router.get("/health", responses=_READY, response_class=Response)
async def health() -> Response:
    return Response(status_code=200)


@router.get(MODEL + "/health", responses=_READY, response_class=Response)
async def model_health(namespace: str, name: str, request: Request, revision: str | None = None) -> Response:
    """200 once the model is loaded (this loads it): a readiness probe per model."""
    hub, engine = _hub(request), _engine(request)
    ref = _ref(namespace, name, revision)

    def warm() -> None:
        target, _ = _start(request, ref, None)
        service.load(hub, engine, target)

    await run_in_threadpool(warm)
    return Response(status_code=200)


# -- OpenAI ---------------------------------------------------------------------------------------


def _openai_ref(body: dict[str, Any]) -> ModelRef:
    """The body's model (OpenAI's unprefixed routes)."""
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise InferenceInputError('The body needs "model": the repo id of a model on this hub (ns/name).')
    return ModelRef.parse(name)


@router.post("/v1/embeddings")
async def openai_embeddings(request: Request) -> Response:
    body = await read_json(request)
    return await _embeddings(request, _openai_ref(body), body)


@router.post(MODEL + "/v1/embeddings")
async def openai_model_embeddings(
    namespace: str, name: str, request: Request, revision: str | None = None
) -> Response:
    body = await read_json(request)
    return await _embeddings(request, _ref(namespace, name, revision), body)


async def _embeddings(request: Request, ref: ModelRef, body: dict[str, Any]) -> Response:
    return await _run(
        request,
        ref,
        "feature-extraction",
        lambda served, target, _c: openai.embeddings(served, body, target.repo_id),
    )


@router.get("/v1/models")
async def openai_models(request: Request) -> Response:
    hub = _hub(request)
    authorization = service.credentials(request)

    def listing() -> dict[str, Any]:
        from cove.server.search.service import readable_namespaces
        from cove.store import RepoQuery, list_repo_page

        caller = service.caller_of(hub, authorization)
        with hub.store.session() as s:
            page = list_repo_page(s, RepoQuery("model", readable=readable_namespaces(caller), limit=1000))
            rows = [openai.model_entry(r.repo_id, r.created_at.timestamp()) for r in page.rows]
        return {"object": "list", "data": rows}

    return await json_answer(await run_in_threadpool(listing))


@router.get(MODEL + "/v1/models")
async def openai_model_models(
    namespace: str, name: str, request: Request, revision: str | None = None
) -> Response:
    ref = _ref(namespace, name, revision)
    target, _ = await run_in_threadpool(_start, request, ref, None)
    return await json_answer({"object": "list", "data": [openai.model_entry(target.repo_id)]})


# -- metrics --------------------------------------------------------------------------------------


@router.get("/metrics", responses=_TEXT, response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus text; a caller sees the series of the models it may read (a site admin: all)."""
    hub, engine = _hub(request), _engine(request)
    authorization = service.credentials(request)

    def render() -> str:
        from cove.errors import RepoNotFoundError

        caller = service.caller_of(hub, authorization)
        allowed: dict[str, bool] = {}
        with hub.store.session() as s:
            for repo_id in engine.metrics.models() | {m.repo_id for m in engine.loaded()}:
                try:
                    repo = hub.store.get_repo(s, "model", repo_id)
                    allowed[repo_id] = caller.can_read(repo)
                except RepoNotFoundError:  # deleted since: its name is no one's business but an admin's
                    allowed[repo_id] = caller.is_admin
        return engine.metrics.render(engine.gauges(), lambda repo_id: allowed.get(repo_id, False))

    text = await run_in_threadpool(render)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")
