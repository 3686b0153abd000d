"""The Faust application: configured from the environment, nothing else.

Topics, tables, agents, views and commands live in their own modules and are
found by ``autodiscover``; ``main()`` is the ``trialwatch`` console script, so
Faust's commands (``worker``, ``tables``...) and ours share one CLI.
"""

from __future__ import annotations

import asyncio
import sys

import faust

from trialwatch.streams import runtime, security, webapp
from trialwatch.streams.lognoise import install_coordinator_noise_filter
from trialwatch.streams.rawchangelog import RawChangelogReads
from trialwatch.streams.recovery import TableManager as RecoveringTableManager
from trialwatch.streams.runtime import settings
from trialwatch.streams.transport import Transport


class TableManager(RawChangelogReads, RecoveringTableManager):
    """Faust's table manager with our overrides, one module each: recovery that
    keeps input events (``streams.recovery``) and changelogs read as raw bytes
    (``streams.rawchangelog``). Drop a base when its module goes."""


app = faust.App(
    settings.app_id,
    broker=settings.broker_url,
    broker_credentials=security.faust_credentials(settings),
    store=settings.store,
    datadir=str(settings.data_dir),
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication,
    table_standby_replicas=settings.standby_replicas,
    web_bind=settings.web_host,
    web_host=settings.web_host,
    web_port=settings.web_port,
    # the access middleware (loopback, or credentials) and the request-size bound
    web_application_options=webapp.application_options(settings),
    consumer_auto_offset_reset="earliest",
    broker_commit_interval=1.0,
    # A worker killed without a goodbye is noticed after 10 s, not Faust's default
    # 60 s: its partitions move to the survivors that much sooner.
    broker_session_timeout=10.0,
    broker_heartbeat_interval=2.0,
    autodiscover=[
        "trialwatch.streams.agents",
        "trialwatch.streams.sites",
        "trialwatch.streams.worklist",
        "trialwatch.streams.views",
        "trialwatch.streams.dashboard",
        "trialwatch.streams.commands",
    ],
    Worker="trialwatch.streams.worker:Worker",
    TableManager=TableManager,
    origin="trialwatch.streams",
)
# Before any topic is declared: every producer of this app is idempotent.
app.transport = Transport(app.conf.broker_consumer, app)


def main() -> None:
    """Entry point of the ``trialwatch`` command.

    Before a worker starts: create its topics (the changelog must match the
    input's partition count), check the consumer group's ACL and load the model,
    so a missing model, an unreachable broker or a refused credential is one
    clear line rather than a crashed agent. Configured secrets are masked in
    every log record. Every
    command (its consumers too, e.g. ``alerts``) gets the coordinator-noise filter.
    """
    install_coordinator_noise_filter()
    security.install_log_redaction(settings.secrets)
    args = sys.argv[1:]
    if args[:1] == ["worker"] and not {"--help", "-h"} & set(args):
        from trialwatch.streams.admin import ensure_topics

        asyncio.run(ensure_topics(settings, group=settings.app_id))
        runtime.model.get()
    app.main()
