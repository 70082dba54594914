"""The client's own answer when no worker answered in time: the site's order, marked degraded.

A site must never be left without a list: past its deadline the client answers the search
itself, with the candidates in the order the site sent them (the same order a worker uses
when it cannot score: scoring/ranking.py's `original_order`), `degraded=True`, and why.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from contracts import Candidate, RankedItem, RankedResult, SearchEvent

CLIENT_TIMEOUT = "client_timeout"  # no result by the deadline
PUBLISH_FAILED = "publish_failed"  # the search could not be published
NO_WORKER = "no_worker"  # HTTP: no worker accepted the search (refused or unreachable)
REJECTED = "rejected"  # HTTP: a worker refused the search as invalid (400)


class ClientFallback(RankedResult):
    """A RankedResult the client made up, not a worker: `reason` says why.

    Still a valid RankedResult (encode/decode, every field as the contract says; its
    `degraded_reason` is `reason` too); `isinstance(result, ClientFallback)` tells it apart
    from a worker's answer."""

    reason: str


def site_items(candidates: Sequence[Candidate]) -> list[RankedItem]:
    """Each item once (first wins), in the site's order, scored by its retrieval score."""
    seen: set[str] = set()
    items: list[RankedItem] = []
    for cand in candidates:
        if cand.item_id in seen:
            continue
        seen.add(cand.item_id)
        items.append(RankedItem(item_id=cand.item_id, score=float(cand.retrieval_score or 0.0),
                                rank=len(items) + 1))
    return items


def site_order(search: SearchEvent, reason: str, now_ms: int | None = None) -> ClientFallback:
    """`search` answered in the site's own order, degraded for `reason`."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return ClientFallback(
        request_id=search.request_id, user_id=search.user_id,
        items=site_items(search.candidates), model_version="", degraded=True,
        degraded_reason=reason, received_ts=now, published_ts=now, reason=reason,
    )


__all__ = ["CLIENT_TIMEOUT", "NO_WORKER", "PUBLISH_FAILED", "REJECTED", "ClientFallback",
           "site_items", "site_order"]
