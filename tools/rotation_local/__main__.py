"""Command line: ``python -m rotation_local demo | invoke | roots | verified-table | template``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

SERVERS_HELP = "server kinds, comma-separated names or patterns (default: $ROTATION_TEST_SERVERS, else all)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rotation_local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    from rotation_local.demo import ENGINES

    demo = commands.add_parser("demo", help="rotate throwaway database users and a fake API's keys, locally")
    demo.add_argument(
        "--engine", action="append", choices=ENGINES, help="what to rotate (repeatable; default: all of them)"
    )
    demo.add_argument("--strategy", choices=["single_user", "alternating_users"], default="single_user")
    demo.add_argument("--rotations", type=int, default=2, help="how many rotations in a row (default 2)")
    demo.add_argument("--python", help="Python interpreter that runs the handler (default: this one)")

    run = commands.add_parser("invoke", help="run a function's handler on an event file (like sam local invoke)")
    run.add_argument("--function", required=True, type=Path, help="function folder, e.g. functions/postgres")
    run.add_argument(
        "--event", required=True, type=Path, help="event JSON file, e.g. events/postgres/createSecret.json"
    )
    run.add_argument("--env-vars", type=Path, help="environment file in sam local invoke's --env-vars format")
    run.add_argument("--function-name", help="section of the env-vars file to use (the template's logical id)")
    run.add_argument("--endpoint", help="Secrets Manager endpoint URL (sets AWS_ENDPOINT_URL_SECRETSMANAGER)")
    run.add_argument("--python", help="Python interpreter that runs the handler (default: this one)")

    generate = commands.add_parser("template", help="write template.yaml and events/ from the engine registry")
    generate.add_argument("--check", action="store_true", help="only check that template.yaml is up to date")

    roots = commands.add_parser("roots", help="build or show the private root filesystems of the newer servers")
    roots.add_argument("action", choices=["build", "status"])
    roots.add_argument("--servers", help=SERVERS_HELP)
    roots.add_argument("--force", action="store_true", help="rebuild even when current")

    table = commands.add_parser("verified-table", help="render the last test run's verified-against table")
    table.add_argument("--input", type=Path, help="the run's record (default: .pytest_cache/rotation-verified.json)")
    table.add_argument("--docs", type=Path, help="write the record's generated blocks into this docs folder")

    args = parser.parse_args(argv)
    if args.command == "roots":
        return _roots(args.action, args.servers, force=args.force)
    if args.command == "verified-table":
        return _verified_table(args.input, args.docs)
    if args.command == "template":
        return _template(check=args.check)
    if args.command == "demo":
        from rotation_local.demo import run as run_demo

        engines = tuple(args.engine or ENGINES)
        return run_demo(engines=engines, strategy=args.strategy, rotations=args.rotations, python=args.python)

    from rotation_local.invoke import invoke, load_env_vars

    env = load_env_vars(args.env_vars, args.function_name) if args.env_vars else {}
    if args.endpoint:
        env["AWS_ENDPOINT_URL_SECRETSMANAGER"] = args.endpoint
    event = json.loads(args.event.read_text())
    result = invoke(args.function.resolve(), event, env=env, python=args.python)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.ok:
        print(json.dumps({"status": "ok"}))
        return 0
    print(json.dumps({"errorType": result.error_type, "errorMessage": result.error_message}))
    return 1


def _roots(action: str, spec: str | None, *, force: bool) -> int:
    """Build the roots the selected kinds need (as root), or say which kinds cannot run and why."""
    from rotation_local import server_kinds
    from rotation_local.rootfs import RootError

    try:
        kinds = server_kinds.select(spec if spec is not None else os.environ.get("ROTATION_TEST_SERVERS"))
    except ValueError as error:
        print(f"servers: {error}", file=sys.stderr)
        return 2
    unavailable = [(kind, kind.unavailable_reason()) for kind in kinds]
    skipped = [(kind, reason) for kind, reason in unavailable if reason]
    if skipped:
        names = ", ".join(kind.name for kind, _reason in skipped)
        print(f"servers: skipped without root: {names} (private Debian root filesystems need chroot)")
        for reason in sorted({reason for _kind, reason in skipped if reason}):
            print(f"servers:   {reason}")
        print("servers: their tests are skipped; run `make test` as root to include them")
    wanted = [kind for kind, reason in unavailable if not reason]
    if action == "status":
        for root in server_kinds.roots(wanted):
            state = "current" if root.is_current() else (root.problem() or "stale")
            print(f"servers: {server_kinds.describe_root(root) if root.is_current() else state}")
        return 0
    try:
        for root, report in server_kinds.build_roots(wanted, say=lambda line: print(f"servers: {line}"), force=force):
            verb = "built" if report is not None else "current"
            print(f"servers: {verb}: {server_kinds.describe_root(root)}")
    except RootError as error:
        print(f"servers: {error}", file=sys.stderr)
        return 1
    return 0


def _verified_table(source: Path | None, docs: Path | None) -> int:
    from rotation_local import verified

    path = source or verified.default_path(Path.cwd())
    try:
        record = verified.load(path)
    except (OSError, ValueError) as error:
        print(f"verified-table: cannot read {path}: {error} (run `make test` first)", file=sys.stderr)
        return 1
    if docs is None:
        print(verified.render_table(record))
        return 0
    missing = verified.missing_kinds(record)
    if missing:
        print(
            f"verified-table: the run did not include {', '.join(missing)}; the docs describe a full run "
            "(`make test` as root, no ROTATION_TEST_SERVERS)",
            file=sys.stderr,
        )
        return 1
    try:
        written = verified.write_docs(record, docs)
    except (OSError, ValueError) as error:
        print(f"verified-table: {docs}: {error}", file=sys.stderr)
        return 1
    print(f"verified-table: updated {', '.join(str(p) for p in written)}")
    return 0


def _template(*, check: bool) -> int:
    """template.yaml and the sample events: both generated from the registry."""
    from rotation_local.events import stale_events, write_events
    from rotation_local.template import TEMPLATE_PATH, check_template, write_template

    if not check:
        write_template()
        write_events()
        return 0
    stale = ([] if check_template() else [TEMPLATE_PATH.name]) + stale_events()
    if not stale:
        return 0
    print(f"out of date: {', '.join(stale)}: run `python -m rotation_local template`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
