"""structlog JSON lines. Every line carries `service`, and inside a handler `event_id` and
`experiment_id` (bound with structlog.contextvars by the bus)."""
from __future__ import annotations

import logging
import sys

import structlog

_configured = False


def configure_logging(service: str, level: str = "INFO") -> None:
    """Idempotent: JSON to stderr, with the service name bound for the whole process."""
    global _configured
    structlog.contextvars.bind_contextvars(service=service)
    if _configured:
        return
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(message)s")
    for noisy in ("aiokafka", "faststream", "pymilvus", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = True


def get_logger(**bound):
    return structlog.get_logger().bind(**bound)
