"""The `ledger` command: serve, migrate, worker, projections, history, audit, manual-queue, query, doctor,
reconcile, keygen, simulate.

Each subcommand lives in the module of its concern (serve, processes, records, sandbox); this one reads
the command line and the settings once, configures the logs, and turns a configuration error into one line
and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from ledger.cli import asking, processes, reconcile, records, sandbox, serve
from ledger.cli.logs import LEVELS, configure
from ledger.config import Settings, SettingsError
from ledger.domain.errors import LedgerError

DESCRIPTION = """An event-sourced ledger of Alipay's payment notifications.

Settings are LEDGER_* environment variables (see the README); `ledger COMMAND --help` tells a command's options.
"""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default after its help (unless it has none), and the description's line breaks kept."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, "", argparse.SUPPRESS) or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, formatter_class=HelpFormatter)
    common.add_argument("--log-level", choices=LEVELS, default="info",
                        help="the least severe message logged, by every part (ledger, uvicorn, dramatiq, alembic); "
                             "LEDGER_LOG_FORMAT=json logs one JSON object a line")
    parser = argparse.ArgumentParser(prog="ledger", description=DESCRIPTION, formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, processes, records, asking, reconcile, sandbox):
        module.add_commands(commands, common, HelpFormatter)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # The sandbox's tools act as Alipay: they need none of the ledger's settings.
        settings = None if args.command in sandbox.COMMANDS else Settings.from_env(os.environ)
        configure(args.log_level, settings.log_format if settings else "text")
        return int(args.run(args, settings))
    except SettingsError as exc:
        print(f"ledger: {exc}", file=sys.stderr)
        return 2
    except LedgerError as exc:
        print(f"ledger: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
