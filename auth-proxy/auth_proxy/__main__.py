"""`python -m auth_proxy` serves; `dev-keys` and `dev-token` make a local issuer."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvloop

from . import devkeys, logsafe
from .budget import default_budget, memory_limit, plan_memory
from .settings import REQUIRED, VARIABLES, SettingsError, load_settings


def variables_help() -> str:
    """The variables table of settings.py as `--help` shows it: name, default, meaning."""
    lines = ["environment variables:"]
    for variable in VARIABLES:
        default = variable.default
        if default is REQUIRED:
            shown = "required"
        elif isinstance(default, bool):
            shown = str(default).lower()
        elif isinstance(default, tuple):
            shown = ",".join(map(str, default)) or "none"
        else:
            shown = str(default) if default != "" else "none"
        lines.append(f"  {variable.name:<28} {variable.help} (default: {shown})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m auth_proxy",
        description="JWT-validating proxy for the predictor; configured by environment variables "
        "(below, and the README). With no command, it serves.",
        epilog=variables_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    keys = commands.add_parser("dev-keys", help="write a development key pair and its JWKS")
    keys.add_argument("--dir", type=Path, default=Path(".dev-issuer"))
    keys.add_argument("--issuer", default=devkeys.DEV_ISSUER)
    keys.add_argument("--audience", default=devkeys.DEV_AUDIENCE)
    token = commands.add_parser("dev-token", help="print a token signed by the development key")
    token.add_argument("--dir", type=Path, default=Path(".dev-issuer"))
    token.add_argument("--scope", default="get::prediction")
    token.add_argument("--ttl", default="1h", help="lifetime: 90s, 15m, 1h, 2d")
    token.add_argument("--subject", default="dev-user")
    args = parser.parse_args(argv)

    if args.command == "dev-keys":
        devkeys.write_dev_keys(args.dir, args.issuer, args.audience)
        for name, value in devkeys.proxy_settings(args.dir).items():
            print(f"{name}={value}")
        return 0
    if args.command == "dev-token":
        print(
            devkeys.dev_token(args.dir, args.scope, devkeys.parse_duration(args.ttl), args.subject)
        )
        return 0

    try:
        settings = load_settings()
        total = settings.memory_budget_bytes or default_budget(memory_limit())
        queue = None if settings.payload_log is None else settings.payload_log.queue_bytes
        memory = plan_memory(total, queue)
    except (SettingsError, ValueError) as exc:
        print(f"auth-proxy: {exc}", file=sys.stderr)
        return 2
    logsafe.configure(logging.INFO, settings.refusal_log_lines)
    from .app import serve

    uvloop.run(serve(settings, memory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
