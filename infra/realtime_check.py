#!/usr/bin/env python3
"""Human takeover and realtime, end to end over real WebSockets through the dev gateway.

  realtime_check.py e2e     the scenario test run by `make test` (infra/test-suite.sh)
  realtime_check.py bench   `make bench`: human message -> visitor latency p50/p95, and the
                            fan-out time of one event to 1,000 inbox connections of one account

Needs the functions served (infra/with-functions.sh: cargo lambda watch + ws_gateway.py), the
local env (.local/env) and the demo data (.local/demo.env: DEMO_AGENT_ID, DEMO_JWT).
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import statistics
import sys
import time
import uuid

from aiohttp import (ClientSession, ClientTimeout, TCPConnector, WSMsgType,
                     WSServerHandshakeError)

try:  # a faster event loop for the 1,000 sockets of the fan-out bench
    from uvloop import run
except ImportError:  # pragma: no cover - bootstrap installs it
    from asyncio import run

LAMBDA = f"http://localhost:{os.environ.get('CARGO_LAMBDA_PORT', '9000')}/lambda-url"
WS = f"ws://localhost:{os.environ.get('CHATPAD_WS_PORT', '9001')}"


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"realtime_check: {name} is not set (run under with-services/with-functions "
                 f"after the demo seed)")
    return value


def jwt_for(subject: str, email: str) -> str:
    """An HS256 token as the dev identity provider would sign it."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({
        "sub": subject, "email": email, "exp": int(time.time()) + 600,
        "iss": os.environ.get("JWT_ISSUER") or "chatpad-dev",
        "aud": os.environ.get("JWT_AUDIENCE") or "chatpad",
    }).encode())
    signing = f"{header}.{claims}".encode()
    sig = hmac.new(env("JWT_HS256_SECRET").encode(), signing, hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(sig)}"


