"""Kafka client settings, one source for both clients: kafka-python (the producer, the
job's set-up) and Spark's Kafka connector (the JVM consumer). Security passes through as
configured: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL with PLAIN or SCRAM, a CA file.

A failed connection becomes one SetupError that says which of three things is wrong
(nothing listens, the credentials were refused, the listener speaks another protocol):
kafka-python itself only reports "Unable to bootstrap" after its timeout.
"""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError

from tripstream.errors import SetupError, TransientError, TripstreamError
from tripstream.settings import KafkaSettings
from tripstream.stack.procs import port_open

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
BOOTSTRAP_TIMEOUT_MS = 15_000


def _checked(k: KafkaSettings) -> KafkaSettings:
    if k.security_protocol not in PROTOCOLS:
        raise SetupError(
            f"unknown kafka.security_protocol {k.security_protocol!r}. Try one of "
            f"{', '.join(PROTOCOLS)} (TRIPSTREAM_KAFKA_SECURITY_PROTOCOL)."
        )
    if k.security_protocol.startswith("SASL_"):
        if k.sasl_mechanism not in MECHANISMS:
            raise SetupError(
                f"kafka.security_protocol {k.security_protocol} needs kafka.sasl_mechanism, one"
                f" of {', '.join(MECHANISMS)}; got {k.sasl_mechanism!r}. Try setting "
                "TRIPSTREAM_KAFKA_SASL_MECHANISM."
            )
        if not k.sasl_username:
            raise SetupError(
                f"{k.security_protocol} needs a user. Try setting TRIPSTREAM_KAFKA_SASL_USERNAME"
                " and TRIPSTREAM_KAFKA_SASL_PASSWORD."
            )
    return k


def client_options(k: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's producer, consumer and admin client."""
    k = _checked(k)
    opts: dict[str, Any] = {
        "bootstrap_servers": k.bootstrap.split(","),
        "security_protocol": k.security_protocol,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
    }
    if k.security_protocol.startswith("SASL_"):
        opts.update(
            sasl_mechanism=k.sasl_mechanism,
            sasl_plain_username=k.sasl_username,
            sasl_plain_password=k.sasl_password,
        )
    if k.ssl_cafile:
        opts["ssl_cafile"] = k.ssl_cafile
    return opts


def connector_options(k: KafkaSettings) -> dict[str, str]:
    """`kafka.*` options for Spark's Kafka connector (passed to its Java consumer)."""
    k = _checked(k)
    opts = {"kafka.bootstrap.servers": k.bootstrap, "kafka.security.protocol": k.security_protocol}
    if k.security_protocol.startswith("SASL_"):

        def quoted(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

        opts["kafka.sasl.mechanism"] = k.sasl_mechanism
        opts["kafka.sasl.jaas.config"] = (
            f"{LOGIN_MODULES[k.sasl_mechanism]} required username={quoted(k.sasl_username)} "
            f"password={quoted(k.sasl_password)};"
        )
    if k.ssl_cafile:
        opts["kafka.ssl.truststore.type"] = "PEM"
        opts["kafka.ssl.truststore.location"] = k.ssl_cafile
    return opts


def unreachable(k: KafkaSettings, error: BaseException) -> TripstreamError:
    """What a failed bootstrap means, with the fix: nothing listening may pass (transient);
    refused credentials or another protocol will not (SetupError)."""
    hosts = [hp.rsplit(":", 1) for hp in k.bootstrap.split(",")]
    if not any(port_open(int(port), host) for host, port in hosts):
        return TransientError(
            f"nothing answers at Kafka {k.bootstrap} ({error}). Try `make run` for the embedded "
            "broker, or set TRIPSTREAM_KAFKA_BOOTSTRAP to a running one."
        )
    if k.security_protocol.startswith("SASL_"):
        return SetupError(
            f"Kafka at {k.bootstrap} refused user {k.sasl_username!r} ({k.sasl_mechanism} over "
            f"{k.security_protocol}): the user name or password is wrong, or that mechanism is "
            "not enabled on this listener. Try checking TRIPSTREAM_KAFKA_SASL_USERNAME, "
            "TRIPSTREAM_KAFKA_SASL_PASSWORD and TRIPSTREAM_KAFKA_SASL_MECHANISM."
        )
    return SetupError(
        f"Kafka at {k.bootstrap} accepts connections but no {k.security_protocol} Kafka "
        f"handshake ({error}). Try setting TRIPSTREAM_KAFKA_SECURITY_PROTOCOL (and the "
        "SASL settings) to what that listener expects."
    )


def admin_client(k: KafkaSettings) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(**client_options(k), request_timeout_ms=15000)
    except KafkaError as e:
        raise unreachable(k, e) from e


def consumer(k: KafkaSettings, **extra: Any) -> KafkaConsumer:
    try:
        return KafkaConsumer(**client_options(k), enable_auto_commit=False, **extra)
    except KafkaError as e:
        raise unreachable(k, e) from e


def topic_partitions(k: KafkaSettings, wait_s: float = 30.0) -> list[int]:
    """The topic's partitions, waiting up to wait_s for the topic to exist."""
    client = consumer(k)
    try:
        deadline = time.monotonic() + wait_s
        while not (parts := client.partitions_for_topic(k.topic)):
            if time.monotonic() > deadline:
                raise SetupError(
                    f"topic {k.topic!r} not found on {k.bootstrap}. Try `make run`, which "
                    "creates it, or set TRIPSTREAM_KAFKA_TOPIC."
                )
            time.sleep(0.5)
        return sorted(parts)
    finally:
        client.close()
