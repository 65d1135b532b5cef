#!/usr/bin/env python3
"""A local stand-in for API Gateway's WebSocket API (dev and tests only; cargo lambda does not
emulate WebSocket APIs).

  ws://localhost:$CHATPAD_WS_PORT/?token=...      browsers and tests connect here
  POST/GET/DELETE /@connections/{id}              the management API our publishers call
                                                  (any path prefix, e.g. a stage, is accepted)

Each connect, message and disconnect becomes the event API Gateway would send
(`requestContext.routeKey` $connect / $disconnect / $default, `eventType`, `connectionId`,
`domainName`, `stage`, `queryStringParameters`, `body`) and is handed to the `realtime`
function through cargo lambda's Invoke API, so the production code paths run unchanged.
A $connect answered with anything but 2xx refuses the connection with that status, as API
Gateway does. Posting to an unknown connection answers 410 Gone (GoneException).

Run:  .venv/bin/python infra/ws_gateway.py [--port 9001] [--lambda-port 9000]
"""

import argparse
import asyncio
import base64
import json
import os
import secrets
import time
import uuid
from datetime import datetime, timezone

from aiohttp import ClientSession, ClientTimeout, WSMsgType, web

try:  # libuv's event loop: about 1.6x the posts per second of asyncio's own (fan-out bench)
    from uvloop import run
except ImportError:  # pragma: no cover - bootstrap installs it
    from asyncio import run

FUNCTION = "realtime"
STAGE = "local"


class Gateway:
    def __init__(self, port: int, lambda_port: int):
        self.port = port
        self.invoke_url = f"http://localhost:{lambda_port}/2015-03-31/functions/{FUNCTION}/invocations"
        self.connections: dict[str, tuple[web.WebSocketResponse, int]] = {}
        self.http: ClientSession | None = None

    def event(self, route: str, event_type: str, connection_id: str, request: web.Request,
              connected_at: int, body: str | None = None, query: dict | None = None) -> dict:
        now = datetime.now(timezone.utc)
        headers = {k: v for k, v in request.headers.items()} if route == "$connect" else {}
        context = {
            "routeKey": route,
            "eventType": event_type,
            "extendedRequestId": secrets.token_hex(8),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "messageDirection": "IN",
            "stage": STAGE,
            "connectedAt": connected_at,
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "identity": {"sourceIp": request.remote or "127.0.0.1",
                         "userAgent": request.headers.get("User-Agent")},
            "requestId": str(uuid.uuid4()),
            "domainName": f"localhost:{self.port}",
            "connectionId": connection_id,
            "apiId": "local",
        }
        if event_type == "MESSAGE":
            context["messageId"] = secrets.token_hex(8)
        event = {
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "requestContext": context,
            "isBase64Encoded": False,
        }
        if query:
            event["queryStringParameters"] = query
            event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
        if body is not None:
            event["body"] = body
        return event

    async def invoke(self, event: dict) -> tuple[int, str]:
        """Runs the realtime function; returns (statusCode, body) of its answer."""
        assert self.http is not None
        try:
            async with self.http.post(self.invoke_url, json=event) as resp:
                text = await resp.text()
                if resp.status != 200 or resp.headers.get("X-Amz-Function-Error"):
                    print(f"ws-gateway: invoke failed: HTTP {resp.status} {text[:300]}", flush=True)
                    return 502, ""
        except Exception as e:  # the function is not up yet, or crashed
            print(f"ws-gateway: invoke failed: {e!r}", flush=True)
            return 502, ""
        try:
            payload = json.loads(text) if text.strip() else {}
        except ValueError:
            return 502, ""
        body = payload.get("body") or ""
        if payload.get("isBase64Encoded"):
            body = base64.b64decode(body).decode(errors="replace")
        return int(payload.get("statusCode", 200)), body

    # ------------------------------------------------------------------ WebSocket side
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        connection_id = base64.urlsafe_b64encode(secrets.token_bytes(12)).decode().rstrip("=")
        connected_at = int(time.time() * 1000)
        query = dict(request.query)
        status, body = await self.invoke(self.event("$connect", "CONNECT", connection_id, request,
                                                    connected_at, query=query or None))
        if not 200 <= status < 300:
            return web.Response(status=status, text=body or "refused",
                                content_type="application/json" if body else "text/plain")
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=128 * 1024)
        await ws.prepare(request)
        self.connections[connection_id] = (ws, connected_at)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    # API Gateway runs the route integration for each message; so do we, but
                    # without blocking the socket's reader.
                    asyncio.create_task(self.invoke(self.event(
                        "$default", "MESSAGE", connection_id, request, connected_at, body=msg.data)))
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.connections.pop(connection_id, None)
            await self.invoke(self.event("$disconnect", "DISCONNECT", connection_id, request,
                                         connected_at))
        return ws

    # ------------------------------------------------------------------ @connections side
    @staticmethod
    def gone(connection_id: str) -> web.Response:
        return web.json_response({"message": f"connection {connection_id} is gone"}, status=410,
                                 headers={"x-amzn-ErrorType": "GoneException"})

    async def post(self, request: web.Request) -> web.Response:
        connection_id = request.match_info["id"]
        entry = self.connections.get(connection_id)
        data = await request.read()
        if len(data) > 128 * 1024:
            return web.json_response({"message": "payload too large"}, status=413,
                                     headers={"x-amzn-ErrorType": "PayloadTooLargeException"})
        if entry is None or entry[0].closed:
            return self.gone(connection_id)
        try:
            await entry[0].send_str(data.decode())
        except (ConnectionError, RuntimeError):
            return self.gone(connection_id)
        return web.Response(status=200)

    async def get(self, request: web.Request) -> web.Response:
        connection_id = request.match_info["id"]
        entry = self.connections.get(connection_id)
        if entry is None:
            return self.gone(connection_id)
        connected = datetime.fromtimestamp(entry[1] / 1000, timezone.utc).isoformat()
        return web.json_response({"connectedAt": connected, "lastActiveAt": connected,
                                  "identity": {"sourceIp": "127.0.0.1"}})

    async def delete(self, request: web.Request) -> web.Response:
        connection_id = request.match_info["id"]
        entry = self.connections.get(connection_id)
        if entry is None:
            return self.gone(connection_id)
        await entry[0].close()
        return web.Response(status=204)

    async def root(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.websocket(request)
        return web.json_response({"gateway": "chatpad dev websocket gateway",
                                  "connections": len(self.connections)})

    async def start(self) -> None:
        self.http = ClientSession(timeout=ClientTimeout(total=900))
        app = web.Application(client_max_size=256 * 1024)
        app.router.add_get("/", self.root)
        for prefix in ("", "/{stage}"):
            app.router.add_post(prefix + "/@connections/{id}", self.post)
            app.router.add_get(prefix + "/@connections/{id}", self.get)
            app.router.add_delete(prefix + "/@connections/{id}", self.delete)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "localhost", self.port, backlog=2048).start()
        print(f"ws-gateway: ws://localhost:{self.port}/ -> function {FUNCTION} "
              f"({self.invoke_url})", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("CHATPAD_WS_PORT", "9001")))
    parser.add_argument("--lambda-port", type=int,
                        default=int(os.environ.get("CARGO_LAMBDA_PORT", "9000")))
    args = parser.parse_args()
    try:
        run(Gateway(args.port, args.lambda_port).start())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
