"""Bare Faust apps the benchmark compares the pipeline with (ceilings b and c).

Run as ``python -m bench.apps worker`` with BENCH_MODE=consume|table,
BENCH_TOPIC, BENCH_APP_ID, BENCH_PARTITIONS, KAFKA_BOOTSTRAP_SERVERS,
BENCH_DATA_DIR and BENCH_PORT. GET /bench reports the count and the wall-clock
times of the first and last event, so throughput excludes start-up.
"""

from __future__ import annotations

import os
import time

import faust
from faust import web

from trialwatch.streams.security import faust_credentials
from trialwatch.streams.settings import load

MODE = os.environ.get("BENCH_MODE", "consume")
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "8"))

_settings = load()
app = faust.App(
    os.environ.get("BENCH_APP_ID", "trialwatch-bench"),
    broker=_settings.broker_url,
    # The same TLS/SASL as the worker: a comparison on a secured broker is fair.
    broker_credentials=faust_credentials(_settings),
    store="rocksdb://",
    datadir=os.environ.get("BENCH_DATA_DIR", ".devstack/bench"),
    topic_partitions=PARTITIONS,
    table_standby_replicas=0,
    web_bind="127.0.0.1",
    web_host="127.0.0.1",
    web_port=int(os.environ.get("BENCH_PORT", "6070")),
    consumer_auto_offset_reset="earliest",
)
source_topic = app.topic(
    os.environ.get("BENCH_TOPIC", "bench-input"),
    key_serializer="raw",
    value_serializer="raw",
    partitions=PARTITIONS,
)
key_to_last = app.Table(
    "key_to_last", default=None, partitions=PARTITIONS, key_type=bytes, value_type=bytes
)
progress = {"count": 0, "first": None, "last": None}


def _tick() -> None:
    now = time.time()
    if progress["first"] is None:
        progress["first"] = now
    progress["last"] = now
    progress["count"] += 1


if MODE == "table":

    @app.agent(source_topic)
    async def write_one_key(stream):
        async for key, value in stream.items():
            key_to_last[key] = value[:32]
            _tick()

else:

    @app.agent(source_topic)
    async def only_consume(stream):
        async for _value in stream:
            _tick()


@app.page("/bench")
async def bench_progress(self: web.View, request: web.Request) -> web.Response:
    return self.json(progress)


if __name__ == "__main__":
    app.main()
