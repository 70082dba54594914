"""The client library: publish events with the right keys, request a ranking and await it."""
