"""The secured dev stack: Kafka over SASL_SSL with ACLs, Redis over TLS with an ACL user.

A sponsor's brokers and caches are never open, so the project's clients must be
proven against ones that are not. Everything here is generated on the spot in a
throwaway directory; nothing of it is a real secret:

- a CA and the servers' certificates from ``trustme``, and a client certificate:
  the broker requires one signed by the CA (mTLS, under SASL), Redis checks
  one when it is presented;
- the same Maven-jar broker as ``devstack.py`` (KRaft, single node), its client
  listener ``SASL_SSL`` with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN; the SCRAM
  users are written into the metadata log by the broker's own
  ``StorageTool format --add-scram``; the controller listener authenticates
  the broker with PLAIN (KRaft cannot check SCRAM before its metadata exists);
- ``StandardAuthorizer``, no ACL means no access, and the broker's own
  ``AclCommand`` granting the worker user only its topics and consumer groups;
  a second user, ``nogroup``, gets the topics but no group, to prove that a
  missing ACL is reported;
- ``redis-server`` (Debian's build has TLS) on a TLS port only, its default
  user disabled, an ACL user limited to the deployment's keys.

This module needs the virtualenv (``trustme``, ``aiokafka``, ``redis``): it is
run by ``make up SECURE=1`` and by the tests' session fixture.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import secrets
import ssl
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

WORKER, NOGROUP, ADMIN = "worker", "nogroup", "admin"


def _base() -> ModuleType:
    """devstack.py (jars, spawning, pid files), loaded once under its own name."""
    if "devstack" in sys.modules:
        return sys.modules["devstack"]
    path = Path(__file__).with_name("devstack.py")
    spec = importlib.util.spec_from_file_location("devstack", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["devstack"] = module
    spec.loader.exec_module(module)
    return module


def _pkcs8(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Grants:
    """What the worker user may touch: topics and groups by prefix (or exact names)."""

    topic_prefixes: tuple[str, ...] = ()
    topic_names: tuple[str, ...] = ()
    group_prefixes: tuple[str, ...] = ()
    redis_key_pattern: str = "*"


@dataclass
class SecureStack:
    """One secured broker and Redis under ``home``, on the given 127.0.0.1 ports."""

    home: Path
    kafka_port: int
    controller_port: int
    redis_port: int
    grants: Grants
    host: str = "127.0.0.1"
    passwords: dict[str, str] = field(
        default_factory=lambda: {u: secrets.token_urlsafe(18) for u in (ADMIN, WORKER, NOGROUP)}
    )

    # ---------------------------------------------------------------- paths
    @property
    def ca_file(self) -> Path:
        return self.home / "tls" / "ca.pem"

    @property
    def client_cert(self) -> Path:
        return self.home / "tls" / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.home / "tls" / "client.key"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    def redis_url(self, user: str = WORKER) -> str:
        return f"rediss://{user}:{self.passwords[user]}@{self.host}:{self.redis_port}/0"

    def client_env(self, user: str = WORKER, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
        """The environment a trialwatch process needs to reach this stack as ``user``."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": self.passwords[user],
            "KAFKA_SSL_CAFILE": str(self.ca_file),
            "KAFKA_SSL_CERTFILE": str(self.client_cert),
            "KAFKA_SSL_KEYFILE": str(self.client_key),
            "REDIS_URL": self.redis_url(WORKER),
            "REDIS_TLS_CAFILE": str(self.ca_file),
        }

    # ---------------------------------------------------------------- certs
    def write_certs(self) -> None:
        import trustme

        tls = self.home / "tls"
        tls.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="trialwatch dev stack")
        server = ca.issue_cert(self.host, "localhost")
        client = ca.issue_cert("localhost")
        ca.cert_pem.write_to_path(str(self.ca_file))
        # Kafka's PEM key store reads PKCS#8 only; trustme writes the traditional form.
        (tls / "server.key").write_bytes(_pkcs8(server.private_key_pem.bytes()))
        (tls / "server.pem").write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
        self.client_key.write_bytes(_pkcs8(client.private_key_pem.bytes()))
        (self.client_cert).write_bytes(b"".join(p.bytes() for p in client.cert_chain_pems))
        for path in tls.iterdir():
            path.chmod(0o600)

    # ---------------------------------------------------------------- Kafka
    def _pem_value(self, path: Path) -> str:
        """A PEM file as one properties value (Java's loader turns ``\\n`` into a newline)."""
        return path.read_text().strip().replace("\n", "\\n")

    def kafka_properties(self) -> str:
        admin = self.passwords[ADMIN]
        plain_users = " ".join(f'user_{u}="{p}"' for u, p in self.passwords.items())
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
        tls = self.home / "tls"
        return f"""# Written by devstack/secure.py: a throwaway SASL_SSL broker. Secrets inside.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{self.host}:{self.controller_port}
listeners=SASL_SSL://{self.host}:{self.kafka_port},CONTROLLER://{self.host}:{self.controller_port}
advertised.listeners=SASL_SSL://{self.host}:{self.kafka_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
sasl.mechanism.controller.protocol=PLAIN
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config={plain} username="admin" password="{admin}" \
user_admin="{admin}";
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram} username="admin" password="{admin}";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram};
listener.name.sasl_ssl.plain.sasl.jaas.config={plain} username="admin" password="{admin}" \
{plain_users};
ssl.keystore.type=PEM
ssl.keystore.certificate.chain={self._pem_value(tls / "server.pem")}
ssl.keystore.key={self._pem_value(tls / "server.key")}
ssl.truststore.type=PEM
ssl.truststore.location={self.ca_file}
# Under SASL_SSL only the listener-prefixed form turns client authentication on.
listener.name.sasl_ssl.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{ADMIN}
log.dirs={self.home / "kafka" / "data"}
{_base().SINGLE_NODE_SETTINGS}auto.create.topics.enable=false
"""

    def admin_client_properties(self) -> str:
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        return f"""security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config={scram} username="{ADMIN}" password="{self.passwords[ADMIN]}";
ssl.truststore.type=PEM
ssl.truststore.location={self.ca_file}
ssl.keystore.type=PEM
ssl.keystore.certificate.chain={self._pem_value(self.client_cert)}
ssl.keystore.key={self._pem_value(self.client_key)}
"""

    def _java(self) -> list[str]:
        base = _base()
        home = self.home / "kafka"
        return [
            base.java_cmd(), f"-Xmx{base.KAFKA_HEAP}", "-Xms128M", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={home / 'logs'}",
            f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
            "-cp", str(base.JARS / "*"),
        ]  # fmt: skip

    def _tool(self, *args: str) -> None:
        res = subprocess.run([*self._java(), *args], capture_output=True, text=True)
        if res.returncode != 0:
            name = args[0].rsplit(".", 1)[-1]
            raise _base().StackError(f"{name} failed:\n{(res.stdout + res.stderr)[-2000:]}")

    def kafka_start(self) -> None:
        base = _base()
        base.fetch_jars()
        home = self.home / "kafka"
        (home / "logs").mkdir(parents=True, exist_ok=True)
        props = home / "server.properties"
        props.write_text(self.kafka_properties())
        props.chmod(0o600)
        (home / "log4j2.properties").write_text(base.LOG4J2)
        # The SCRAM users go into the metadata log before the first start.
        users = [
            f"{mech}=[name={user},password={password}]"
            for user, password in self.passwords.items()
            for mech in ("SCRAM-SHA-512", "SCRAM-SHA-256")
        ]
        scram_args = [arg for u in users for arg in ("--add-scram", u)]
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # "--cluster-id=": an id may start with "-", which the tool would take for a flag.
        fmt = ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props)]
        self._tool(*fmt, *scram_args)
        log = home / "logs" / "stdout.log"
        pid = base.spawn([*self._java(), "kafka.Kafka", str(props)], log, home / "kafka.pid")
        deadline = time.monotonic() + base.START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not base.pid_alive(pid):
                raise base.StackError(
                    "secured kafka exited during start-up:\n" + base.tail(home / "logs/server.log")
                )
            if base.port_open(self.host, self.kafka_port) and asyncio.run(self._kafka_answers()):
                return
            time.sleep(0.5)
        raise base.StackError(f"secured kafka not ready in {base.START_TIMEOUT_S:.0f}s; see {log}")

    async def _kafka_answers(self) -> bool:
        """Metadata over SASL_SSL as the admin: the listener, TLS and SCRAM all work."""
        from aiokafka.admin import AIOKafkaAdminClient

        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, security_protocol="SASL_SSL",
            ssl_context=context, sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=ADMIN, sasl_plain_password=self.passwords[ADMIN],
            request_timeout_ms=3000,
        )  # fmt: skip
        try:
            await asyncio.wait_for(admin.start(), 5)
            return bool((await admin.describe_cluster())["brokers"])
        except Exception:  # not up yet: any failure means "ask again"
            return False
        finally:
            await admin.close()

    def grant_acls(self) -> None:
        """The worker's ACLs, with the broker's own AclCommand (kafka-acls)."""
        config = self.home / "kafka" / "admin.properties"
        config.write_text(self.admin_client_properties())
        config.chmod(0o600)
        common = ["org.apache.kafka.tools.AclCommand", "--bootstrap-server", self.bootstrap,
                  "--command-config", str(config), "--add", "--force"]  # fmt: skip
        topic_ops = ["Read", "Write", "Create", "Describe", "DescribeConfigs"]
        ops = [arg for op in topic_ops for arg in ("--operation", op)]
        principals = ["--allow-principal", f"User:{WORKER}", "--allow-principal", f"User:{NOGROUP}"]
        g = self.grants
        if g.topic_prefixes:
            topics = [a for t in g.topic_prefixes for a in ("--topic", t)]
            self._tool(*common, *principals, *ops, *topics, "--resource-pattern-type", "prefixed")
        if g.topic_names:
            topics = [a for t in g.topic_names for a in ("--topic", t)]
            self._tool(*common, *principals, *ops, *topics, "--resource-pattern-type", "literal")
        if g.group_prefixes:
            groups = [a for t in g.group_prefixes for a in ("--group", t)]
            group_ops = ["--operation", "Read", "--operation", "Describe"]
            worker = ["--allow-principal", f"User:{WORKER}"]
            self._tool(*common, *worker, *group_ops, *groups, "--resource-pattern-type", "prefixed")

    # ---------------------------------------------------------------- Redis
    def redis_conf(self) -> str:
        tls = self.home / "tls"
        return f"""# Written by devstack/secure.py: TLS only, no default user. Secrets inside.
bind {self.host}
port 0
tls-port {self.redis_port}
tls-cert-file {tls / "server.pem"}
tls-key-file {tls / "server.key"}
tls-ca-cert-file {self.ca_file}
tls-auth-clients optional
dir {self.home / "redis"}
save ""
appendonly no
protected-mode yes
user default off
user {WORKER} on >{self.passwords[WORKER]} ~{self.grants.redis_key_pattern} resetchannels \
-@all +@connection +@read +@write +@keyspace +@scripting -@dangerous
user {ADMIN} on >{self.passwords[ADMIN]} ~* &* +@all
"""

    def redis_start(self) -> None:
        base = _base()
        home = self.home / "redis"
        home.mkdir(parents=True, exist_ok=True)
        conf = home / "redis.conf"
        conf.write_text(self.redis_conf().replace(" \\\n", " "))
        conf.chmod(0o600)
        pid = base.spawn([base.redis_binary(), str(conf)], home / "redis.log", home / "redis.pid")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not base.pid_alive(pid):
                raise base.StackError("secured redis exited:\n" + base.tail(home / "redis.log"))
            if self._redis_answers():
                return
            time.sleep(0.2)
        raise base.StackError(f"secured redis not ready in 15s; see {home / 'redis.log'}")

    def _redis_answers(self) -> bool:
        import redis

        client = redis.Redis.from_url(
            self.redis_url(ADMIN), ssl_ca_certs=str(self.ca_file), socket_timeout=1
        )
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    # ---------------------------------------------------------------- verbs
    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)
        self.write_certs()
        self.redis_start()
        try:
            self.kafka_start()
            self.grant_acls()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        base = _base()
        base.stop_pid(self.home / "kafka" / "kafka.pid", "secured kafka")
        base.stop_pid(self.home / "redis" / "redis.pid", "secured redis", timeout=10)


