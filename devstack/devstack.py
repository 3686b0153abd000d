#!/usr/bin/env python3
"""Local dev stack: a real Apache Kafka broker (KRaft, single node) and Redis.

Stdlib only, so it runs before the virtualenv exists.

    devstack.py up          start Kafka and Redis (no-op for what is already up)
    devstack.py status      what runs, where, with which pid
    devstack.py down        stop both, free the ports
    devstack.py run -- CMD  start what is missing, run CMD, stop what it started
    devstack.py tool promtool  print the path of promtool, installing Debian's prometheus if missing
    devstack.py tool chromium  print the path of chromium, installing Debian's chromium and
                               chromium-driver if missing (the dashboard's browser tests)
    devstack.py up --secure    a secured stack instead (SASL_SSL Kafka on 19092, TLS Redis
                               on 16379; devstack/secure.py, needs the virtualenv's python)
    devstack.py down --secure  stop it

Kafka runs from the Maven Central jars that ``devstack/pom.xml`` resolves, with
``java -cp '.devstack/jars/*' kafka.Kafka``. When ``KAFKA_BOOTSTRAP_SERVERS`` or
``REDIS_URL`` is set, that service is taken as given and nothing is started for it.
Everything (jars, data, logs, pids) lives under the git-ignored ``.devstack/``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "devstack" / "pom.xml"
HOME = ROOT / ".devstack"
JARS = HOME / "jars"
KAFKA_HOME = HOME / "kafka"
REDIS_HOME = HOME / "redis"

KAFKA_HOST, KAFKA_PORT, CONTROLLER_PORT = "127.0.0.1", 9092, 9093
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
KAFKA_HEAP = os.environ.get("TRIALWATCH_KAFKA_HEAP", "512M")
START_TIMEOUT_S = 90.0


class StackError(Exception):
    """A start or stop failed; the message says what to do."""


# --------------------------------------------------------------------- helpers
def say(msg: str) -> None:
    print(f"devstack: {msg}", flush=True)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists": look at its state.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def stop_pid(pid_file: Path, name: str, timeout: float = 30.0) -> bool:
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        say(f"{name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; killing it")
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True


def wait_port_free(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while port_open(host, port) and time.monotonic() < deadline:
        time.sleep(0.2)


def spawn(cmd: list[str], log: Path, pid_file: Path, env: dict | None = None) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives `make up`; Ctrl-C in the shell won't hit it
            env=env,
            cwd=ROOT,
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ----------------------------------------------------------------------- Kafka
def kafka_metadata_brokers(host: str, port: int, timeout: float = 2.0) -> int:
    """Number of brokers in a Metadata (v1) response: > 0 means the broker serves.

    A real protocol request, not a port probe: the socket opens before the
    broker has joined its KRaft quorum, metadata answers only once it has.
    """
    client = b"trialwatch-devstack"
    body = struct.pack(">hhih", 3, 1, 7, len(client)) + client + struct.pack(">i", -1)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv(sock, 4))[0]
        payload = _recv(sock, size)
    correlation, n_brokers = struct.unpack(">ii", payload[:8])
    if correlation != 7:
        raise OSError("unexpected correlation id")
    return n_brokers


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def kafka_ready(host: str = KAFKA_HOST, port: int = KAFKA_PORT) -> bool:
    try:
        return kafka_metadata_brokers(host, port) > 0
    except (OSError, struct.error):
        return False


def fetch_jars() -> None:
    stamp = JARS / ".pom-sha256"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and any(JARS.glob("kafka_2.13-*.jar")):
        return
    if shutil.which("mvn") is None:
        raise StackError(
            "Maven (mvn) is not on PATH: install it (Debian: apt-get install maven) "
            "or point KAFKA_BOOTSTRAP_SERVERS at a running broker, or use docker compose."
        )
    say("fetching the Kafka broker jars with Maven (first run only)...")
    if JARS.exists():
        shutil.rmtree(JARS)
    JARS.mkdir(parents=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        f"-DoutputDirectory={JARS}", "-DincludeScope=runtime",
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        detail = (res.stdout + res.stderr).strip().splitlines()[-5:]
        raise StackError(
            "Maven could not fetch the Kafka jars (offline? proxy?). Check network access "
            "to your Maven repository or ~/.m2/settings.xml, then re-run `make up`.\n  "
            + "\n  ".join(detail)
        )
    stamp.write_text(digest)


# The settings of a one-broker KRaft cluster, shared with devstack/secure.py.
SINGLE_NODE_SETTINGS = """num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=16777216
num.network.threads=2
num.io.threads=4
"""


def kafka_properties() -> str:
    data = KAFKA_HOME / "data"
    return f"""# Written by devstack.py: single-node KRaft broker for development.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{KAFKA_HOST}:{CONTROLLER_PORT}
