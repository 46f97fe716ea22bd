"""Command line: ``python -m rotation_local demo | invoke | preflight | local-env | sam-local-invoke | roots |
verified-table | template``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

SERVERS_HELP = "server kinds, comma-separated names or patterns (default: $ROTATION_TEST_SERVERS, else all)"


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911 (one return per command)
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

    # What invoke and preflight both take: they run a function's handler the same way (a child process).
    runs_handler = argparse.ArgumentParser(add_help=False)
    runs_handler.add_argument("--function", required=True, type=Path, help="function folder, e.g. functions/postgres")
    runs_handler.add_argument("--env-vars", type=Path, help="environment file in sam local invoke's --env-vars format")
    runs_handler.add_argument("--endpoint", help="Secrets Manager endpoint URL (sets AWS_ENDPOINT_URL_SECRETSMANAGER)")
    runs_handler.add_argument("--python", help="Python interpreter that runs the handler (default: this one)")

    run = commands.add_parser(
        "invoke",
        parents=[runs_handler],
        help="run a function's handler on an event file in a Python process (without Docker)",
    )
    run.add_argument(
        "--event", required=True, type=Path, help="event JSON file, e.g. events/postgres/createSecret.json"
    )
    run.add_argument("--function-name", help="section of the env-vars file to use (the template's logical id)")

    check = commands.add_parser(
        "preflight",
        parents=[runs_handler],
        help="run a function's preflight of one secret (every check a rotation needs, changing nothing)",
        description='Invoke the function\'s handler with {"Preflight": {"SecretId": ...}} in a child process, as '
        "invoke does, and print its report; exit 0 when every check passed, 1 when one failed, 2 when the "
        "invocation failed.",
    )
    check.add_argument("--secret-id", required=True, help="the secret's ARN or name")
    check.add_argument(
        "--function-name",
        help="the env-vars file's section, and the function's name in the Lambda context (the secret must name "
        "that function as its rotation function)",
    )
    check.add_argument("--json", action="store_true", help="print the report as the function returned it")

    local = commands.add_parser(
        "local-env",
        help="start what the sample events need, on loopback, until Ctrl-C (restage, status: talk to it)",
        description="Start the Secrets Manager emulator, a throwaway server of each database target and a fake "
        "Datadog API on 127.0.0.1, create the secrets events/ names and stage each function's token; print "
        "the commands to run next; stop and clean up on Ctrl-C (docs/local-runner.md).",
    )
    local.add_argument("--port", type=int, default=5000, help="the emulator's port (default 5000; 0: a free one)")
    local.add_argument("--run-dir", type=Path, help="the run's folder, new or empty (default: a temporary one)")
    local.add_argument(
        "--function-name", action="append", dest="only", metavar="NAME",
        help="only this function (the template's logical id, e.g. PostgresSingleUserFunction; repeatable)",
    )  # fmt: skip
    local.add_argument(
        "--invoke-image", metavar="IMAGE",
        help="the Lambda image the printed sam local invoke commands run on (--invoke-image, --skip-pull-image), "
        "e.g. the offline stand-in rotation-local/lambda-python:3.13-x86_64; default: AWS's, pulled by SAM",
    )  # fmt: skip
    actions = local.add_subparsers(dest="action")
    # What restage and status both take: they talk to a running local-env's emulator.
    talks_to_local_env = argparse.ArgumentParser(add_help=False)
    talks_to_local_env.add_argument(
        "--endpoint", help="the local-env's emulator URL (default: from $LOCAL_ENV, else port 5000)"
    )
    restage = actions.add_parser(
        "restage",
        parents=[talks_to_local_env],
        help="stage a fresh token on a finished rotation and write its four events into $LOCAL_ENV",
    )
    restage.add_argument(
        "--function-name", "--function", action="append", dest="functions", metavar="NAME", default=[],
        help="the function (its logical id; repeatable; default: every function whose rotation finished)",
    )  # fmt: skip
    restage.add_argument(
        "--abandon", action="store_true",
        help="give up an unfinished rotation first (only if no step after createSecret ran: setSecret may "
        "already have changed the password)",
    )  # fmt: skip
    status = actions.add_parser(
        "status", parents=[talks_to_local_env], help="each secret's versions, labels and which of them log in now"
    )
    status.add_argument("--json", action="store_true", help="the report as JSON")

    sam_local = commands.add_parser(
        "sam-local-invoke",
        help="every function's four sample events through the real sam local invoke, each rotation checked",
        description="Start a Docker engine if none answers, pick the Lambda image (AWS's, or the offline stand-in "
        "when no registry answers), start local-env, run sam local invoke on each function's four events in "
        "order, check each rotation through local-env, print one line per function and exit 1 if one failed. "
        "Run make sam-build first (make sam-local-invoke does). docs/local-runner.md.",
    )
    sam_local.add_argument(
        "--function-name", action="append", dest="only", metavar="NAME", default=[],
        help="only this function (the template's logical id; repeatable; default: all of them)",
    )  # fmt: skip
    sam_local.add_argument(
        "--image", choices=["auto", "aws", "standin"], default="auto",
        help="the Lambda image: auto (AWS's when here or a registry answers, else the offline stand-in), aws, standin",
    )  # fmt: skip
    sam_local.add_argument(
        "--env-var", action="append", default=[], metavar="FUNCTION:NAME=VALUE",
        help="a variable of one function's container, over local-env's sam-env.json (one the template declares)",
    )  # fmt: skip

    generate = commands.add_parser("template", help="write template.yaml and events/ from the engine registry")
    generate.add_argument("--check", action="store_true", help="only check that template.yaml is up to date")

    roots = commands.add_parser("roots", help="build or show the private root filesystems of the newer servers")
    roots.add_argument(
        "action",
        choices=["build", "status", "needed"],
        help="needed: print the Debian suites whose root filesystems the servers need, one a line",
    )
    roots.add_argument("--servers", help=SERVERS_HELP + "; `demo`: the servers `make demo` starts")
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
    if args.command == "local-env":
        return _local_env(args)
    if args.command == "sam-local-invoke":
        from rotation_local.sam_local import run as run_sam_local

        return run_sam_local(functions=args.only, image_mode=args.image, env_vars=args.env_var)
    if args.command == "demo":
        from rotation_local.demo import run as run_demo

        engines = tuple(args.engine or ENGINES)
        return run_demo(engines=engines, strategy=args.strategy, rotations=args.rotations, python=args.python)

    from rotation_local.invoke import invoke, load_env_vars

    env = load_env_vars(args.env_vars, args.function_name) if args.env_vars else {}
    if args.endpoint:
        env["AWS_ENDPOINT_URL_SECRETSMANAGER"] = args.endpoint
    if args.command == "preflight":
        from rotation_local import preflight

        return preflight.command(
            args.function.resolve(), args.secret_id, env=env, function_name=args.function_name,
            python=args.python, as_json=args.json,
        )  # fmt: skip
    event = json.loads(args.event.read_text())
    result = invoke(args.function.resolve(), event, env=env, python=args.python)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.ok:
        if result.result is not None:  # what the handler returned: a preflight's report
            print(json.dumps(result.result))
        print(json.dumps({"status": "ok"}))
        return 0
    print(json.dumps({"errorType": result.error_type, "errorMessage": result.error_message}))
    return 1


def _roots(action: str, spec: str | None, *, force: bool) -> int:
    """Build the roots the selected kinds need (as root), or say which kinds cannot run and why."""
    from rotation_local import server_kinds
    from rotation_local.rootfs import RootError

    try:
        if spec == "demo":
            from rotation_local.demo import demo_server_kinds

            kinds = demo_server_kinds()
        else:
            kinds = server_kinds.select(spec if spec is not None else os.environ.get("ROTATION_TEST_SERVERS"))
    except ValueError as error:
        print(f"servers: {error}", file=sys.stderr)
        return 2
    if action == "needed":
        for root in server_kinds.roots(kinds):
            print(root.suite)
        return 0
    unavailable = [(kind, server_kinds.unavailable_reason(kind)) for kind in kinds]
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


def _local_env(args: argparse.Namespace) -> int:
    from rotation_local import local_env

    try:
        if args.action == "restage":
            return local_env.restage_command(args.endpoint, args.functions, abandon=args.abandon)
        if args.action == "status":
            return local_env.status_command(args.endpoint, as_json=args.json)
    except local_env.LocalEnvError as error:
        print(f"local-env: {error}", file=sys.stderr)
        return 1
    return local_env.run(
        port=args.port, run_dir=args.run_dir, functions=args.only or (), invoke_image=args.invoke_image
    )


def _template(*, check: bool) -> int:
    """template.yaml and the sample events, generated from the registry; then what follows from the template:
    examples/deploy-from-sar.yaml and the generated blocks of docs/deploy.md and docs/releasing.md."""
    from rotation_local.events import stale_events, write_events
    from rotation_local.template import TEMPLATE_PATH, check_template, write_template
    from rotation_release.docs import stale_blocks, write_blocks
    from rotation_release.examples import stale_examples, write_examples

    if not check:
        write_template()
        write_events()
        write_examples()
        write_blocks()
        return 0
    stale = ([] if check_template() else [TEMPLATE_PATH.name]) + stale_events() + stale_examples() + stale_blocks()
    if not stale:
        return 0
    print(f"out of date: {', '.join(stale)}: run `python -m rotation_local template`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
