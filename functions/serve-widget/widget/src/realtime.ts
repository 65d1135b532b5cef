// Live events of one conversation (functions/realtime/PROTOCOL.md): a visitor token from POST /token,
// a WebSocket with ?token=, catch-up through GET /events?after= after every (re)connect,
// reconnection with backoff, polling when WebSockets fail. Events are de-duplicated by id by
// the caller. Without a realtime function (404, network error) it stays quiet and retries
// later: the chat works without it.

export interface RtEvent {
  id: string | null;
  type: string;
  conversationId: string;
  data: any;
}

interface Token {
  token: string;
  expiresAt: string;
  websocketUrl: string;
  pollUrl: string;
}

const POLL_MS = 3000;

export class Realtime {
  private tok?: Token;
  private ws?: WebSocket;
  private cursor?: string;
  private tries = 0;
  private wsFailures = 0;
  private timer?: number;
  private stopped = false;
  private typingSent = false;
  private seen = new Set<string>();

  constructor(
    private url: string,
    private who: { agentId: string; visitorId: string; conversationId: string },
    private onEvent: (e: RtEvent) => void,
  ) {}

  /** Connects (again); safe to call at any time. */
  start(): void {
    this.stopped = false;
    if (this.url && !this.ws && !this.timer) this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.ws?.close();
    this.ws = undefined;
  }

  /** Tells the other side whether the visitor is typing (WebSocket, else POST /typing). */
  typing(on: boolean): void {
    if (on == this.typingSent || !this.tok) return;
    this.typingSent = on;
    if (this.ws?.readyState == 1) this.ws.send(JSON.stringify({ action: 'typing', typing: on }));
    else this.post('/typing', { typing: on }).catch(() => {});
  }

  /** Asks for a person (POST /request-human). */
  async requestHuman(): Promise<boolean> {
    await this.token().catch(() => {});
    if (!this.tok) return false;
    const r = await this.post('/request-human', {}).catch(() => null);
    return !!r?.ok;
  }

  private post(path: string, body: unknown): Promise<Response> {
    return fetch(this.url.replace(/\/$/, '') + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer ' + this.tok!.token },
      body: JSON.stringify(body),
    });
  }

  private async token(): Promise<Token> {
    if (this.tok && Date.parse(this.tok.expiresAt) - Date.now() > 60_000) return this.tok;
    const r = await fetch(this.url.replace(/\/$/, '') + '/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(this.who),
    });
    if (!r.ok) throw new Error('token ' + r.status);
    return (this.tok = await r.json());
  }

  /** Applies persisted events after the cursor (catch-up, and the polling fallback). */
  private async catchUp(): Promise<void> {
    const t = await this.token();
    const u = new URL(t.pollUrl);
    if (this.cursor) u.searchParams.set('after', this.cursor);
    const r = await fetch(u.toString(), { headers: { authorization: 'Bearer ' + t.token } });
    if (!r.ok) throw new Error('events ' + r.status);
    const page = await r.json();
    for (const e of page.events || []) this.deliver(e);
    if (page.cursor) this.cursor = page.cursor;
  }

  private deliver(e: RtEvent): void {
    if (e.id) {
      // Catch-up and the socket may both carry an event: apply it once.
      if (this.seen.has(e.id)) return;
      this.seen.add(e.id);
      this.cursor = e.id;
    }
    this.onEvent(e);
  }

  private retry(): void {
    if (this.stopped) return;
    // 1 s, 2 s, 4 s … up to 30 s, with jitter so a server restart is not stampeded.
    const delay = Math.min(30_000, 1000 * 2 ** this.tries++) * (0.75 + Math.random() / 2);
    this.timer = window.setTimeout(() => {
      this.timer = undefined;
      this.connect();
    }, delay);
  }

  private async connect(): Promise<void> {
    try {
      await this.catchUp();
    } catch {
      this.tok = undefined;
      return this.retry();
    }
    if (this.stopped) return;
    if (this.wsFailures >= 2 || typeof WebSocket == 'undefined') {
      // Polling fallback.
      this.tries = 0;
      this.timer = window.setTimeout(() => {
        this.timer = undefined;
        this.connect();
      }, POLL_MS);
      return;
    }
    const ws = new WebSocket(this.tok!.websocketUrl + (this.tok!.websocketUrl.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(this.tok!.token));
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.tries = 0;
      this.wsFailures = 0;
      // Events published between the catch-up and the open.
      this.catchUp().catch(() => {});
    };
    ws.onmessage = (m) => {
      try {
        const e = JSON.parse(m.data);
        if (e.type && e.type != 'pong') this.deliver(e);
      } catch {
        // Not an event.
      }
    };
    ws.onclose = () => {
      if (this.ws != ws) return;
      this.ws = undefined;
      if (!opened) this.wsFailures++;
      this.retry();
    };
  }
}