class Listener:
    """One WebSocket connection collecting the frames it receives."""

    def __init__(self, ws, name: str):
        self.ws = ws
        self.name = name
        self.frames: list[dict] = []
        self.arrived = asyncio.Event()
        self.task = asyncio.create_task(self.read())

    async def read(self) -> None:
        async for msg in self.ws:
            if msg.type == WSMsgType.TEXT:
                self.frames.append(json.loads(msg.data))
                self.arrived.set()
            elif msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR):
                break

    async def send(self, message: dict) -> None:
        await self.ws.send_str(json.dumps(message))

    async def wait_for(self, match, timeout: float = 15.0) -> dict:
        """The first frame (already received or coming) for which `match` is true."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for frame in self.frames[seen:]:
                if match(frame):
                    return frame
            seen = len(self.frames)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no matching frame within {timeout}s; got "
                                     f"{json.dumps(self.frames[-8:])[:1500]}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        await self.ws.close()
        self.task.cancel()


def message_frame(role: str, content: str | None = None):
    def match(frame: dict) -> bool:
        message = frame.get("data", {}).get("message") or {}
        return (frame.get("type") == "message.created" and message.get("role") == role
                and (content is None or message.get("content") == content))
    return match


def of_type(kind: str, **data):
    return lambda f: f.get("type") == kind and all(f.get("data", {}).get(k) == v
                                                   for k, v in data.items())


class Api:
    def __init__(self, http: ClientSession):
        self.http = http

    async def call(self, method: str, url: str, token: str | None = None,
                   body: dict | None = None) -> tuple[int, dict]:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, url, json=body, headers=headers) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text.strip() else {})

    async def activate(self, agent: str, jwt: str) -> None:
        """The demo agent active again (a previous schemathesis run may have disabled it)."""
        status, body = await self.manage("PATCH", f"/v1/agents/{agent}", jwt, {"status": "active"})
        assert status == 200, (status, body)

    async def chat(self, agent: str, visitor: str, message: str, conversation: str | None = None):
        body = {"agentId": agent, "visitorId": visitor, "message": message}
        if conversation:
            body["conversationId"] = conversation
        status, answer = await self.call("POST", f"{LAMBDA}/widget-chat/", body=body)
        assert status == 200, (status, answer)
        return answer

    async def token(self, agent: str, visitor: str, conversation: str) -> dict:
        status, body = await self.call("POST", f"{LAMBDA}/realtime/token", body={
            "agentId": agent, "visitorId": visitor, "conversationId": conversation})
        assert status == 200, (status, body)
        return body

    async def human(self, jwt: str, conversation: str, content: str) -> tuple[int, dict]:
        return await self.call("POST", f"{LAMBDA}/send-human-message/", jwt,
                               {"conversationId": conversation, "content": content})

    async def manage(self, method: str, path: str, jwt: str, body: dict | None = None):
        return await self.call(method, f"{LAMBDA}/management-api{path}", jwt, body)

    async def connect(self, token: str, name: str, account: str | None = None) -> Listener:
        url = f"{WS}/?token={token}" + (f"&accountId={account}" if account else "")
        return Listener(await self.http.ws_connect(url, heartbeat=None), name)


# ----------------------------------------------------------------------------------- e2e
async def e2e() -> None:
    agent, owner_jwt = env("DEMO_AGENT_ID"), env("DEMO_JWT")
    async with ClientSession(timeout=ClientTimeout(total=120)) as http:
        api = Api(http)
        visitor_id = f"e2e-{uuid.uuid4().hex[:12]}"
        await api.activate(agent, owner_jwt)
        first = await api.chat(agent, visitor_id, "Hello! What are your opening hours?")
        conversation = first["conversationId"]
        step = lambda text: print(f"realtime e2e: {text}", flush=True)  # noqa: E731
        step(f"visitor chatting in {conversation}")

        ticket = await api.token(agent, visitor_id, conversation)
        assert ticket["websocketUrl"] == WS and ticket["pollUrl"].endswith("/realtime/events")
        visitor = await api.connect(ticket["token"], "visitor")
        inbox = await api.connect(owner_jwt, "inbox")
        await visitor.send({"action": "ping"})
        await visitor.wait_for(of_type("pong"))

        # The visitor asks for a person: the inbox hears of it.
        status, body = await api.call("POST", f"{LAMBDA}/realtime/request-human", ticket["token"])
        assert (status, body) == (200, {"needsHuman": True}), (status, body)
        await inbox.wait_for(lambda f: f.get("type") == "conversation.updated"
                             and f.get("conversationId") == conversation
                             and f["data"]["needsHuman"] is True)
        status, attention = await api.manage("GET", "/v1/conversations/attention", owner_jwt)
        assert status == 200 and conversation in [c["id"] for c in attention["data"]], attention
        step("request for a person reached the inbox and the attention list")

        # A member of another account can neither take over nor listen.
        tag = uuid.uuid4().hex[:8]
        stranger = jwt_for(f"e2e-stranger-{tag}", f"mallory-{tag}@example.com")
        status, body = await api.manage("POST", f"/v1/conversations/{conversation}/takeover",
                                        stranger)
        assert status == 404, (status, body)
        status, body = await api.human(stranger, conversation, "let me in")
        assert status == 404, (status, body)
        status, me = await api.manage("GET", "/v1/me", owner_jwt)
        account = me["accountId"]
        try:
            await api.connect(stranger, "stranger", account)
            raise AssertionError("a stranger's connection to another account's inbox was accepted")
        except WSServerHandshakeError as e:
            assert e.status == 403, e.status
        status, body = await api.call("GET", f"{LAMBDA}/realtime/events?accountId={account}",
                                      stranger)
        assert status == 403, (status, body)
        step("a member of another account was refused (takeover, message, stream, events)")

        # Takeover: both sides see it live, with the system line.
        status, takeover = await api.manage("POST", f"/v1/conversations/{conversation}/takeover",
                                            owner_jwt)
        assert status == 201, (status, takeover)
        await visitor.wait_for(of_type("takeover.started"))
        joined = await visitor.wait_for(message_frame("system"))
        assert joined["data"]["message"]["content"].endswith("joined the conversation"), joined
        await inbox.wait_for(of_type("takeover.started"))
        step("takeover started; the visitor saw: " + joined["data"]["message"]["content"])

        # Typing both ways.
        await inbox.send({"action": "subscribe", "conversationId": conversation})
        await inbox.wait_for(of_type("subscribed"))
        await visitor.send({"action": "typing", "typing": True})
        await inbox.wait_for(of_type("typing", **{"from": "visitor", "typing": True}))
        await inbox.send({"action": "typing", "typing": True, "conversationId": conversation})
        await visitor.wait_for(of_type("typing", **{"from": "agent", "typing": True}))
        step("typing seen both ways")

        # Messages both ways, live; the model is not called during takeover.
        status, sent = await api.human(owner_jwt, conversation, "Hi, this is a person. How can I help?")
        assert status == 201, (status, sent)
        got = await visitor.wait_for(message_frame("human", sent["content"]))
        assert got["data"]["message"]["id"] == sent["id"]
        answer = await api.chat(agent, visitor_id, "My parcel has not arrived", conversation)
        assert answer.get("status") == "human_takeover", answer
        await inbox.wait_for(message_frame("user", "My parcel has not arrived"))
        step("messages flowed both ways live")

        # A dropped connection resumes without loss or duplicates.
        last_seen = max(int(f["id"]) for f in visitor.frames if f.get("id"))
        await visitor.close()
        status, missed = await api.human(owner_jwt, conversation, "I have found your parcel.")
        assert status == 201
        ticket = await api.token(agent, visitor_id, conversation)
        visitor = await api.connect(ticket["token"], "visitor (reconnected)")
        status, page = await api.call("GET", f"{LAMBDA}/realtime/events?after={last_seen}",
                                      ticket["token"])
        assert status == 200, page
        caught = [e for e in page["events"] if e["type"] == "message.created"]
        assert [e["data"]["message"]["id"] for e in caught] == [missed["id"]], page
        ids = [int(e["id"]) for e in page["events"]]
        assert ids == sorted(set(ids)) and min(ids) > last_seen, ids
        step("dropped connection caught up exactly the missed message")

        # End the takeover: the visitor sees the person leave; the bot answers again.
        status, ended = await api.manage("POST", f"/v1/conversations/{conversation}/takeover/end",
                                         owner_jwt, {"action": "returned_to_bot"})
        assert status == 200, (status, ended)
        await visitor.wait_for(of_type("takeover.ended", action="returned_to_bot"))
        left = await visitor.wait_for(message_frame("system"))
        assert left["data"]["message"]["content"].endswith("left the conversation"), left
        status, body = await api.human(owner_jwt, conversation, "too late")
        assert status == 409 and body["error"]["code"] == "not_in_takeover", (status, body)
        answer = await api.chat(agent, visitor_id, "Thanks! And your opening hours?", conversation)
        assert answer.get("status") == "answered" and answer["text"], answer
        await visitor.wait_for(message_frame("assistant"))
        step("takeover ended; the bot answered again")

        await visitor.close()
        await inbox.close()

        # Visitors who hang up mid-answer do not take widget-chat down (the refused rest of a
        # stream used to end the runtime's loop, and the process with it).
        leaver = f"e2e-leaver-{uuid.uuid4().hex[:8]}"
        for _ in range(2):
            async with http.post(f"{LAMBDA}/widget-chat/", headers={"accept": "text/event-stream"},
                                 json={"agentId": agent, "visitorId": leaver, "stream": True,
                                       "message": "What are your opening hours?"}) as resp:
                assert resp.status == 200, resp.status
                assert (await resp.content.readuntil(b"\n\n")).startswith(b"event: start")
                resp.close()  # hang up after the first event
        answer = await api.chat(agent, leaver, "Still there? When are you open?")
        assert answer.get("status") == "answered" and answer["text"], answer
        step("visitors hanging up mid-answer leave widget-chat serving")
    print("realtime e2e: passed", flush=True)


# ----------------------------------------------------------------------------------- bench
def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def bench(samples: int, fanout: int) -> None:
    agent, owner_jwt = env("DEMO_AGENT_ID"), env("DEMO_JWT")
    # No pool limit: each WebSocket holds a connection (aiohttp's default pool is 100).
    async with ClientSession(timeout=ClientTimeout(total=300),
                             connector=TCPConnector(limit=0)) as http:
        api = Api(http)
        visitor_id = f"bench-{uuid.uuid4().hex[:12]}"
        await api.activate(agent, owner_jwt)
        conversation = (await api.chat(agent, visitor_id, "Hello"))["conversationId"]
        status, body = await api.manage("POST", f"/v1/conversations/{conversation}/takeover",
                                        owner_jwt)
        assert status == 201, (status, body)
        ticket = await api.token(agent, visitor_id, conversation)
        visitor = await api.connect(ticket["token"], "visitor")
        await api.human(owner_jwt, conversation, "warm-up")
        await visitor.wait_for(message_frame("human", "warm-up"))

        latencies = []
        for i in range(samples):
            text = f"bench message {i}"
            start = time.perf_counter()
            status, _ = await api.human(owner_jwt, conversation, text)
            assert status == 201
            await visitor.wait_for(message_frame("human", text))
            latencies.append((time.perf_counter() - start) * 1000)
        print(f"human message -> visitor (send-human-message + fan-out + gateway), {samples} "
              f"messages: p50 {statistics.median(latencies):.0f} ms, "
              f"p95 {percentile(latencies, 95):.0f} ms (target p95 <= 300 ms)", flush=True)

        # Fan-out: `fanout` inbox connections of one account, one event.
        t0 = time.perf_counter()
        inboxes = []
        for i in range(0, fanout, 50):
            inboxes += await asyncio.gather(*(api.connect(owner_jwt, f"inbox {i + j}")
                                              for j in range(min(50, fanout - i))))
        print(f"opened {len(inboxes)} inbox connections in {time.perf_counter() - t0:.1f} s",
              flush=True)
        text = "fan-out probe"
        start = time.perf_counter()
        status, _ = await api.human(owner_jwt, conversation, text)
        assert status == 201
        arrivals = await asyncio.gather(*(inbox.wait_for(message_frame("human", text), 30)
                                          for inbox in inboxes))
        elapsed = (time.perf_counter() - start) * 1000
        assert len(arrivals) == len(inboxes)
        print(f"fan-out of one event to {len(inboxes)} connections of one account: "
              f"{elapsed:.0f} ms from the request to the last delivery (target <= 1000 ms)",
              flush=True)
        # The publisher's own part (listing the connections + every post acknowledged by the
        # gateway), from send-human-message's log line.
        log = os.path.join(os.path.dirname(__file__), "..", ".local", "watch.log")
        try:
            with open(log, errors="replace") as f:
                lines = [json.loads(line) for line in f if '"realtime fan-out"' in line]
            fields = [l["fields"] for l in lines if l["fields"].get("delivered", 0) >= len(inboxes)]
            if fields:
                print(f"  of which the publisher: {fields[-1]['elapsed_ms']} ms (listing the "
                      f"connections {fields[-1].get('listed_ms')} ms, then "
                      f"{fields[-1]['delivered']} posts acknowledged)", flush=True)
        except (OSError, ValueError, KeyError):
            pass
        await asyncio.gather(*(inbox.close() for inbox in inboxes))
        await visitor.close()
        await api.manage("POST", f"/v1/conversations/{conversation}/takeover/end", owner_jwt,
                         {"action": "closed"})


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "e2e"
    if mode == "e2e":
        run(e2e())
    elif mode == "bench":
        samples = int(os.environ.get("BENCH_REALTIME_SAMPLES", "100"))
        fanout = int(os.environ.get("BENCH_REALTIME_FANOUT", "1000"))
        run(bench(samples, fanout))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
