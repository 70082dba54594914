"""Kafka security settings → the options of every client the process opens.

One place turns STREAMRANK_SECURITY_PROTOCOL, SASL_* and SSL_* into aiokafka keyword arguments
(producers, consumers, admin clients) and into Faust's broker credentials, so the worker, the
trainer, `tail`, the topic setup and the benchmarks connect the same way.
"""

from __future__ import annotations

import ssl
from typing import Any

from streams.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A TLS context for SSL and SASL_SSL (system CAs unless a CA file is given)."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
    )
    if settings.ssl_certfile is not None:
        password = settings.ssl_key_password
        context.load_cert_chain(
            str(settings.ssl_certfile),
            str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
            password.get_secret_value() if password else None,
        )
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient."""
    if settings.security_protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        assert settings.sasl_password is not None  # checked by Settings
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value(),
        }
    return options


def faust_credentials(settings: Settings) -> Any:
    """`broker_credentials` for faust.App (None for PLAINTEXT)."""
    import faust

    if settings.security_protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    assert settings.sasl_password is not None
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password.get_secret_value(),
        ssl_context=context,
        mechanism=settings.sasl_mechanism,
    )