listeners=PLAINTEXT://{KAFKA_HOST}:{KAFKA_PORT},CONTROLLER://{KAFKA_HOST}:{CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://{KAFKA_HOST}:{KAFKA_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
{SINGLE_NODE_SETTINGS}auto.create.topics.enable=true
log.retention.hours=168
log.segment.bytes=67108864
"""


LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def java_cmd() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "Java 17+ is not on PATH: install it (Debian: apt-get install openjdk-17-jre-headless),"
            " or point KAFKA_BOOTSTRAP_SERVERS at a running broker, or use docker compose."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    try:
        major = int(out.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        major = 17
    if major < 17:
        raise StackError(f"Java {major} found; Kafka 4 needs Java 17+. Install a newer JDK.")
    return java


def kafka_up() -> bool:
    """Start the broker unless it already runs. Returns True if this call started it."""
    pid_file = KAFKA_HOME / "kafka.pid"
    if read_pid(pid_file) and kafka_ready():
        say(f"kafka already up on {KAFKA_HOST}:{KAFKA_PORT}")
        return False
    for port in (KAFKA_PORT, CONTROLLER_PORT):
        if port_open(KAFKA_HOST, port) and not read_pid(pid_file):
            raise StackError(
                f"port {port} is taken by another process: stop it (see `ss -ltnp`), or set "
                f"KAFKA_BOOTSTRAP_SERVERS to use a broker that is already running."
            )
    java = java_cmd()
    fetch_jars()
    (KAFKA_HOME / "logs").mkdir(parents=True, exist_ok=True)
    props = KAFKA_HOME / "server.properties"
    props.write_text(kafka_properties())
    (KAFKA_HOME / "log4j2.properties").write_text(LOG4J2)
    base = [
        java, f"-Xmx{KAFKA_HEAP}", "-Xms128M", "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={KAFKA_HOME / 'logs'}",
        f"-Dlog4j2.configurationFile={KAFKA_HOME / 'log4j2.properties'}",
        "-cp", str(JARS / "*"),
    ]  # fmt: skip
    if not (KAFKA_HOME / "data" / "meta.properties").exists():
        cluster_id = uuid.uuid4().bytes
        import base64

        cid = base64.urlsafe_b64encode(cluster_id).decode().rstrip("=")
        res = subprocess.run(
            # "--cluster-id=": an id may start with "-", which "-t ID" reads as a flag.
            [*base, "kafka.tools.StorageTool", "format", f"--cluster-id={cid}", "-c", str(props),
             "--ignore-formatted"],
            capture_output=True, text=True,
        )  # fmt: skip
        if res.returncode != 0:
            raise StackError("formatting Kafka storage failed:\n" + (res.stdout + res.stderr))
    say(f"starting kafka (KRaft, heap {KAFKA_HEAP}) on {KAFKA_HOST}:{KAFKA_PORT}...")
    log = KAFKA_HOME / "logs" / "stdout.log"
    pid = spawn([*base, "kafka.Kafka", str(props)], log, pid_file)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise StackError(
                "kafka exited during start-up; last log lines:\n"
                + tail(KAFKA_HOME / "logs" / "server.log")
                + "\n"
                + tail(log)
                + f"\nIf the data dir is from another cluster, `make clean-stack` resets "
                f"{KAFKA_HOME / 'data'}."
            )
        if kafka_ready():
            say(f"kafka ready (pid {pid})")
            return True
        time.sleep(0.3)
    stop_pid(pid_file, "kafka")
    raise StackError(f"kafka did not answer metadata within {START_TIMEOUT_S:.0f}s; see {log}")


def kafka_down() -> None:
    if stop_pid(KAFKA_HOME / "kafka.pid", "kafka"):
        wait_port_free(KAFKA_HOST, KAFKA_PORT)
        say("kafka stopped")


# ----------------------------------------------------------------------- Redis
def redis_ready(host: str = REDIS_HOST, port: int = REDIS_PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def debian_binary(binary: str, package: str, service: str | None, otherwise: str) -> str:
    """``binary`` from PATH, else installed from Debian's ``package`` when we are root.

    A package that starts a system service (redis-server, prometheus) has it
    stopped again: the stack runs its own processes on its own ports.
    """
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say(f"{binary} missing: installing the Debian package {package}...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # Another apt run (a second session installing its own tool) holds the dpkg
        # lock for a while: wait for it instead of failing at once.
        lock = ["-o", "DPkg::Lock::Timeout=600"]
        install = ["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", package]
        res = subprocess.run(install, capture_output=True, env=env)
        if res.returncode != 0:
            subprocess.run(["apt-get", *lock, "update", "-q"], capture_output=True, env=env)
            res = subprocess.run(install, capture_output=True, env=env)
        if service:
            subprocess.run(["service", service, "stop"], capture_output=True)
        found = shutil.which(binary)
        if res.returncode == 0 and found:
            return found
    raise StackError(f"{binary} is not installed: {otherwise}")


def redis_binary() -> str:
    return debian_binary(
        "redis-server",
        "redis-server",
        "redis-server",
        "install it (Debian: sudo apt-get install redis-server, macOS: brew install redis) "
        "or set REDIS_URL to a running Redis.",
    )


def promtool_binary() -> str:
    """promtool checks and unit-tests the Prometheus alert rules (``make test``)."""
    return debian_binary(
        "promtool",
        "prometheus",
        "prometheus",
        "install it (Debian: sudo apt-get install prometheus; or a Prometheus release's "
        "promtool on PATH).",
    )


def chromium_binary() -> str:
    """chromium + chromedriver drive the dashboard's browser tests (selenium, headless).

    Debian's packages, never a browser download: ``/usr/bin/chromium`` and
    ``/usr/bin/chromedriver`` (package chromium-driver).
    """
    hint = (
        "install them (Debian: sudo apt-get install chromium chromium-driver); the "
        "dashboard's browser tests need both."
    )
    debian_binary("chromedriver", "chromium-driver", None, hint)
    return debian_binary("chromium", "chromium", None, hint)


def redis_up() -> bool:
    pid_file = REDIS_HOME / "redis.pid"
    if read_pid(pid_file) and redis_ready():
        say(f"redis already up on {REDIS_HOST}:{REDIS_PORT}")
        return False
    binary = redis_binary()
    if port_open(REDIS_HOST, REDIS_PORT):
        if redis_ready() and not read_pid(pid_file):
            raise StackError(
                f"another Redis already listens on {REDIS_PORT} (a system service?): stop it "
                f"(`service redis-server stop`) or set REDIS_URL=redis://{REDIS_HOST}:{REDIS_PORT}/0"
            )
        raise StackError(f"port {REDIS_PORT} is taken by another process: stop it or set REDIS_URL")
    REDIS_HOME.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary, "--bind", REDIS_HOST, "--port", str(REDIS_PORT), "--dir", str(REDIS_HOME),
        "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no",
    ]  # fmt: skip
    log = REDIS_HOME / "redis.log"
    pid = spawn(cmd, log, pid_file)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise StackError("redis-server exited during start-up:\n" + tail(log))
        if redis_ready():
            say(f"redis ready on {REDIS_HOST}:{REDIS_PORT} (pid {pid})")
            return True
        time.sleep(0.1)
    stop_pid(pid_file, "redis")
    raise StackError(f"redis did not answer PING within 15s; see {log}")


def redis_down() -> None:
    if stop_pid(REDIS_HOME / "redis.pid", "redis", timeout=10):
        wait_port_free(REDIS_HOST, REDIS_PORT)
        say("redis stopped")


# ---------------------------------------------------------------------- verbs
@dataclass
class Started:
    kafka: bool = False
    redis: bool = False


def up() -> Started:
    started = Started()
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        say("KAFKA_BOOTSTRAP_SERVERS is set: using that broker, starting none")
    else:
        started.kafka = kafka_up()
    if os.environ.get("REDIS_URL"):
        say("REDIS_URL is set: using that Redis, starting none")
    else:
        try:
            started.redis = redis_up()
        except StackError:
            if started.kafka:
                kafka_down()
            raise
    return started


def down(started: Started | None = None) -> None:
    if started is None or started.kafka:
        kafka_down()
    if started is None or started.redis:
        redis_down()


def status() -> int:
    rows = [
        ("kafka", KAFKA_HOME / "kafka.pid", f"{KAFKA_HOST}:{KAFKA_PORT}", kafka_ready),
        ("redis", REDIS_HOME / "redis.pid", f"{REDIS_HOST}:{REDIS_PORT}", redis_ready),
    ]
    all_up = True
    for name, pid_file, addr, ready in rows:
        pid = read_pid(pid_file)
        state = "up" if ready() else ("starting/unhealthy" if pid else "down")
        all_up &= state == "up"
        print(f"{name:6} {state:18} {addr:16} pid={pid or '-'}")
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"):
        if os.environ.get(var):
            print(f"{var} is set: the app uses {os.environ[var]}")
    return 0 if all_up else 1


def run(cmd: list[str]) -> int:
    """Start what is missing, run ``cmd`` with the stack's addresses, stop what we started."""
    started = up()
    env = dict(os.environ)
    env.setdefault("KAFKA_BOOTSTRAP_SERVERS", f"{KAFKA_HOST}:{KAFKA_PORT}")
    env.setdefault("REDIS_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/0")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()
    finally:
        down(started)


