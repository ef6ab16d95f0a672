"""One log format for the whole process, uvicorn's loggers included: text (the default) or one
JSON object per line (``SWITCHBOARD_LOG_FORMAT=json``), each line naming its request, run and
user (graphs/log_context.py), and no secret in any of them.

uvicorn configures logging itself from its ``log_config``; ``serve`` hands it ``config(...)``,
the same dictionary every other command applies, so both write through the same formatter.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import warnings
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from api.settings import Settings
from graphs import log_context

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
# A secret this short is too likely to be an ordinary word of a log line to be masked in it.
_SHORTEST_SECRET = 6
# The password of any URL (``scheme://user:password@host``) and of a libpq keyword conninfo.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*):[^@/?#\s]*@")
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s'\"]+)")

# Loggers quieter than the rest: psycopg_pool logs connection details at INFO, pgserver is
# chatty about its internals, and httpx logs every request's URL at INFO (a webhook's or an
# MCP server's URL may hold a token).
_QUIET = ("psycopg.pool", "pgserver", "httpx", "httpcore")


class Redactor:
    """Masks the passwords of URLs and conninfo strings and the configured secrets' values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted(
            {s for s in secrets if len(s) >= _SHORTEST_SECRET}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        # The cheap tests first: most lines (access lines) hold neither a URL nor a password.
        if "@" in text:
            text = _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", text)
        if "assword" in text:
            text = _KEYWORD_PASSWORD.sub(rf"\g<head>{MASK}", text)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


def masked(url: str) -> str:
    """``url`` with its password, if any, masked: how a DSN may be written in a log line."""
    return Redactor()(url)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, then the ids the line belongs to, where known."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(TEXT_FORMAT)
        self.redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{k}={v}" for k, v in _ids(record).items() if v is not None)
        if ids:
            head, newline, rest = line.partition("\n")
            line = f"{head} [{ids}]{newline}{rest}"
        return self.redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (ISO 8601, UTC), level, logger, message, the
    request, run and user ids (``null`` when unknown), and ``exc_info`` for an exception."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
            **_ids(record),
        }
        if record.exc_info:
            line["exc_info"] = self.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc_info"] = self.redact(record.exc_text)
        if record.stack_info:
            line["stack_info"] = self.redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def _ids(record: logging.LogRecord) -> dict[str, str | None]:
    # A record may name its ids itself (``extra=``); otherwise those of the running context.
    found = log_context.current()
    for name in found:
        value = getattr(record, name, None)
        if value is not None:
            found[name] = str(value)
    return found


def secrets_of(settings: Settings) -> list[str]:
    """The values no log line may show: the configured secrets and the URLs' passwords."""
    found = [
        value.get_secret_value()
        for value in (
            settings.jwt_secret,
            settings.openai_api_key,
            settings.webhook_secret,
            settings.admin_password,
        )
        if value is not None
    ]
    for url in (settings.database_url, settings.redis_url):
        password = _password_of(url)
        if password:
            found += [password, unquote(password)]
    return found


def _password_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def config(settings: Settings) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` dictionary for ``settings``: uvicorn's ``log_config``."""
    formatter = JsonFormatter if settings.log_format == "json" else TextFormatter
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "switchboard": {
                "()": f"{formatter.__module__}.{formatter.__qualname__}",
                "secrets": secrets_of(settings),
            }
        },
        "handlers": {
            "switchboard": {
                "class": "logging.StreamHandler",
                "formatter": "switchboard",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["switchboard"]},
        "loggers": {
            # uvicorn's own handlers (its default config) are replaced: its lines reach ours.
            **{
                name: {"handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
            },
            **{name: {"level": "WARNING"} for name in _QUIET},
        },
    }


def configure(settings: Settings) -> dict[str, Any]:
    """Apply ``config(settings)`` to this process; returns it (for uvicorn)."""
    applied = config(settings)
    logging.config.dictConfig(applied)
    # Python's warnings become log lines too, in the same format, instead of bare stderr text.
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    return applied
