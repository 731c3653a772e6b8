"""Hub commands: serve, user/org/token administration, login, upload, download."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="hub data dir (default: $COVE_DATA_DIR or ~/.cove)")


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from cove.server.settings import Settings

    return Settings(data_dir=Path(args.data_dir)) if args.data_dir else Settings()


def _session(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from cove.server.app import open_hub

    return open_hub(_settings(args)).store.session()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the hub server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    _data_dir_arg(p)
    p.set_defaults(func=_serve)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_cmd", metavar="ACTION")
    p = user.add_parser("add", help="create a user; prints a new write token as the last line")
    p.add_argument("name")
    p.add_argument("--admin", action="store_true")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read a password for signing in to the website from stdin",
    )
    _data_dir_arg(p)
    p.set_defaults(func=_user_add)
    p = user.add_parser("passwd", help="set a user's website password (signs out their browsers)")
    p.add_argument("name")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (else it is prompted for)"
    )
    _data_dir_arg(p)
    p.set_defaults(func=_user_passwd)

    org = sub.add_parser("org", help="manage organisations").add_subparsers(dest="org_cmd", metavar="ACTION")
    p = org.add_parser("add", help="create an organisation")
    p.add_argument("name")
    _data_dir_arg(p)
    p.set_defaults(func=_org_add)
    member = org.add_parser("member", help="manage members").add_subparsers(
        dest="member_cmd", metavar="ACTION"
    )
    p = member.add_parser("add", help="add a user to an organisation (or change their role)")
    p.add_argument("org")
    p.add_argument("user")
    p.add_argument("--role", default="write", choices=["read", "write", "admin"])
    _data_dir_arg(p)
    p.set_defaults(func=_member_add)

    token = sub.add_parser("token", help="manage access tokens").add_subparsers(
        dest="token_cmd", metavar="ACTION"
    )
    p = token.add_parser("add", help="create a token for a user; prints it as the last line")
    p.add_argument("user")
    p.add_argument("--name", default="default")
    p.add_argument("--role", default="write", choices=["read", "write"])
    _data_dir_arg(p)
    p.set_defaults(func=_token_add)
    p = token.add_parser("revoke", help="revoke a token (its value, or its name with --user)")
    p.add_argument("token")
    p.add_argument("--user", default=None)
    _data_dir_arg(p)
    p.set_defaults(func=_token_revoke)

    p = sub.add_parser("login", help="store a token for the hub at COVE_ENDPOINT/HF_ENDPOINT")
    p.add_argument("--token", default=None, help="the token (read from stdin when omitted)")
    p.set_defaults(func=_login)

    p = sub.add_parser("whoami", help="show who the stored (or given) token belongs to")
    p.add_argument("--token", default=None)
    p.set_defaults(func=_whoami)

    p = sub.add_parser("upload", help="upload a folder or file to a hub repo")
    p.add_argument("repo_id")
    p.add_argument("path")
    p.add_argument("--repo-type", default="model", choices=["model", "dataset", "space"])
    p.add_argument("--private", action="store_true")
    p.add_argument("--message", default=None)
    p.add_argument("--token", default=None)
    p.set_defaults(func=_upload)

    p = sub.add_parser("download", help="download a repo (or one file) into the cache; prints the local path")
    p.add_argument("repo_id")
    p.add_argument("filename", nargs="?", default=None)
    p.add_argument("--revision", default=None)
    p.add_argument("--repo-type", default="model", choices=["model", "dataset", "space"])
    p.add_argument("--token", default=None)
    p.set_defaults(func=_download)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cove.server.app import create_app
    from cove.server.bootstrap import import_bundled

    settings = _settings(args)
    app = create_app(settings)
    if settings.import_bundled:
        store = app.state.hub.store
        with store.session() as s:
            for name in import_bundled(store, s):
                print(f"imported bundled model {name}", file=sys.stderr)
    print(
        f"Cove hub on http://{args.host}:{args.port} (data dir {settings.data_dir}); "
        f"clients: export HF_ENDPOINT=http://{args.host}:{args.port}",
        file=sys.stderr,
    )
    # keep idle connections longer than clients' pools do (httpx: 5 s), so a reused connection is not
    # closed under a request (a "connection reset" on a busy hub)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_keep_alive=75)
    return 0


def _read_password(from_stdin: bool) -> str:
    """The password: stdin's first line (newline removed), or typed twice at a prompt."""
    from cove.errors import HubRequestError

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass

        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            raise HubRequestError("The two passwords differ: nothing was changed.")
    if not password:
        raise HubRequestError(
            "No password given (pass it on stdin with --password-stdin): nothing was changed."
        )
    return password


