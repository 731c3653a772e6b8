"""The trusted first process inside a space's sandbox (standard library only: it runs on the space's own
interpreter, before any of the space's code).

    launcher.py SPEC_JSON

mode "exec" (builds): drop to the space's uid, apply the limits, exec the command.
mode "serve" (the app): listen on the inbound unix socket (the hub's proxy connects there) and on
127.0.0.1:<hub_port> (the app's HF_ENDPOINT), then start the app as the space's uid under the limits, and
forward both ways until it exits:

    hub proxy -> run/app.sock -> 127.0.0.1:<app_port> (the app)
    the app -> 127.0.0.1:<hub_port> -> run/hub.sock -> the hub's relay -> the hub's HTTP port

The sandbox has no network but its own loopback (bwrap --unshare-net), so these sockets are the only way in
or out. The launcher exits with the app's status (128 + signal when a signal ended it).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import sys
from typing import Any


def drop_privileges(spec: dict[str, Any]) -> None:
    uid, gid = spec.get("uid"), spec.get("gid")
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(gid if gid is not None else uid)
        os.setuid(uid)


def apply_limits(spec: dict[str, Any]) -> None:
    for name, value in (spec.get("limits") or {}).items():
        if value:
            resource.setrlimit(getattr(resource, name), (value, value))


def start_child(spec: dict[str, Any]) -> int:
    pid = os.fork()
    if pid == 0:  # the child: the space's code starts here
        try:
            os.chdir(spec["cwd"])
            drop_privileges(spec)
            apply_limits(spec)
            os.execve(spec["argv"][0], spec["argv"], spec["env"])
        except BaseException as exc:
            print(f"cove launcher: cannot start {spec['argv']!r}: {exc}", file=sys.stderr, flush=True)
        finally:
            os._exit(127)
    return pid


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            writer.close()


def forward_to(open_target: Any) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await open_target()
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        up_writer.close()
        writer.close()

    return handle


async def serve(spec: dict[str, Any]) -> None:
    app_port, hub_port = spec["app_port"], spec["hub_port"]
    inbound = spec["inbound_socket"]
    drop_privileges(spec)  # first: nothing here needs more than the space's own uid, and the app inherits it
    if os.path.exists(inbound):
        os.unlink(inbound)
    inbound_server = await asyncio.start_unix_server(
        forward_to(lambda: asyncio.open_connection("127.0.0.1", app_port)), path=inbound
    )
    os.chmod(inbound, 0o600)
    outbound_server = await asyncio.start_server(
        forward_to(lambda: asyncio.open_unix_connection(spec["outbound_socket"])),
        host="127.0.0.1",
        port=hub_port,
        family=socket.AF_INET,
    )
    pid = start_child(spec)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def reap() -> None:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            got, status = pid, 0
        if got == pid and not done.done():
            done.set_result(os.waitstatus_to_exitcode(status))

    loop.add_signal_handler(signal.SIGCHLD, reap)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, os.kill, pid, signal.SIGTERM)
    reap()
    code = await done
    inbound_server.close()
    outbound_server.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # now, without unwinding the loop: open forwarding tasks would only print their cancellation
    os._exit(code if code >= 0 else 128 - code)


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec["mode"] == "exec":
        os.chdir(spec["cwd"])
        drop_privileges(spec)
        apply_limits(spec)
        os.execve(spec["argv"][0], spec["argv"], spec["env"])
    asyncio.run(serve(spec))


if __name__ == "__main__":
    main()
