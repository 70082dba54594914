"""`streamrank worker`: serve rankings until stopped."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)

DESCRIPTION = """\
Serve personalized rankings: read searches and user actions from Kafka, re-rank each search's
candidates for its user with the configured model (STREAMRANK_SCORER), and publish one
RankedResult per search. Runs until stopped; start more workers to share the partitions.

Before serving, the topics are checked (missing ones created) and the zero-shot model is
exported if it is missing. HTTP on STREAMRANK_WEB_HOST:STREAMRANK_WEB_PORT (default
127.0.0.1:6066): /metrics (Prometheus), /ready/ (200 once it serves), /health/,
/users/{id}/sequence/."""


def add_parser(sub: Any) -> None:
    sub.add_parser("worker", help="serve: re-rank searches from Kafka until stopped",
                   description=DESCRIPTION)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from scoring import build_scorer
    from scoring.serving import ScorerSlot
    from streams.kafka.topology import prepare_sync
    from streams.tools.model_setup import ensure_model
    from streams.worker.app import StreamrankApp

    log.info("settings: %s", settings.masked())
    ensure_model(settings)
    settings = prepare_sync(settings)
    options = {} if settings.cascade_k is None else {"cascade_k": settings.cascade_k}
    scorer = build_scorer(
        settings.scorer, settings.models_dir, device=settings.device,
        version=settings.model_version, variant=settings.model_variant, **options,
    )
    worker_app = StreamrankApp(settings, ScorerSlot(scorer))
    worker = faust.Worker(worker_app.app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()  # returns only via SystemExit
    return 0
