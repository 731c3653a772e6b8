"""``cove infer MODEL TEXT... [--task T]``: one inference request, JSON out, against a running hub's
inference API (``--endpoint``, else COVE_ENDPOINT / HF_ENDPOINT) or, with no hub configured, the local
data dir's models through the same routes in this process. ``cove serve-inference``: a replica serving
only the inference API on the hub's store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cove.errors import CoveError


class InferCommandError(CoveError):
    """A request cove infer could not make, or the server's error answer."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "infer",
        help="run a model of a hub (or of the local data dir) through the inference API, JSON out",
        description="Examples: cove infer acme/sentiment 'I love it' | cove infer acme/qa --question 'Who?' "
        "--context 'Ann wrote it.' | cove infer sentence-transformers/all-MiniLM-L6-v2 'a' --compare 'b' "
        "--compare 'c' | cove infer HuggingFaceTB/SmolLM2-135M-Instruct 'Hi' --param max_new_tokens=20 --stream",
    )
    p.add_argument("model", help="repo id (namespace/name, optionally @revision)")
    p.add_argument("inputs", nargs="*", help="input texts ('-' reads one input per line from stdin)")
    p.add_argument("--task", default=None, help="run this task (default: the model's own, from its card)")
    p.add_argument("--question", help="question-answering: the question")
    p.add_argument("--context", help="question-answering: the context")
    p.add_argument("--compare", action="append", help="sentence-similarity: a sentence to score (repeatable)")
    p.add_argument("--inputs-json", default=None, help="the request's inputs as JSON, for any other shape")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='a parameter; VALUE is read as JSON when it parses (top_k=3, candidate_labels=\'["a","b"]\')',
    )
    p.add_argument("--stream", action="store_true", help="text-generation: print tokens as they come")
    p.add_argument("--endpoint", default=None, help="the hub's URL (default: $COVE_ENDPOINT or $HF_ENDPOINT)")
    p.add_argument(
        "--token", default=None, help="a hub token (default: $COVE_TOKEN, $HF_TOKEN or cove login)"
    )
    p.add_argument("--data-dir", default=None, help="with no hub: the data dir to read (default: ~/.cove)")
    p.set_defaults(func=_infer)

    s = sub.add_parser(
        "serve-inference", help="serve only the inference API, on a hub's data dir or shared store"
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8001)
    s.add_argument("--data-dir", default=None, help="hub data dir (default: $COVE_DATA_DIR or ~/.cove)")
    s.set_defaults(func=_serve_inference)


def request_of(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(the path under the server, the JSON body) of the command line's request."""
    from cove.cli.run import _params

    parameters = _params(args.param)
    texts = list(args.inputs)
    if texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    inputs: Any
    if args.inputs_json is not None:
        inputs = json.loads(args.inputs_json)
    elif args.question is not None or args.context is not None:
        if args.question is None or args.context is None:
            raise InferCommandError("question-answering needs both --question and --context.")
        inputs = {"question": args.question, "context": args.context}
    elif args.compare:
        if len(texts) != 1:
            raise InferCommandError(
                "--compare scores sentences against one source: give exactly one input text."
            )
        inputs = {"source_sentence": texts[0], "sentences": args.compare}
    else:
        if not texts:
            raise InferCommandError("Give some input text (or '-' to read lines from stdin).")
        inputs = texts[0] if len(texts) == 1 else texts
    body: dict[str, Any] = {"inputs": inputs}
    if parameters:
        body["parameters"] = parameters
    if args.stream:
        body["stream"] = True
    from cove.hub.client import is_repo_id

    name, at, revision = args.model.partition("@")
    if not is_repo_id(name) or Path(name).is_dir():
        raise InferCommandError(
            f"{args.model!r} is not a hub repo id (namespace/name): for a local folder use `cove run TASK ... --model`."
        )
    path = f"/models/{name}" + (f"/pipeline/{args.task}" if args.task else "")
    if at:
        from urllib.parse import quote

        path += f"?revision={quote(revision, safe='')}"
    return path, body


def _infer(args: argparse.Namespace) -> int:
    from cove.hub import client

    path, body = request_of(args)
    endpoint = (args.endpoint or client.get_endpoint() or "").rstrip("/")
    token = client.get_token(args.token)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if endpoint:
        import httpx

        with httpx.Client(timeout=None) as http:
            return _send(http, f"{endpoint}{path}", body, headers, args.stream)
    from fastapi.testclient import TestClient

    from cove.server.app import create_app
    from cove.server.settings import Settings

    settings = Settings(data_dir=Path(args.data_dir)) if args.data_dir else Settings()
    app = create_app(settings)
    if settings.import_bundled:  # as `cove serve` does on its first start
        from cove.server.bootstrap import import_bundled

        store = app.state.hub.store
        with store.session() as s:
            import_bundled(store, s)
    with TestClient(app) as http:  # the routes in this process: the server's answers
        return _send(http, path, body, headers, args.stream)


def _send(http: Any, url: str, body: dict[str, Any], headers: dict[str, str], stream: bool) -> int:
    with http.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code >= 400:
            response.read()
            try:
                data = response.json()
                message = f"{data.get('error')} ({data.get('error_type')})"
            except ValueError:
                message = response.text
            raise InferCommandError(f"{response.status_code} from {url}: {message}")
        if not stream or not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
            print(json.dumps(response.json(), indent=2, ensure_ascii=False))
            return 0
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event.get("error"):
                raise InferCommandError(f"{event['error']} ({event.get('error_type')})")
            print(event["token"]["text"], end="", flush=True)
        print()
    return 0


def _serve_inference(args: argparse.Namespace) -> int:
    import uvicorn

    from cove.server.inference.app import create_inference_app
    from cove.server.settings import Settings

    settings = Settings(data_dir=Path(args.data_dir)) if args.data_dir else Settings()
    app = create_inference_app(settings)
    print(
        f"Cove inference on http://{args.host}:{args.port} (store of {settings.data_dir}); "
        f"e.g. POST /models/<repo_id>, /v1/chat/completions",
        file=sys.stderr,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_keep_alive=75)
    return 0
