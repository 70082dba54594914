"""The streaming service: Faust app and agents, settings, CLI, local Kafka, demo.

The top layer: it may import contracts, state and scoring; nothing imports it.
"""
