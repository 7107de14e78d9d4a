"""The options ``plugin run`` and ``controller run`` share: how they log and where they serve ``/metrics``."""

from __future__ import annotations

import argparse
import os

LOG_LEVEL_ENV = "GPUPOLICY_LOG_LEVEL"
LOG_FORMATS = ("json", "text")  # gpupolicy.plugin.logs.FORMATS, not imported here: every command loads this module
LOG_LEVELS = ("debug", "info", "warning", "error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default="json", help="one JSON object per line (default), or text"
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=os.environ.get(LOG_LEVEL_ENV) or "info",
        help=f"the least severe level logged (default: ${LOG_LEVEL_ENV}, else info)",
    )
    parser.add_argument(
        "--metrics-address",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="serve /metrics and /healthz here (default 127.0.0.1:0: a free port, logged); '' turns metrics off",
    )


def setup(args: argparse.Namespace, component: str, level: str | None = None) -> str | None:
    """Logging as the options say (``level`` overrides ``--log-level``), once the options are checked; a usage
    problem as a message, else None."""
    from gpupolicy.plugin import logs
    from gpupolicy.plugin.metrics import parse_address

    level = (level or args.log_level).lower()
    if level not in LOG_LEVELS:  # from the environment: argparse checks only what the command line gives
        return f"${LOG_LEVEL_ENV} must be one of {', '.join(LOG_LEVELS)}, not {level!r}"
    if args.metrics_address:
        try:
            parse_address(args.metrics_address)
        except ValueError as exc:
            return str(exc)
    logs.setup(args.log_format, level, component=component)
    return None
