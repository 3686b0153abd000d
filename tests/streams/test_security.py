"""Security settings, the TLS context, refusal lines and redaction: pure logic, no broker."""

from __future__ import annotations

import logging
import ssl

import pytest
import trustme
from aiokafka import errors

from trialwatch.streams import security
from trialwatch.streams.settings import load, mask_url

SASL = {
    "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "worker",
    "KAFKA_SASL_PASSWORD": "pa55-word",
}


@pytest.fixture
def ca_file(tmp_path):
    ca = trustme.CA()
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


def test_plaintext_has_no_security_arguments():
    s = load({})
    assert security.aiokafka_kwargs(s) == {"bootstrap_servers": "127.0.0.1:9092"}
    assert security.ssl_context(s) is None
    assert security.faust_credentials(s) is None


def test_sasl_ssl_gives_aiokafka_and_faust_the_same_context_and_user(ca_file):
    _, path = ca_file
    s = load({**SASL, "KAFKA_SSL_CAFILE": str(path)})
    assert s.kafka_security_protocol == "SASL_SSL"
    kwargs = security.aiokafka_kwargs(s)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("worker", "pa55-word")
    context = kwargs["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1  # our CA, not the system store
    creds = security.faust_credentials(s)
    assert (creds.username, creds.password, creds.mechanism.value) == (
        "worker",
        "pa55-word",
        "SCRAM-SHA-512",
    )
    assert creds.ssl_context.get_ca_certs() == context.get_ca_certs()


def test_a_client_certificate_is_loaded_for_mtls(ca_file, tmp_path):
    ca, path = ca_file
    cert = ca.issue_cert("localhost")
    cert_file, key_file = tmp_path / "c.pem", tmp_path / "c.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    env = {**SASL, "KAFKA_SSL_CAFILE": str(path)}
    with_cert = {**env, "KAFKA_SSL_CERTFILE": str(cert_file), "KAFKA_SSL_KEYFILE": str(key_file)}
    assert security.ssl_context(load(with_cert)) is not None
    wrong_key = {**with_cert, "KAFKA_SSL_KEYFILE": str(path)}  # a certificate, not a key
    with pytest.raises(ssl.SSLError):
        security.ssl_context(load(wrong_key))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS'"),
        ({**SASL, "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM='GSSAPI'"),
        ({**SASL, "KAFKA_SASL_USERNAME": ""}, "KAFKA_SASL_USERNAME is empty"),
        ({**SASL, "KAFKA_SASL_PASSWORD": ""}, "KAFKA_SASL_PASSWORD is empty"),
        ({**SASL, "KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE=/nonexistent"),
        ({**SASL, "KAFKA_SSL_CERTFILE": "/x.pem"}, "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE"),
        ({"REDIS_TLS_CAFILE": __file__}, "REDIS_URL is not a rediss://"),
    ],
)
def test_inconsistent_security_settings_are_one_line_naming_the_variable(env, named):
    with pytest.raises(SystemExit) as exc:
        load(env)
    message = str(exc.value)
    assert message.startswith("trialwatch: ") and named in message and "\n" not in message
    assert "pa55-word" not in message


def test_every_mechanism_is_accepted_and_plain_is_the_default():
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        s = load({**SASL, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                  "KAFKA_SASL_MECHANISM": mechanism})  # fmt: skip
        assert security.aiokafka_kwargs(s)["sasl_mechanism"] == mechanism
        assert "ssl_context" not in security.aiokafka_kwargs(s)
    s = load({**SASL, "KAFKA_SASL_MECHANISM": ""})
    assert security.aiokafka_kwargs(s)["sasl_mechanism"] == "PLAIN"


def test_refusal_lines_name_the_setting_and_never_the_password():
    s = load({**SASL, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    lines = {
        "auth": security.refusal_line(errors.SaslAuthenticationFailed("bad"), s),
        "mech": security.refusal_line(errors.UnsupportedSaslMechanismError("x"), s),
        "closed": security.refusal_line(errors.KafkaConnectionError("Connection closed"), s),
        "down": security.refusal_line(ConnectionRefusedError(), s),
    }
    assert "refused KAFKA_SASL_USERNAME=worker" in lines["auth"]
    assert "KAFKA_SASL_PASSWORD" in lines["auth"]
    assert "KAFKA_SASL_MECHANISM=SCRAM-SHA-512" in lines["mech"]
    assert "KAFKA_SECURITY_PROTOCOL=SASL_SSL" in lines["closed"]
    assert "cannot reach Kafka at 127.0.0.1:1" in lines["down"]
    for line in lines.values():
        assert line.startswith("trialwatch: ") and "pa55-word" not in line and "\n" not in line
    denied = security.authorization_line(s, "Create", "topic t", "TopicAuthorizationFailedError")
    assert denied.startswith("trialwatch: the broker refused KAFKA_SASL_USERNAME=worker Create")


def test_redis_url_secrets_are_masked_but_the_user_is_named():
    url = "rediss://worker:s3cr%40t@127.0.0.1:6390/0"
    assert mask_url(url) == "rediss://worker:***@127.0.0.1:6390/0"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    s = load({**SASL, "REDIS_URL": url})
    assert set(s.secrets) == {"pa55-word", "s3cr%40t", "s3cr@t"}
    text = repr(s)
    assert all(secret not in text for secret in s.secrets)
    assert "worker:***@127.0.0.1:6390" in text


def test_redact_masks_every_secret_longest_first():
    assert security.redact("a=abc b=abcdef", ["abc", "abcdef"]) == "a=*** b=***"
    assert security.redact("nothing here", ["", "zz"]) == "nothing here"


def test_log_records_of_any_library_have_secrets_masked():
    previous = logging.getLogRecordFactory()
    try:
        security.install_log_redaction(("pa55-word",))
        record = logging.getLogger("aiokafka.conn").makeRecord(
            "aiokafka.conn", logging.ERROR, __file__, 1, "login %s failed", ("pa55-word",), None
        )
        assert record.getMessage() == "login *** failed"
        clean = logging.getLogger("x").makeRecord(
            "x", logging.INFO, __file__, 1, "ok %d", (1,), None
        )
        assert clean.getMessage() == "ok 1"
    finally:
        logging.setLogRecordFactory(previous)
