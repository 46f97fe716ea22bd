"""Command line: ``python -m rotation_local demo``, ``invoke`` and ``template``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rotation_local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="rotate throwaway database users and a fake API's keys, locally")
    demo.add_argument(
        "--engine",
        action="append",
        choices=["postgres", "mysql", "api_key"],
        help="what to rotate (repeatable; default: all three)",
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

    generate = commands.add_parser("template", help="write template.yaml from the engine registry")
    generate.add_argument("--check", action="store_true", help="only check that template.yaml is up to date")

    args = parser.parse_args(argv)
    if args.command == "template":
        from rotation_local.template import TEMPLATE_PATH, check_template, write_template

        if args.check:
            if check_template():
                return 0
            print(f"{TEMPLATE_PATH.name} is out of date: run `python -m rotation_local template`", file=sys.stderr)
            return 1
        write_template()
        return 0
    if args.command == "demo":
        from rotation_local.demo import ENGINES
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


if __name__ == "__main__":
    sys.exit(main())
