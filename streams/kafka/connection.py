"""The one Kafka connection factory: every producer, consumer and admin client is built here.

`KafkaClients(settings)` turns STREAMRANK_BOOTSTRAP_SERVERS, STREAMRANK_SECURITY_PROTOCOL,
SASL_* and SSL_* into aiokafka clients (and Faust's broker credentials), so the worker, the
trainer, `tail`, the topic setup, the tools and the client library connect the same way.
Nothing else constructs an aiokafka client: `make lint` bans it (ruff's banned-api rule, with
this module as the only exception).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.settings import Settings

if TYPE_CHECKING:
    # Names for annotations elsewhere (import them under TYPE_CHECKING): they do not exist at
    # run time, so nothing outside this module can call them to build a client.
    Producer: TypeAlias = AIOKafkaProducer
    Consumer: TypeAlias = AIOKafkaConsumer
    Admin: TypeAlias = AIOKafkaAdminClient


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


class KafkaClients:
    """Builds aiokafka clients for one cluster with the configured security.

    Keyword arguments are passed on to aiokafka (acks, group_id, isolation_level, ...);
    bootstrap servers and security options always come from the settings.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bootstrap_servers = settings.bootstrap_servers
        self._options = client_options(settings)

    @classmethod
    def plaintext(cls, bootstrap_servers: str) -> KafkaClients:
        """Clients for a PLAINTEXT cluster at `bootstrap_servers` (the local broker of tests,
        the demo and benches). Not read from the environment: STREAMRANK_* security settings
        meant for the deployment's cluster must not apply to a local broker."""
        return cls(Settings.model_construct(bootstrap_servers=bootstrap_servers,
                                            security_protocol="PLAINTEXT"))

    def __repr__(self) -> str:
        return (f"KafkaClients({self.bootstrap_servers!r}, "
                f"{self.settings.security_protocol})")  # never the secrets

    def with_bootstrap(self, bootstrap_servers: str) -> KafkaClients:
        """The same security settings against other bootstrap servers."""
        update = {"bootstrap_servers": bootstrap_servers}
        return KafkaClients(self.settings.model_copy(update=update))

    @property
    def options(self) -> dict[str, Any]:
        """The security keyword arguments every client gets (empty for PLAINTEXT)."""
        return dict(self._options)

    def producer(self, **kwargs: Any) -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, **self._options, **kwargs)

    def consumer(self, *topics: str, **kwargs: Any) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *topics, bootstrap_servers=self.bootstrap_servers, **self._options, **kwargs
        )

    def admin(self, **kwargs: Any) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, **self._options, **kwargs
        )

    def faust_credentials(self) -> Any:
        return faust_credentials(self.settings)
