from pathlib import Path

from trialwatch.streams.settings import load


def test_defaults_are_loopback_and_dev_stack():
    s = load({})
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.web_host == "127.0.0.1"
    assert s.visit_events_topic == "visit-events"
    assert s.dlq_topic == "visit-events.dlq"
    assert s.model_dir == Path("artifacts")


def test_topic_prefix_and_multi_host_broker_url():
    s = load({"TRIALWATCH_TOPIC_PREFIX": "t1.", "KAFKA_BOOTSTRAP_SERVERS": "a:1, b:2"})
    assert s.risk_alerts_topic == "t1.risk-alerts"
    assert s.broker_url == "kafka://a:1;kafka://b:2"


def test_repr_never_shows_secrets():
    s = load({"KAFKA_SASL_PASSWORD": "hunter2", "REDIS_URL": "redis://:s3cret@redis:6379/0"})
    text = repr(s)
    assert "hunter2" not in text and "s3cret" not in text
    assert "redis:6379/0" in text
