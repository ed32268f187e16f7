"""Log settings and formatters: ``--log-level``, ``--log-format text|json``.

``json`` writes one object a line: ``time`` (ISO 8601, UTC), ``level``,
``logger``, ``message``, then the record's ``extra=`` fields and ``exc_info``
(the traceback's text) when there is one. Both formats mask what must never
reach a log: the password of any URL in the message or a field (through
``storage.live._mask``), and the whole value of a field whose name says token,
password or secret.
"""

from __future__ import annotations

import datetime
import logging
import re
import sys
from dataclasses import dataclass
from typing import Any

import orjson

from .exceptions import ConfigError
from .settings import setting
from .storage.live import _mask

__all__ = ["JsonFormatter", "LogConfig", "TextFormatter", "mask_text", "secret_name", "setup"]

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MASKED = "***"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SECRET = re.compile(r"token|password|passwd|secret", re.IGNORECASE)
# What every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR", env="PILLARPAYOUT_LOG")
    log_format: str = setting("text", "text, or json: one JSON object a line")

    def __post_init__(self) -> None:
        if self.log_format not in FORMATS:
            raise ConfigError("must be text or json", setting="log_format")
        if self.log_level.upper() not in LEVELS:
            raise ConfigError(f"must be one of {', '.join(LEVELS)}", setting="log_level")


def secret_name(name: str) -> bool:
    """A setting or field whose value is a secret as a whole."""
    return bool(_SECRET.search(name))


def mask_text(text: str) -> str:
    """``text`` with the password of every URL in it masked."""
    return _URL.sub(lambda m: _mask(m.group(0)), text) if "://" in text else text


def _clean(name: str, value: Any) -> Any:
    if secret_name(name):
        return MASKED
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    return mask_text(str(value))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = _clean(key, value)
        if record.exc_info:
            line["exc_info"] = mask_text(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc_info"] = mask_text(record.exc_text)
        if record.stack_info:
            line["stack_info"] = mask_text(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def setup(config: LogConfig) -> None:
    """Configure the root logger (replacing any handler) for this process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, config.log_level.upper()))
    # websockets logs every HTTP request and connection at INFO: far too much here.
    logging.getLogger("websockets").setLevel(logging.WARNING)
