#!/usr/bin/env python3
"""Function benchmarks (numbers, not tests): release binary size, cold start and peak memory.

Each release binary is started exactly as Lambda starts it: with AWS_LAMBDA_RUNTIME_API pointing
at a small Lambda Runtime API served here. Cold start is the time from process start to the
binary's first `GET /runtime/invocation/next` (ready for the first invocation; the database pool
connects lazily, so this excludes any connection). Then a short load of invocations is fed one
at a time (as Lambda does) and peak resident memory (VmHWM) is read from /proc.

Run by `make bench` with the local stack's environment exported.
"""

import http.server
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "target" / "release"
HTTP_FUNCTIONS = ["validate-api-key", "management-api", "get-widget-config", "widget-chat", "create-widget-lead",
                  "send-human-message", "serve-widget"]
WORKERS = ["ingest-worker", "webhook-worker"]
LOAD_INVOCATIONS = int(os.environ.get("BENCH_INVOCATIONS", "300"))
COLD_STARTS = int(os.environ.get("BENCH_COLD_STARTS", "5"))


def function_url_event(body: dict, method: str = "POST", path: str = "/", token: str = "") -> dict:
    """A Lambda function URL event (API Gateway v2 payload)."""
    headers = {"content-type": "application/json", "user-agent": "chatpad-bench"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous", "apiId": "bench", "domainName": "bench.lambda-url.local",
            "domainPrefix": "bench", "requestId": str(uuid.uuid4()), "routeKey": "$default",
            "stage": "$default", "time": "25/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "chatpad-bench"},
        },
        "body": json.dumps(body), "isBase64Encoded": False,
    }


def sqs_event() -> dict:
    return {"Records": [{
        "messageId": str(uuid.uuid4()), "receiptHandle": "bench", "body": "{}",
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "bench",
                       "ApproximateFirstReceiveTimestamp": "0"},
        "messageAttributes": {}, "md5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
        "awsRegion": "us-east-1"}]}


class RuntimeApi:
    """The Lambda Runtime API, one invocation at a time."""

    def __init__(self):
        self.events: "queue.Queue[dict]" = queue.Queue()
        self.responses: "queue.Queue[tuple[float, bytes]]" = queue.Queue()
        self.first_next: "queue.Queue[float]" = queue.Queue()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    self.send_error(404)
                    return
                api.first_next.put(time.perf_counter())
                event = api.events.get()
                body = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    # A streamed response (widget-chat): read it to its end.
                    payload = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        payload += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    payload = self.rfile.read(length) if length else b""
                api.responses.put((time.perf_counter(), payload))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"


def start(binary: Path, api: RuntimeApi) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": api.address, "AWS_LAMBDA_FUNCTION_NAME": binary.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "bench", "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "RUST_LOG": "warn",
        # Measure the full path, not the rate limiter's refusals.
        "PUBLIC_RATE_LIMIT_PER_MINUTE": "100000000", "API_RATE_LIMIT_PER_MINUTE": "100000000",
        "CHAT_RATE_LIMIT_PER_IP": "100000000", "CHAT_RATE_LIMIT_PER_VISITOR": "100000000",
        "CHAT_MAX_CONVERSATION_MESSAGES": "100000000",
    })
    return subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def drain_queues() -> None:
    """Empties the local SQS queues (untimed). Nothing consumes them during this benchmark, and
    moto's SendMessage slows down as a queue grows (15 ms per send at 200 queued messages,
    57 ms at 1,200): without this, widget-chat's outbox relay would measure moto."""
    import boto3  # moto's own dependency, in the same virtualenv

    sqs = boto3.client("sqs", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    for var in ("INGEST_QUEUE_URL", "WEBHOOK_QUEUE_URL"):
        url = os.environ.get(var)
        while url:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                break
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


def bench(name: str, event_for) -> dict:
    binary = TARGET / name
    size_mb = binary.stat().st_size / 1e6
    colds = []
    for _ in range(COLD_STARTS):
        api = RuntimeApi()
        began = time.perf_counter()
        proc = start(binary, api)
        ready = api.first_next.get(timeout=30)
        colds.append((ready - began) * 1000)
        proc.kill()
        proc.wait()
        api.server.shutdown()
    api = RuntimeApi()
    proc = start(binary, api)
    api.first_next.get(timeout=30)
    latencies, statuses = [], {}
    for _ in range(LOAD_INVOCATIONS):
        sent = time.perf_counter()
        api.events.put(event_for())
        done, payload = api.responses.get(timeout=30)
        latencies.append((done - sent) * 1000)
        # A streamed response starts with a JSON prelude ended by eight NUL bytes.
        payload = payload.split(b"\0" * 8)[0]
        try:
            status = json.loads(payload).get("statusCode", "sqs")
        except ValueError:
            status = "?"
        statuses[status] = statuses.get(status, 0) + 1
        api.first_next.get(timeout=30)
        drain_queues()
    rss = peak_rss_mb(proc.pid)
    proc.kill()
    proc.wait()
    api.server.shutdown()
    latencies.sort()
    return {
        "function": name, "size_mb": size_mb, "cold_ms": statistics.median(colds),
        "peak_mb": rss, "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1], "statuses": statuses,
    }


def main() -> int:
    demo = {}
    demo_env = ROOT / ".local" / "demo.env"
    if demo_env.exists():
        demo = dict(line.split("=", 1) for line in demo_env.read_text().split() if "=" in line)
    api_key = demo.get("DEMO_API_KEY", "cpk_live_missing")
    rows = []
    for name in HTTP_FUNCTIONS:
        if name == "management-api":
            # An authenticated read: JWT verification, sign-in, RLS transaction, one query.
            event = function_url_event({}, "GET", "/v1/agents", demo.get("DEMO_JWT", ""))
        elif name == "get-widget-config":
            event = function_url_event({"agentId": demo.get("DEMO_AGENT_ID", "")})
        elif name == "widget-chat":
            # The whole path with the extractive responder: limits, conversation, embedding,
            # retrieval, answer stored (the demo agent's knowledge, if any).
            event = function_url_event({"agentId": demo.get("DEMO_AGENT_ID", ""), "visitorId": "bench",
                                        "message": "How do I reset my password?"})
        else:
            event = function_url_event({"apiKey": api_key} if name == "validate-api-key" else {})
        rows.append(bench(name, lambda event=event: event))
    for name in WORKERS:
        rows.append(bench(name, sqs_event))
    # The scheduled chores against an idle database: due syncs, expired uploads, outbox sweep.
    rows.append(bench("scheduler", lambda: {"source": "aws.scheduler", "detail-type": "Scheduled Event"}))
    print(f"\nFunction benchmarks ({LOAD_INVOCATIONS} sequential invocations after {COLD_STARTS} cold starts; "
          "x86_64 release build, stripped)")
    print("| function | binary MB (≤10) | cold start ms (≤40) | peak RSS MB (≤64) | p50 ms | p99 ms | responses |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        statuses = ", ".join(f"{k}×{v}" for k, v in sorted(r["statuses"].items(), key=str))
        print(f"| {r['function']} | {r['size_mb']:.1f} | {r['cold_ms']:.1f} | {r['peak_mb']:.1f} | "
              f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {statuses} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
