"""structlog set-up, called only by entry points (CLI, worker start); modules just call
``structlog.get_logger()``.

The standard library's loggers (Celery's, kombu's, uvicorn's) go through the same renderer,
so a worker's log is one format: JSON lines with ``RUNNER_LOG_FORMAT=json``, each with its
``logger`` name, ``level`` and ``timestamp`` like ours.
"""

from __future__ import annotations

import logging
import sys

import structlog

_STAMP = structlog.processors.TimeStamper(fmt="iso", utc=True)


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    """JSON lines in production (``fmt="json"``), readable lines in development."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    threshold = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _STAMP,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                # the task's context (run_id, test_id...) on Celery's own lines too
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                _STAMP,
                structlog.stdlib.ExtraAdder(),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(threshold)
