"""The upstream of the proxy tests, run as its own process: real gradio Blocks apps (a textbox echo, a
streaming counter, a file's size) served by uvicorn on a unix socket and on a loopback port, each under the
root path of the space it plays, plus plain routes gradio has none of (a websocket echo, a header echo,
cookies, an endless SSE stream that counts its open readers).

python echo_app.py --uds PATH --uds-root /spaces/o/a --port N --port-root /spaces/o/b
The uds app reads its root path from GRADIO_ROOT_PATH, as a space's app does; prints "ready" when both
listen."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time

import gradio as gr
import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, StreamingResponse

OPEN_STREAMS = {"n": 0}


def echo(text: str) -> str:
    return text


def count(n: float):  # type: ignore[no-untyped-def]
    for i in range(int(n)):
        time.sleep(0.05)
        yield f"step {i + 1}"


def size(path: str) -> int:
    return os.path.getsize(path)


def blocks() -> gr.Blocks:
    with gr.Blocks(title="Echo space") as demo:
        text = gr.Textbox(label="Text", elem_id="echo-in")
        out = gr.Textbox(label="Echo", elem_id="echo-out")
        gr.Button("Echo", elem_id="echo-go").click(echo, text, out, api_name="echo")
        n = gr.Number(label="Steps", value=3)
        steps = gr.Textbox(label="Counted")
        gr.Button("Count").click(count, n, steps, api_name="count")
        upload = gr.File(label="File", type="filepath")
        nbytes = gr.Number(label="Size")
        gr.Button("Size").click(size, upload, nbytes, api_name="size")
    return demo


def extras(app: FastAPI) -> None:
    @app.websocket("/ws-echo")
    async def ws_echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await ws.send_bytes(message["bytes"][::-1])
                elif message.get("text") == "bye":
                    await ws.close(code=4000)
                    return
                else:
                    await ws.send_text("echo:" + message["text"])
        except WebSocketDisconnect:
            return

    @app.api_route("/headers", methods=["GET", "POST"])
    async def headers(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {
                "headers": dict(request.headers),
                "path": request.url.path,
                "query": request.url.query,
                "body": len(body),
            }
        )

    @app.get("/cookies")
    async def cookies() -> JSONResponse:
        response = JSONResponse({"ok": True})
        response.headers.append("set-cookie", "cove_session=stolen; Path=/")
        response.headers.append("set-cookie", "theme=dark; Path=/; Domain=example.com; HttpOnly")
        return response

    @app.get("/sse")
    async def sse() -> StreamingResponse:
        async def events():  # type: ignore[no-untyped-def]
            OPEN_STREAMS["n"] += 1
            try:
                i = 0
                while True:
                    yield f"data: {i}\n\n"
                    i += 1
                    await asyncio.sleep(0.2)
            finally:
                OPEN_STREAMS["n"] -= 1

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/cut")
    async def cut() -> StreamingResponse:
        async def body():  # type: ignore[no-untyped-def]
            yield b"first part;"
            await asyncio.sleep(0.1)
            raise RuntimeError("the app dies mid-body")

        return StreamingResponse(body(), media_type="text/plain")

    @app.get("/sse-open")
    async def sse_open() -> JSONResponse:
        return JSONResponse(OPEN_STREAMS)


def app_for(root: str | None) -> FastAPI:
    app = FastAPI()
    extras(app)
    # root None: the Blocks read GRADIO_ROOT_PATH (what a space's app sees)
    return gr.mount_gradio_app(app, blocks(), path="", root_path=root)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uds", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--port-root", required=True)
    args = parser.parse_args()
    uds_app = app_for(None)
    tcp_app = app_for(args.port_root)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(args.uds)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", args.port))
    servers = [
        uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on")) for app in (uds_app, tcp_app)
    ]
    tasks = [
        asyncio.create_task(servers[0].serve(sockets=[unix])),
        asyncio.create_task(servers[1].serve(sockets=[tcp])),
    ]
    while not all(s.started for s in servers):
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main())