# ------------------------------------------------------------ make up SECURE=1
SECURE_HOME_NAME = "secure"
PORTS = {"kafka": 19092, "controller": 19093, "redis": 16379}  # never the plain 9092/6379


def devstack_up() -> Path:
    """``make up SECURE=1``: a fresh secured stack for the default deployment, its
    client settings in ``.devstack/secure/client.env`` (mode 0600) to source."""
    from trialwatch.streams.admin import topic_names
    from trialwatch.streams.settings import load

    base = _base()
    home = base.HOME / SECURE_HOME_NAME
    devstack_down()
    if home.exists():
        import shutil

        shutil.rmtree(home)
    s = load({})
    grants = Grants(
        topic_names=tuple(topic_names(s)),
        topic_prefixes=(f"{s.app_id}-",),  # the app's changelog and leader topics
        group_prefixes=(s.app_id,),  # the worker's group, `alerts` tails' groups
        redis_key_pattern=f"{s.app_id}:*",
    )
    stack = SecureStack(home, PORTS["kafka"], PORTS["controller"], PORTS["redis"], grants)
    stack.start()
    env_file = home / "client.env"
    lines = [f"{k}={v}" for k, v in stack.client_env().items()]
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o600)
    base.say(f"secured kafka (SASL_SSL, SCRAM-SHA-512) on {stack.bootstrap}")
    base.say(f"secured redis (TLS, ACL user {WORKER}) on {stack.host}:{stack.redis_port}")
    base.say(f"client settings: set -a; . {env_file}; set +a")
    return env_file


def devstack_down() -> None:
    home = _base().HOME / SECURE_HOME_NAME
    if (home / "kafka" / "kafka.pid").exists() or (home / "redis" / "redis.pid").exists():
        SecureStack(home, 0, 0, 0, Grants()).stop()
        _base().say("secured stack stopped")