def main(argv: list[str]) -> int:
    verb = argv[1] if len(argv) > 1 else "status"
    try:
        if verb in ("up", "down") and "--secure" in argv[2:]:
            sys.path.insert(0, str(Path(__file__).parent))
            sys.modules.setdefault("devstack", sys.modules[__name__])  # one StackError
            import secure

            secure.devstack_up() if verb == "up" else secure.devstack_down()
            return 0
        if verb == "up":
            up()
            return 0
        if verb == "down":
            down()
            return 0
        if verb == "status":
            return status()
        if verb == "run":
            cmd = argv[3:] if len(argv) > 2 and argv[2] == "--" else argv[2:]
            if not cmd:
                raise StackError("usage: devstack.py run -- COMMAND [ARGS...]")
            return run(cmd)
        if verb == "tool":
            tools = {"promtool": promtool_binary, "chromium": chromium_binary}
            name = argv[2] if len(argv) > 2 else ""
            if name not in tools:
                raise StackError(f"usage: devstack.py tool {{{','.join(tools)}}}")
            print(tools[name]())
            return 0
        if verb == "clean":
            down()
            shutil.rmtree(KAFKA_HOME, ignore_errors=True)
            shutil.rmtree(REDIS_HOME, ignore_errors=True)
            say("removed broker and redis data (jars kept)")
            return 0
    except StackError as exc:
        print(f"devstack: error: {exc}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
