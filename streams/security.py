"""How every client of ours reaches a secured Kafka and Redis, and what it says when refused.

One place builds the TLS context and the SASL arguments, so the Faust worker
(``broker_credentials``), the direct aiokafka clients (topic admin, alert
ledger, publisher and replay, ``alerts``, model control, benchmarks) and the
Redis cache cannot drift apart: a sponsor's broker accepts all of them or none.

aiokafka reports any failed bootstrap as "Unable to bootstrap from [...]" and
keeps the cause in a log line; a person needs the cause and the variable to
fix. ``explain_refusal`` opens one connection the same way and turns what the
broker did (bad password, untrusted certificate, wrong protocol) into one line
naming the setting. Secrets never appear in those lines, and
``install_log_redaction`` masks any configured secret that reaches a log record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator
from typing import Any

from trialwatch.streams.settings import Settings, mask_url

REDACTED = "***"


# ----------------------------------------------------------------- building
def ssl_context(s: Settings) -> ssl.SSLContext | None:
    """The TLS context for the broker: the CA (system store when unset), and the
    client certificate for mTLS when one is configured. None without TLS."""
    if not s.kafka_uses_tls:
        return None
    context = ssl.create_default_context(cafile=s.kafka_ssl_cafile or None)
    if s.kafka_ssl_certfile:
        context.load_cert_chain(
            s.kafka_ssl_certfile, s.kafka_ssl_keyfile, password=s.kafka_ssl_key_password or None
        )
    return context


def sasl_mechanism(s: Settings) -> str:
    return s.kafka_sasl_mechanism or "PLAIN"


def aiokafka_kwargs(s: Settings) -> dict[str, Any]:
    """Connection arguments for plain aiokafka clients (admin, producers, consumers)."""
    kwargs: dict[str, Any] = {"bootstrap_servers": s.kafka_bootstrap_servers}
    if s.kafka_security_protocol == "PLAINTEXT":
        return kwargs
    kwargs["security_protocol"] = s.kafka_security_protocol
    if s.kafka_uses_tls:
        kwargs["ssl_context"] = ssl_context(s)
    if s.kafka_uses_sasl:
        kwargs["sasl_mechanism"] = sasl_mechanism(s)
        kwargs["sasl_plain_username"] = s.kafka_sasl_username
        kwargs["sasl_plain_password"] = s.kafka_sasl_password
    return kwargs


def faust_credentials(s: Settings):
    """``broker_credentials`` for the Faust app: the same context and SASL as above."""
    import faust

    if s.kafka_security_protocol == "PLAINTEXT":
        return None
    if s.kafka_security_protocol == "SSL":
        return faust.SSLCredentials(ssl_context(s))
    return faust.SASLCredentials(
        username=s.kafka_sasl_username,
        password=s.kafka_sasl_password,
        mechanism=sasl_mechanism(s),
        ssl_context=ssl_context(s),
    )


def redis_kwargs(s: Settings) -> dict[str, Any]:
    """Extra arguments for ``redis.from_url`` (AUTH user and password are in the URL)."""
    return {"ssl_ca_certs": s.redis_tls_cafile} if s.redis_tls_cafile else {}


# ----------------------------------------------------------------- refusals
def who(s: Settings) -> str:
    """The identity a message may name: the user, never the password."""
    if s.kafka_uses_sasl:
        return f"KAFKA_SASL_USERNAME={s.kafka_sasl_username}"
    return f"KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol}"


def refusal_line(exc: BaseException, s: Settings) -> str:
    """One line for a failed connection to the broker, naming the setting to fix."""
    from aiokafka import errors

    where = s.kafka_bootstrap_servers
    if isinstance(exc, errors.SaslAuthenticationFailed):
        return (
            f"trialwatch: the broker at {where} refused {who(s)} "
            f"(KAFKA_SASL_MECHANISM={sasl_mechanism(s)}): authentication failed; "
            "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
        )
    if isinstance(exc, errors.UnsupportedSaslMechanismError):
        return (
            f"trialwatch: the broker at {where} does not offer "
            f"KAFKA_SASL_MECHANISM={sasl_mechanism(s)}"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        ca = s.kafka_ssl_cafile or "the system CA store"
        return (
            f"trialwatch: the broker at {where} has a certificate not trusted by "
            f"KAFKA_SSL_CAFILE ({ca}): {exc.verify_message}"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"trialwatch: TLS with the broker at {where} failed ({exc.reason}); check "
            f"KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol}, KAFKA_SSL_CERTFILE "
            "and KAFKA_SSL_KEYFILE"
        )
    if isinstance(exc, errors.KafkaConnectionError) and "closed" in str(exc):
        if s.kafka_security_protocol == "SASL_SSL":
            return (
                f"trialwatch: the broker at {where} closed the connection "
                "(KAFKA_SECURITY_PROTOCOL=SASL_SSL): does it require a client certificate "
                "from its CA (KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE)?"
            )
        return (
            f"trialwatch: the broker at {where} closed the connection: it expects "
            f"other security than KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol} "
            "(credentials missing? TLS?)"
        )
    return (
        f"trialwatch: cannot reach Kafka at {where} ({type(exc).__name__}). "
        "Start the dev stack with `make up`, or set KAFKA_BOOTSTRAP_SERVERS."
    )


def authorization_line(s: Settings, operation: str, resource: str, error: str) -> str:
    """One line for an ACL the broker's user lacks."""
    return (
        f"trialwatch: the broker refused {who(s)} {operation} on {resource} ({error}): "
        "grant that user an ACL for it"
    )


