"""Kafka security settings → client options; secrets never printed."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import faust
import pytest
from pydantic import ValidationError

from streams.kafka.connection import client_options, faust_credentials
from streams.settings import Settings


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
