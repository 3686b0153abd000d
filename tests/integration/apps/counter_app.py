"""A minimal Faust app for the foundation test: one agent, one RocksDB table.

Counts events per key in a table and publishes the running count, so the test
sees the table's value from outside the worker. Configured from the environment.
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ["COUNTER_APP_ID"],
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    store="rocksdb://",
    datadir=os.environ["COUNTER_DATA_DIR"],
    topic_partitions=2,
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
)
events_topic = app.topic(os.environ["COUNTER_IN"], key_type=str, value_type=str, partitions=2)
counts_topic = app.topic(os.environ["COUNTER_OUT"], key_type=str, value_type=str, partitions=2)
key_to_count = app.Table("key_to_count", default=int, partitions=2)


@app.agent(events_topic)
async def count_events(stream):
    async for key, _value in stream.items():
        key_to_count[key] += 1
        await counts_topic.send(key=key, value=str(key_to_count[key]))


if __name__ == "__main__":
    app.main()
