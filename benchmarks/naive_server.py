"""The naive peer of benchmarks/inference_server.py: a hand-rolled OpenAI-shaped server, as people write one.

FastAPI + one transformers pipeline per model, loaded at start; every request runs its own pipeline call
under that model's lock (one request at a time per model, no batching across requests):

- ``POST /v1/embeddings``: ``pipeline("feature-extraction")``, then mean pooling over the tokens and L2
  normalisation, as sentence-transformers does for all-MiniLM-L6-v2 (modules.json: Pooling, Normalize).
- ``POST /v1/chat/completions``: ``pipeline("text-generation")`` on the GGUF (transformers dequantizes it),
  greedy when ``temperature`` is 0; ``stream`` sends one ``chat.completion.chunk`` per generated token from
  a streamer on the generating thread, then the usage chunk (``stream_options.include_usage``) and
  ``data: [DONE]``. ``ignore_eos`` (vLLM's extension) sets ``min_new_tokens`` so every reply is full length.
- ``GET /v1/models``, ``GET /health``.

    python benchmarks/naive_server.py --port 8001 --embed MODEL_DIR --chat-dir DIR --chat-gguf FILE.gguf \\
        [--embed-name ID] [--chat-name ID]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import threading
import time
import uuid
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse


class TokenQueue:
    """A transformers streamer that hands each generated token id to the HTTP side (call 1 is the prompt)."""

    def __init__(self) -> None:
        self.queue: queue.Queue[int | BaseException | None] = queue.Queue()
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.queue.put(int(token))

    def end(self) -> None:
        self.queue.put(None)


def build_app(args: argparse.Namespace) -> FastAPI:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    embed = transformers.pipeline("feature-extraction", model=args.embed, device="cpu")
    chat_model = transformers.AutoModelForCausalLM.from_pretrained(
        args.chat_dir, gguf_file=args.chat_gguf, dtype=torch.float32
    ).eval()
    chat_tok = transformers.AutoTokenizer.from_pretrained(args.chat_dir, gguf_file=args.chat_gguf)
    chat = transformers.pipeline("text-generation", model=chat_model, tokenizer=chat_tok, device="cpu")
    locks = {args.embed_name: threading.Lock(), args.chat_name: threading.Lock()}
    app = FastAPI(title="naive OpenAI-shaped server")

    def check_model(name: Any, kind: str) -> str:
        want = args.embed_name if kind == "embed" else args.chat_name
        if name != want:
            raise HTTPException(404, f"model {name!r} is not served here; this server has {want!r}")
        return want

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        names = [args.embed_name, args.chat_name]
        return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "naive"} for n in names]}

    @app.post("/v1/embeddings")
    def embeddings(body: dict[str, Any]) -> dict[str, Any]:  # a plain def: FastAPI runs it in its threadpool
        name = check_model(body.get("model"), "embed")
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise HTTPException(422, "input must be a string or a non-empty list of strings")
        data, tokens = [], 0
        with locks[name]:
            for i, text in enumerate(texts):
                rows = torch.tensor(embed(text, truncation=True)[0])  # (tokens, hidden)
                vector = torch.nn.functional.normalize(rows.mean(dim=0), dim=0)
                tokens += rows.shape[0]
                data.append({"object": "embedding", "index": i, "embedding": vector.tolist()})
        return {
            "object": "list",
            "data": data,
            "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @app.post("/v1/chat/completions", response_model=None)
    def chat_completions(body: dict[str, Any]) -> dict[str, Any] | StreamingResponse:
        name = check_model(body.get("model"), "chat")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HTTPException(422, "messages must be a non-empty list")
        max_tokens = int(body.get("max_tokens") or 256)
        temperature = float(body.get("temperature", 1.0))
        options: dict[str, Any] = {"max_new_tokens": max_tokens, "return_full_text": False}
        if temperature > 0:
            options.update(do_sample=True, temperature=temperature, top_p=float(body.get("top_p", 1.0)))
        else:
            options["do_sample"] = False
        if body.get("ignore_eos"):
            options["min_new_tokens"] = max_tokens
        prompt = chat_tok.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        prompt_tokens = len(prompt["input_ids"])
        created, rid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        streamer = TokenQueue()

        def generate() -> None:
            try:
                with locks[name]:
                    chat(messages, streamer=streamer, **options)
            except BaseException as exc:  # handed to the HTTP side, which reports it in the stream
                streamer.queue.put(exc)
                streamer.queue.put(None)

        def chunk(delta: dict[str, Any], finish: str | None, usage: dict[str, int] | None = None) -> str:
            payload: dict[str, Any] = {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": name,
                "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if usage:
                payload["usage"] = usage
            return f"data: {json.dumps(payload)}\n\n"

        def events():  # a sync generator: Starlette iterates it in its threadpool
            threading.Thread(target=generate, daemon=True).start()
            yield chunk({"role": "assistant", "content": ""}, None)
            ids: list[int] = []
            sent = ""
            while (item := streamer.queue.get()) is not None:
                if isinstance(item, BaseException):
                    yield f"data: {json.dumps({'error': {'message': str(item)}})}\n\n"
                    continue
                ids.append(item)
                text = chat_tok.decode(ids, skip_special_tokens=True)
                yield chunk({"content": text[len(sent) :]}, None)
                sent = text
            yield chunk({}, "length" if len(ids) >= max_tokens else "stop")
            if include_usage:
                usage = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(ids),
                    "total_tokens": prompt_tokens + len(ids),
                }
                yield chunk({}, None, usage)
            yield "data: [DONE]\n\n"

        if body.get("stream"):
            return StreamingResponse(events(), media_type="text/event-stream")
        generate()
        ids = []
        while (item := streamer.queue.get()) is not None:
            if isinstance(item, BaseException):
                raise HTTPException(500, f"generation failed: {item}")
            ids.append(item)
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": name,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": chat_tok.decode(ids, skip_special_tokens=True),
                    },
                    "finish_reason": "length" if len(ids) >= max_tokens else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(ids),
                "total_tokens": prompt_tokens + len(ids),
            },
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--embed", required=True, help="the MiniLM folder (HF format)")
    parser.add_argument("--embed-name", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--chat-dir", required=True, help="the folder holding the GGUF file")
    parser.add_argument("--chat-gguf", required=True, help="the GGUF file's name inside --chat-dir")
    parser.add_argument("--chat-name", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    uvicorn.run(build_app(args), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
