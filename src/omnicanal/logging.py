"""structlog set-up: JSON lines for machines (default), or a console renderer for people — the daemon's own log
events and those of the libraries it runs on (aiohttp, asyncio, warnings) alike, so that no line, traceback
included, is written any other way. Customer data is masked unless `pii` (OMNICANAL_LOG_PII; see redact.py)."""

from __future__ import annotations

import logging
import sys
from types import TracebackType

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from omnicanal.redact import mask_personal_data

_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _tail(fmt: str, pii: bool) -> list[structlog.types.Processor]:
    """From an event with its exception to the rendered line. JSON gets tracebacks as structured data (without
    the frames' local variables unless `pii`: they hold customer data); the console gets them as text, formatted
    first so that the masking sees them too."""
    exceptions: structlog.types.Processor = (
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=pii)) if fmt == "json"
        else structlog.processors.format_exc_info
    )
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    return [exceptions, *(() if pii else (mask_personal_data,)), renderer]


def configure_logging(level: str = "info", fmt: str = "json", pii: bool = False) -> None:
    tail = _tail(fmt, pii)
    threshold = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*_SHARED, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED, processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail]))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(threshold)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    """An exception nothing caught, as a log line like any other (Python would print it as text)."""
    structlog.get_logger("omnicanal").critical("uncaught", exc_info=(kind, error, trace))
