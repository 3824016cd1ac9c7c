"""The service's log: one JSON object a line, uvicorn's own lines included, or plain text on request.

``convzoo serve --log-format json`` (the default) or ``text``; ``$CONVZOO_LOG_FORMAT`` sets the default.
Every line goes to stderr through one handler on the root logger: convzoo's events (their message is
already a JSON object: ``{"event": "request", ...}``) are merged into the line, not quoted inside it;
uvicorn's messages ("Started server process", "Uvicorn running on ...") become ``"message"``; a
traceback becomes the ``"error"`` field of its line; Python warnings and uncaught exceptions in any
thread are logged the same way. uvicorn gets this set-up as its ``log_config``, so it does not install
its own handlers when it starts.
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.config
import os
import sys
import threading
from typing import Any

from convzoo.errors import ConvzooError

FORMATS = ("json", "text")
ENV = "CONVZOO_LOG_FORMAT"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
log = logging.getLogger("convzoo.serving")


def log_format(chosen: str | None = None) -> str:
    """``chosen`` (the --log-format flag), else ``$CONVZOO_LOG_FORMAT``, else json."""
    value = (chosen or os.environ.get(ENV) or "json").strip().lower()
    if value not in FORMATS:
        source = "--log-format" if chosen else f"${ENV}"
        raise ConvzooError(f"{source} must be json or text, got {value!r}")
    return value


def _fields(message: str) -> dict[str, Any] | None:
    """The message as a dict when it is one JSON object (convzoo's events), else None."""
    if not (message.startswith("{") and message.endswith("}")):
        return None
    try:
        value = json.loads(message)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _access(record: logging.LogRecord) -> dict[str, Any] | None:
    """uvicorn's access line, ``'%s - "%s %s HTTP/%s" %d'`` over (client, method, path, http, status), as fields."""
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
        client, method, path, http, status = record.args
        return {"event": "access", "client": client, "method": method, "path": path, "http": http, "status": status}
    return None


class JSONFormatter(logging.Formatter):
    """A record as one line of JSON: ts, level, logger, then the event's fields, or ``"event": "log"`` and
    ``message`` for a plain message."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(timespec="milliseconds")
        entry: dict[str, Any] = {"ts": ts, "level": record.levelname.lower(), "logger": record.name}
        fields = _access(record) or _fields(record.getMessage())
        if fields is not None:
            entry.update(fields)  # an event's own "ts" (the request's start) stays
        else:  # uvicorn's and Python's own messages: every line has an "event" to filter on
            entry.update(event="log", message=record.getMessage())
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """A record as ``time LEVEL logger: message``; convzoo's events as ``event key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 -- logging's name
        fields = _access(record) or _fields(record.message)
        if fields is not None:
            event = fields.pop("event", "")
            record.message = " ".join([str(event), *(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}"
                                                     for k, v in fields.items())]).strip()
        return super().formatMessage(record)


def log_config(fmt: str = "json", level: str = "INFO") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` for the service, and uvicorn's ``log_config``: one stderr handler on the
    root logger, every uvicorn logger handing its records up to it."""
    formatter = JSONFormatter if fmt == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"convzoo": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "convzoo", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {name: {"handlers": [], "level": level, "propagate": True} for name in UVICORN_LOGGERS},
    }


def install(fmt: str = "json", level: str = "INFO") -> dict[str, Any]:
    """Configure logging for ``convzoo serve`` (warnings and uncaught exceptions included) and return the dict
    to hand to uvicorn as ``log_config``."""
    config = log_config(fmt, level)
    logging.config.dictConfig(config)
    logging.captureWarnings(True)

    def uncaught(kind, value, traceback) -> None:  # noqa: ANN001
        log.critical("uncaught exception", exc_info=(kind, value, traceback))

    def uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            log.critical(f"uncaught exception in thread {args.thread.name if args.thread else '?'}",
                         exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = uncaught
    threading.excepthook = uncaught_in_thread
    return config