def _user_add(args: argparse.Namespace) -> int:
    from cove.server.auth.service import check_new_password, create_account, create_token

    password = check_new_password(_read_password(True)) if args.password_stdin else None
    with _session(args) as s:
        create_account(s, args.name, "user", is_admin=args.admin, password=password)
        token = create_token(s, args.name, name="default", role="write")
    if password is not None:
        print(f"{args.name} can sign in to the website with that password")
    print(f"created {'admin ' if args.admin else ''}user {args.name}; its write token (shown once):")
    print(token)
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    from cove.server.auth.service import check_new_password, set_password

    password = check_new_password(_read_password(args.password_stdin))
    with _session(args) as s:
        set_password(s, args.name, password)
    print(f"password of {args.name} changed; their browser sessions were ended")
    return 0


def _org_add(args: argparse.Namespace) -> int:
    from cove.server.auth.service import create_account

    with _session(args) as s:
        create_account(s, args.name, "org")
    print(f"created organisation {args.name}")
    return 0


def _member_add(args: argparse.Namespace) -> int:
    from cove.server.auth.service import add_member

    with _session(args) as s:
        add_member(s, args.org, args.user, args.role)
    print(f"{args.user} is now {args.role} in {args.org}")
    return 0


def _token_add(args: argparse.Namespace) -> int:
    from cove.server.auth.service import create_token

    with _session(args) as s:
        token = create_token(s, args.user, name=args.name, role=args.role)
    print(f"created {args.role} token {args.name!r} for {args.user} (shown once):")
    print(token)
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    from cove.server.auth.service import revoke_token

    with _session(args) as s:
        count = revoke_token(s, args.token, user=args.user)
    print(f"revoked {count} token(s)")
    return 0 if count else 1


def _login(args: argparse.Namespace) -> int:
    from cove.hub.client import get_endpoint, save_token, whoami

    token = args.token or sys.stdin.readline().strip()
    if get_endpoint():  # check it before storing it
        print(f"logged in to {get_endpoint()} as {whoami(token)['name']}")
    path = save_token(token)
    print(f"token saved to {path}")
    return 0


def _whoami(args: argparse.Namespace) -> int:
    from cove.hub.client import whoami

    info = whoami(args.token)
    orgs = ", ".join(f"{o['name']} ({o.get('roleInOrg', '?')})" for o in info.get("orgs", []))
    print(info["name"] + (f"  orgs: {orgs}" if orgs else ""))
    return 0


def _upload(args: argparse.Namespace) -> int:
    from cove.hub.client import upload_file, upload_folder

    path = Path(args.path)
    if path.is_dir():
        url = upload_folder(
            args.repo_id,
            path,
            token=args.token,
            repo_type=args.repo_type,
            private=args.private,
            commit_message=args.message or "Upload folder with cove",
        )
    else:
        url = upload_file(
            args.repo_id,
            path,
            path.name,
            token=args.token,
            repo_type=args.repo_type,
            commit_message=args.message or f"Upload {path.name} with cove",
        )
    print(url)
    return 0


def _download(args: argparse.Namespace) -> int:
    from cove.hub.client import get_endpoint, hub_download, snapshot_download

    if not get_endpoint():  # no hub configured: read the local data dir's repos
        from cove.errors import EntryNotFoundError, RepoNotFoundError
        from cove.hub.local import local_snapshot

        snap = local_snapshot(args.repo_id, revision=args.revision, repo_type=args.repo_type)
        if snap is None:
            raise RepoNotFoundError(
                f"{args.repo_id!r} is not in the local data dir and no hub is configured: set COVE_ENDPOINT."
            )
        local = snap / args.filename if args.filename else snap
        if not local.exists():
            raise EntryNotFoundError(f"{args.filename!r} is not in {args.repo_id!r}.")
        print(os.fspath(local))
        return 0

    if args.filename:
        out = hub_download(
            args.repo_id, args.filename, revision=args.revision, repo_type=args.repo_type, token=args.token
        )
    else:
        out = snapshot_download(
            args.repo_id, revision=args.revision, repo_type=args.repo_type, token=args.token
        )
    print(os.fspath(out))
    return 0