async def explain_refusal(s: Settings, timeout_s: float = 10.0) -> str:
    """Connect once to the first bootstrap server as every client would, and say why
    it fails (aiokafka's own bootstrap error hides the cause)."""
    from aiokafka.conn import create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    host, _, port = s.kafka_bootstrap_servers.split(",")[0].strip().rpartition(":")
    kwargs = aiokafka_kwargs(s)
    kwargs.pop("bootstrap_servers")
    try:
        conn = await asyncio.wait_for(
            create_conn(host, int(port), request_timeout_ms=int(timeout_s * 1000), **kwargs),
            timeout_s,
        )
        try:
            await asyncio.wait_for(conn.send(MetadataRequest([])), timeout_s)
        finally:
            conn.close()
    except (TimeoutError, Exception) as exc:
        return refusal_line(exc, s)
    return refusal_line(ConnectionError("bootstrap failed"), s)


@contextlib.contextmanager
def quiet_kafka_client() -> Iterator[None]:
    """aiokafka's own ERROR lines while a client starts: the caller explains a
    failure in one line of its own, so theirs would only be noise before it."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def start_or_exit(client: Any, s: Settings, timeout_s: float = 30.0) -> None:
    """``await client.start()``; a refusal is one line (SystemExit), never a retry loop."""
    from aiokafka.errors import KafkaConnectionError

    try:
        with quiet_kafka_client():
            await asyncio.wait_for(client.start(), timeout_s)
    except (KafkaConnectionError, TimeoutError, OSError):
        with contextlib.suppress(Exception):
            stop = getattr(client, "stop", None) or client.close  # consumers/producers; admin
            await stop()
        raise SystemExit(await explain_refusal(s)) from None


def redis_refusal_line(exc: BaseException, s: Settings) -> str:
    """What a Redis failure means for the settings, without the password."""
    from redis import exceptions

    url = mask_url(s.redis_url)
    if isinstance(
        exc, exceptions.AuthenticationError | exceptions.AuthenticationWrongNumberOfArgsError
    ):
        return f"Redis at {url} refused the user and password of REDIS_URL"
    if isinstance(exc, exceptions.NoPermissionError):
        return f"Redis at {url}: the REDIS_URL user lacks an ACL permission"
    if isinstance(exc, ssl.SSLError) or "SSL" in type(exc).__name__ or "certificate" in str(exc):
        return f"Redis at {url}: TLS failed (REDIS_TLS_CAFILE={s.redis_tls_cafile or 'unset'})"
    return f"Redis at {url} unreachable ({type(exc).__name__})"


# ---------------------------------------------------------------- redaction
def redact(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """``text`` with every secret value replaced (longest first, so a secret that
    contains another is masked whole)."""
    for secret in sorted((x for x in secrets if x), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def install_log_redaction(secrets: tuple[str, ...] | list[str]) -> None:
    """Every log record of the process, from any library, has these values masked.

    A record factory rather than a handler filter: Faust installs its handlers
    later, and a factory sees every record before any handler does.
    """
    wanted = tuple(x for x in secrets if x)
    if not wanted:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logger's problem, not ours
            return record
        if any(x in message for x in wanted):
            record.msg, record.args = redact(message, wanted), None
        return record

    logging.setLogRecordFactory(factory)
