"""How every `ledger` process logs: one handler on stderr, text or JSON, at the level `--log-level` gives.

The same configuration goes to uvicorn (which applies it in each of `--workers` processes), so the ledger's
loggers, uvicorn's, dramatiq's and alembic's all follow it. Alembic's INFO lines (one per migration step,
on every start) are for `--log-level debug` only.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

LEVELS = ("critical", "error", "warning", "info", "debug")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the exception if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def logging_config(level: str, log_format: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` configuration (uvicorn's `log_config` takes it as it is)."""
    name = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"text": {"format": TEXT}, "json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": log_format}},
        "root": {"level": name, "handlers": ["stderr"]},
        "loggers": {
            "alembic": {"level": "DEBUG" if name == "DEBUG" else max(name, "WARNING", key=logging.getLevelName)},
            # uvicorn's own loggers carry no handler of their own here: they go to the root's.
            **{logger: {"level": name, "handlers": [], "propagate": True}
               for logger in ("uvicorn", "uvicorn.error", "uvicorn.access")},
        },
    }


def configure(level: str, log_format: str = "text") -> dict[str, Any]:
    config = logging_config(level, log_format)
    logging.config.dictConfig(config)
    return config
