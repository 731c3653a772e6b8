"""Operating a hub at scale: schema migrations (`cove db upgrade`, `cove db current`) and `cove gc`."""

from __future__ import annotations

import argparse
from pathlib import Path


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from cove.server.settings import Settings

    overrides: dict[str, object] = {}
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    return Settings(**overrides)  # type: ignore[arg-type]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="hub data dir (default: $COVE_DATA_DIR or ~/.cove)")
    p.add_argument("--database-url", default=None, help="database (default: $COVE_DATABASE_URL or SQLite)")


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="hub database schema").add_subparsers(dest="db_cmd", metavar="ACTION")
    p = db.add_parser("upgrade", help="apply schema migrations (run once before starting the servers)")
    _common(p)
    p.set_defaults(func=_db_upgrade)
    p = db.add_parser("current", help="print the schema revision of the database and of this Cove")
    _common(p)
    p.set_defaults(func=_db_current)

    p = sub.add_parser("gc", help="delete blobs no commit refers to (crash and refused-commit leftovers)")
    _common(p)
    p.add_argument(
        "--grace-seconds",
        type=float,
        default=3600,
        help="keep unreferenced blobs younger than this: a commit in flight may be about to use them",
    )
    p.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    p.set_defaults(func=_gc)


def _engine(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from cove.store import make_engine

    settings = _settings(args)
    settings.data_dir.expanduser().mkdir(parents=True, exist_ok=True)
    return make_engine(settings.resolved_database_url)


def _db_upgrade(args: argparse.Namespace) -> int:
    from cove.server.app import open_blob_store
    from cove.store import upgrade_schema

    engine = _engine(args)
    # migrations that back-fill from file contents (the README words search matches) read the blob store
    before, after = upgrade_schema(engine, blobs=open_blob_store(_settings(args)))
    where = engine.url.render_as_string(hide_password=True)
    print(f"{where}: schema {before or '(empty)'} -> {after}")
    return 0


def _db_current(args: argparse.Namespace) -> int:
    from cove.store import schema_revisions

    engine = _engine(args)
    current, head = schema_revisions(engine)
    print(f"database: {current or '(empty)'}\ncove:     {head}")
    return 0 if current == head else 1


def _gc(args: argparse.Namespace) -> int:
    from cove.server.app import open_hub
    from cove.store import collect_garbage

    hub = open_hub(_settings(args))
    report = collect_garbage(hub.store, grace_seconds=args.grace_seconds, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{report.live} live blobs; {verb} {report.deleted} unreferenced; kept {report.kept_recent} "
        f"younger than {args.grace_seconds:g} s; dropped {report.incoming} unfinished uploads"
    )
    return 0
