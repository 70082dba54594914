"""Kafka security settings → every client the factory builds; secrets never printed."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import faust
import pytest
from pydantic import ValidationError

from streams.kafka.connection import KafkaClients, client_options, faust_credentials
from streams.settings import Settings
from streams.tools.worker_process import connection_env, worker_env


def test_plaintext_adds_nothing() -> None:
    settings = Settings()
    assert client_options(settings) == {}
    assert faust_credentials(settings) is None


def test_sasl_ssl_scram_options() -> None:
    settings = Settings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                        sasl_username="svc", sasl_password="s3cret",  # type: ignore[arg-type]
                        ssl_cafile=Path(certifi.where()))
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "svc"
    assert options["sasl_plain_password"] == "s3cret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    creds = faust_credentials(settings)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-512"


def test_ssl_only_and_sasl_plaintext() -> None:
    ssl_only = Settings(security_protocol="SSL")
    assert set(client_options(ssl_only)) == {"security_protocol", "ssl_context"}
    assert isinstance(faust_credentials(ssl_only), faust.SSLCredentials)
    plain = Settings(security_protocol="SASL_PLAINTEXT", sasl_username="u",
                     sasl_password="p")  # type: ignore[arg-type]
    assert "ssl_context" not in client_options(plain)
    assert faust_credentials(plain).protocol.value == "SASL_PLAINTEXT"


def test_sasl_without_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRANK_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ValidationError, match="sasl_username and sasl_password"):
        Settings()


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRANK_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("STREAMRANK_SSL_KEY_PASSWORD", "keypass")
    settings = Settings()
    shown = f"{settings.masked()} {settings!r} {settings}"
    assert "hunter2" not in shown and "keypass" not in shown
    assert settings.masked()["sasl_password"] == "**********"


async def test_every_client_the_factory_builds_carries_the_security_settings() -> None:
    settings = Settings(bootstrap_servers="k1:9093,k2:9093", security_protocol="SASL_PLAINTEXT",
                        sasl_mechanism="SCRAM-SHA-256", sasl_username="svc",
                        sasl_password="s3cret")  # type: ignore[arg-type]
    clients = KafkaClients(settings)
    producer = clients.producer(acks="all")
    consumer = clients.consumer("t", group_id=None)
    admin = clients.admin()
    try:
        for client in (producer.client, consumer._client, admin._client):
            assert client._bootstrap_servers == "k1:9093,k2:9093"
            assert client._security_protocol == "SASL_PLAINTEXT"
            assert (client._sasl_mechanism, client._sasl_plain_username) == ("SCRAM-SHA-256",
                                                                             "svc")
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()
    assert "s3cret" not in repr(clients)


def test_plaintext_clients_ignore_the_deployments_security_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The local broker of tests, the demo and benches listens PLAINTEXT whatever the
    # environment says about the deployment's cluster.
    monkeypatch.setenv("STREAMRANK_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMRANK_SASL_USERNAME", "svc")
    monkeypatch.setenv("STREAMRANK_SASL_PASSWORD", "s3cret")
    local = KafkaClients.plaintext("127.0.0.1:19092")
    assert local.options == {} and local.bootstrap_servers == "127.0.0.1:19092"
    # ...and a worker spawned against it is told so explicitly (its env inherits ours).
    env = worker_env(local, Path("/tmp/s"), "r", models_dir=Path("/tmp/m"))
    assert env["STREAMRANK_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert env["STREAMRANK_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"


def test_a_worker_spawned_with_sasl_clients_connects_the_same_way() -> None:
    clients = KafkaClients(Settings(bootstrap_servers="k:9093", security_protocol="SASL_SSL",
                                    sasl_username="svc", sasl_password="s3cret",  # type: ignore[arg-type]
                                    ssl_cafile=Path(certifi.where())))
    env = connection_env(clients)
    assert env == {
        "STREAMRANK_BOOTSTRAP_SERVERS": "k:9093", "STREAMRANK_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAMRANK_SASL_MECHANISM": "PLAIN", "STREAMRANK_SASL_USERNAME": "svc",
        "STREAMRANK_SASL_PASSWORD": "s3cret", "STREAMRANK_SSL_CAFILE": certifi.where(),
    }
