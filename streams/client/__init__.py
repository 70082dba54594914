"""The client library: publish events with the right keys, request a ranking and await it.

`RankingClient` (async) and `SyncRankingClient` (a background loop for code without one)
connect through streams.kafka.connection.KafkaClients, so they use the deployment's security
settings. `HttpRankingClient` and `SyncHttpRankingClient` send a search to a worker's
`POST /rank` instead. `rank(search, deadline_s)` never leaves a site waiting: past the
deadline it answers in the site's order (a degraded `ClientFallback` with its reason).
"""

from streams.client.fallback import (
    CLIENT_TIMEOUT,
    NO_WORKER,
    PUBLISH_FAILED,
    REJECTED,
    ClientFallback,
    site_order,
)
from streams.client.http_client import HttpRankingClient, RankRequestError, SyncHttpRankingClient
from streams.client.pending import Pending, Reply
from streams.client.ranking_client import RankingClient
from streams.client.sync_client import SyncRankingClient

__all__ = ["CLIENT_TIMEOUT", "NO_WORKER", "PUBLISH_FAILED", "REJECTED", "ClientFallback",
           "HttpRankingClient", "Pending", "RankRequestError", "RankingClient", "Reply",
           "SyncHttpRankingClient", "SyncRankingClient", "site_order"]
