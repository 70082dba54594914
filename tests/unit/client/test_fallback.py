"""The client's fallback answer is the site's order, as a worker's degraded answer would be."""

from __future__ import annotations

from contracts import Candidate, RankedResult, SearchEvent, decode, encode
from scoring.ranking import original_order, unique_candidates
from streams.client.fallback import CLIENT_TIMEOUT, ClientFallback, site_order

CANDIDATES = [Candidate(item_id="b", retrieval_score=0.9), Candidate(item_id="a"),
              Candidate(item_id="b", retrieval_score=0.1), Candidate(item_id="c",
                                                                     retrieval_score=0.2)]
SEARCH = SearchEvent(event_id="e", request_id="r", user_id="u", ts=5, query="q",
                     candidates=CANDIDATES)


def test_site_order_is_the_workers_degraded_order() -> None:
    fallback = site_order(SEARCH, CLIENT_TIMEOUT, now_ms=1234)
    # One definition of "the site's order": the same list the worker publishes when degraded.
    assert fallback.items == original_order(unique_candidates(CANDIDATES))
    assert [i.item_id for i in fallback.items] == ["b", "a", "c"]
    assert fallback.degraded and fallback.reason == CLIENT_TIMEOUT
    assert (fallback.request_id, fallback.user_id) == ("r", "u")
    assert fallback.received_ts == fallback.published_ts == 1234


def test_a_fallback_is_a_valid_ranked_result() -> None:
    fallback = site_order(SEARCH, CLIENT_TIMEOUT)
    assert isinstance(fallback, RankedResult) and isinstance(fallback, ClientFallback)
    again = decode(encode(fallback), RankedResult)  # any consumer of results reads it
    assert again.items == fallback.items and again.degraded
