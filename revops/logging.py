"""Structured logging, configured once at start-up.

Readable key=value lines in a terminal, one JSON object per line in production
(``REVOPS_LOG_FORMAT=json``). Log keys carry opaque ids only: never an email or a name.

Tracebacks never show local variables: a frame's locals hold request bodies, tokens and
secrets (the id secret verifying a token, a store URL with its password). The console shows
the traceback with its source lines; JSON logs carry it as a structured ``exception`` list
(type, value, frames with file, line and function), so a production log keeps every stack
trace in a form a log search can filter, instead of ``"<traceback object at 0x...>"``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer

__all__ = ["configure_logging", "console_renderer", "get_logger", "json_processors"]


def json_processors() -> list[Any]:
    """The tail of a JSON log line's chain: a structured traceback without locals, then JSON."""
    return [
        ExceptionRenderer(ExceptionDictTransformer(show_locals=False, max_frames=50)),
        structlog.processors.JSONRenderer(),
    ]


def console_renderer(colors: bool) -> structlog.dev.ConsoleRenderer:
    """Key=value lines; exceptions as a traceback with source lines and no locals."""
    formatter = structlog.dev.RichTracebackFormatter(
        show_locals=False, color_system="truecolor" if colors else None, width=100
    )
    return structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=formatter)


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    """Route structlog and the standard library through one renderer."""
    tail: list[Any] = (
        json_processors() if fmt == "json" else [console_renderer(sys.stderr.isatty())]
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger for ``name``."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
