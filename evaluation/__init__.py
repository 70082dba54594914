"""Offline and Kafka evaluation of streamrank's rankers on real behaviour (MovieLens).

See docs/evaluation.md. Imports contracts, state, scoring; streams only for the Kafka replay;
torch only through scoring.training, and only when learned models are trained.
"""
