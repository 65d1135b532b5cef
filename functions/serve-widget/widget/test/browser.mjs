// The widget in a real browser: Debian's Chromium driven by playwright-core, a loopback host
// page embedding the real script tag, the real functions behind it (served by
// `cargo lambda watch`, see infra/with-functions.sh). Run by `make test` through
// `infra/widget.sh test`; screenshots go to .local/artifacts/widget/.
//
// Setup, through the management API as the demo owner (.local/demo.env): an agent "Widget
// browser test" with a contact form, a help center and a knowledge source that is a page of
// this host server (so answers cite a link). The answers are the offline extractive ones.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const ROOT = new URL('../../../../', import.meta.url).pathname;
const ARTIFACTS = join(ROOT, '.local/artifacts/widget');
rmSync(ARTIFACTS, { recursive: true, force: true }); // no screenshots of an earlier run
mkdirSync(ARTIFACTS, { recursive: true });
const env = (file) =>
  Object.fromEntries(
    readFileSync(join(ROOT, file), 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
const demo = env('.local/demo.env');
const local = env('.local/env');
const LAMBDA = `http://localhost:${process.env.CARGO_LAMBDA_PORT || 9000}/lambda-url`;
const SCRIPT = `${LAMBDA}/serve-widget`;
const S3 = local.AWS_ENDPOINT_URL;
const AGENT_NAME = 'Widget browser test';

// ---------------------------------------------------------------- the host server
const SHIPPING = `<!doctype html><html><head><title>Shipping policy</title></head><body><main>
<h1>Shipping policy</h1>
<p>Orders ship from our Lisbon warehouse within two business days.</p>
<p>Express delivery costs nine euros and arrives the next business day.</p>
<p>Standard delivery is free for orders above fifty euros.</p>
</main></body></html>`;
const HOSTILE_CSS = `
* { font-size: 31px !important; color: #f0f !important; background: #ff0 !important; box-sizing: content-box !important;
    line-height: 3 !important; letter-spacing: 4px !important; transition: all 3s !important; }
button, input, textarea, section, div { display: inline !important; position: static !important; width: 10px !important;
    visibility: hidden !important; opacity: .1 !important; }
body * { z-index: -1 !important; transform: rotate(3deg) !important; }
:root { --cp-primary: red; }
chatpad-widget { display: none !important; }`;
const page = (body, { lang = 'en', head = '' } = {}) =>
  `<!doctype html><html lang="${lang}"><head><meta charset="utf-8"><title>Shop</title>${head}</head><body>
<a href="#top" id="first">Skip to shop</a><h1>Demo shop</h1><p>Welcome to the shop.</p>${body}</body></html>`;
let agentId;
const tag = (extra = '') => `<script src="${SCRIPT}" data-agent-id="${agentId}" async ${extra}></script>`;
const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const html = (status, text, headers = {}) => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers });
    res.end(text);
  };
  if (url.pathname == '/docs/shipping') return html(200, SHIPPING);
  if (url.pathname == '/') return html(200, page(tag()));
  if (url.pathname == '/rtl') return html(200, page(tag(), { lang: 'ar' }));
  if (url.pathname == '/hostile.css') {
    res.writeHead(200, { 'content-type': 'text/css' });
    return res.end(HOSTILE_CSS);
  }
  if (url.pathname == '/hostile') {
    // A strict CSP unlike the widget's own page: no inline script or style, scripts and
    // connections only to the functions (and S3), styles from this origin only.
    // A customer's CSP must allow the function URLs, the uploads bucket and the realtime
    // WebSocket (else the widget falls back to polling, with a violation report).
    const ws = `ws://localhost:${process.env.CHATPAD_WS_PORT || 9001}`;
    const csp = `default-src 'none'; script-src 'self' ${new URL(LAMBDA).origin}; connect-src ${new URL(LAMBDA).origin} ${S3} ${ws}; ` +
      `style-src 'self'; img-src 'self'`;
    return html(200, page(tag(), { head: '<link rel="stylesheet" href="/hostile.css">' }), { 'content-security-policy': csp });
  }
  html(404, 'not found');
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const HOST = `http://127.0.0.1:${server.address().port}`;

// ---------------------------------------------------------------- the agent
async function api(method, path, body) {
  const r = await fetch(`${LAMBDA}/management-api${path}`, {
    method,
    headers: { authorization: `Bearer ${demo.DEMO_JWT}`, 'content-type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  const json = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

async function setUp() {
  const agents = await api('GET', '/v1/agents?limit=100');
  const fields = {
    name: AGENT_NAME,
    greeting: 'Hi! Ask me about **shipping**.',
    helpCenterEnabled: true,
    // The host page's own host (any port); the hosted chat page is allowed by its origin.
    allowedDomains: ['127.0.0.1'],
    appearance: { primaryColor: '#0f766e', position: 'bottom-right', launcherIcon: 'chat', darkMode: 'light' },
    leadFormFields: [
      { name: 'name', label: 'Your name', type: 'text', required: true },
      { name: 'email', label: 'E-mail', type: 'email', required: true },
      { name: 'topic', label: 'Topic', type: 'select', options: ['Orders', 'Returns'] },
    ],
  };
  let agent = agents.data.find((a) => a.name == AGENT_NAME);
  agent = agent ? await api('PATCH', `/v1/agents/${agent.id}`, fields) : await api('POST', '/v1/agents', fields);
  agentId = agent.id;
  const docs = `${HOST}/docs/shipping`;
  const sources = await api('GET', `/v1/agents/${agentId}/knowledge?limit=100`);
  // The host's port changes per run: a fresh source for this run's page.
  for (const s of sources.data) await api('DELETE', `/v1/knowledge/${s.id}`);
  const source = await api('POST', `/v1/agents/${agentId}/knowledge`, { type: 'url', url: docs, title: 'Shipping policy' });
  const articles = await api('GET', `/v1/agents/${agentId}/help-articles?limit=100`);
  if (!articles.data.length) {
    await api('POST', `/v1/agents/${agentId}/help-articles`, {
      title: 'Returns policy', published: true, position: 1,
      bodyMarkdown: 'Send items back within **30 days**. See [our terms](https://shop.example/terms).\n\n' +
        '<img src=x onerror="window.__pwned=1"> ![tracker](https://tracker.example/pixel.png) [bad](javascript:window.__pwned=2)',
    });
    await api('POST', `/v1/agents/${agentId}/help-articles`, { title: 'Opening hours', published: true, position: 2, bodyMarkdown: 'We answer from 9 to 17.' });
    await api('POST', `/v1/agents/${agentId}/help-articles`, { title: 'Draft: returns secrets', published: false, bodyMarkdown: 'hidden' });
  }
  for (let i = 0; ; i++) {
    const s = await api('GET', `/v1/knowledge/${source.id}`);
    if (s.status == 'ready') break;
    assert.ok(s.status != 'error' && i < 240, `knowledge source not ready: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** An object of the uploads bucket (moto), read with boto3 from the project's virtualenv. */
function s3Object(key) {
  const py = `import boto3,sys; sys.stdout.buffer.write(boto3.client('s3', endpoint_url='${S3}', region_name='us-east-1',
    aws_access_key_id='test', aws_secret_access_key='test').get_object(Bucket='${local.UPLOADS_BUCKET}', Key=sys.argv[1])['Body'].read())`;
  return execFileSync(join(ROOT, '.venv/bin/python'), ['-c', py, key]);
}

// ---------------------------------------------------------------- the browser
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'],
});
const problems = [];
async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 }, ...options });
  const p = await context.newPage();
  p.on('pageerror', (e) => problems.push(`page error on ${p.url()}: ${e.message}`));
  p.on('console', (m) => {
    if (m.type() == 'error' && /Content Security Policy|Refused/.test(m.text())) problems.push(`CSP on ${p.url()}: ${m.text()}`);
    if (/ChatPad widget:/.test(m.text())) problems.push(`on ${p.url()}: ${m.text()}`);
  });
  return p;
}
const W = 'chatpad-widget';
const shot = (p, name) => p.screenshot({ path: join(ARTIFACTS, `${name}.png`) });

async function ask(p, text) {
  // The configuration (and with it the greeting bubble) first, or it would be taken for the answer.
  await p.locator(`${W} #cp-title`, { hasText: AGENT_NAME }).waitFor();
  const before = await p.locator(`${W} .log .m:not(.u):not(.s)`).count();
  await p.locator(`${W} textarea`).fill(text);
  await p.keyboard.press('Enter');
  const answer = p.locator(`${W} .log .m:not(.u):not(.s)`).nth(before);
  await answer.locator('p').first().waitFor({ timeout: 60_000 });
  await p.waitForFunction(
    (n) => !document.querySelector('chatpad-widget').shadowRoot.querySelectorAll('.log .m:not(.u):not(.s)')[n].classList.contains('dots'),
    before,
  );
  // The whole answer: the text shows from its first piece, its citations come with the last
  // event, which also re-enables the send button.
  await p.waitForFunction(() => !document.querySelector('chatpad-widget').shadowRoot.querySelector('.cmp button[type=submit]').disabled);
  return answer;
}

const tests = {
  async 'open, ask, stream and cite the source as a link'() {
    const p = await newPage();
    const loaded = [];
    p.on('response', (r) => r.url().startsWith(SCRIPT) && loaded.push(r));
    await p.goto(HOST + '/');
    const launcher = p.locator(`${W} button.l`);
    await launcher.waitFor();
    assert.equal(await launcher.getAttribute('aria-expanded'), 'false');
    // The panel's bundle is not fetched until hover or open.
    assert.equal(loaded.length, 1, 'only the loader before the first open');
    assert.equal(loaded[0].headers()['content-encoding'], 'gzip');
    const app = p.waitForResponse((r) => r.url().includes('/app.js'));
    await launcher.hover();
    assert.equal((await app).headers()['cache-control'], 'public, max-age=31536000, immutable');
    await launcher.click();
    const panel = p.locator(`${W} section[role=dialog]`);
    await panel.waitFor();
    await p.locator(`${W} #cp-title`, { hasText: AGENT_NAME }).waitFor();
    assert.equal(await launcher.getAttribute('aria-expanded'), 'true');
    await p.locator(`${W} .log strong`, { hasText: 'shipping' }).waitFor(); // the greeting's Markdown
    const chat = p.waitForResponse((r) => r.url().startsWith(`${LAMBDA}/widget-chat`));
    const answer = await ask(p, 'How long does shipping take from the warehouse?');
    assert.match((await chat).headers()['content-type'], /text\/event-stream/);
    assert.match(await answer.innerText(), /two business days/);
    const cite = answer.locator(`a[href="${HOST}/docs/shipping"]`).first();
    await cite.waitFor();
    assert.equal(await cite.getAttribute('rel'), 'noopener noreferrer');
    assert.equal(await cite.getAttribute('target'), '_blank');
    const saved = await p.evaluate((id) => JSON.parse(localStorage.getItem('chatpad:' + id)), agentId);
    assert.match(saved.conversationId, /^[0-9a-f-]{36}$/);
    assert.match(saved.visitorId, /^v_[0-9a-f]{32}$/);
    await shot(p, '01-answer-with-citation');
    // The next question continues the same conversation (remembered across reloads).
    await p.reload();
    await p.locator(`${W} button.l`).click();
    const next = p.waitForRequest((r) => r.url().startsWith(`${LAMBDA}/widget-chat`));
    await ask(p, 'How much does express delivery cost?');
    assert.equal(JSON.parse((await next).postData()).conversationId, saved.conversationId);
    await p.context().close();
  },

  async 'answers render as the stream arrives'() {
    // The extractive answer comes as one delta; here the page's fetch plays a model streaming
    // slowly (the same wire format as widget-chat), to watch the bubble grow.
    const p = await newPage();
    await p.addInitScript((chatUrl) => {
      const real = window.fetch;
      window.fetch = (url, init) => {
        if (!String(url).startsWith(chatUrl)) return real(url, init);
        const enc = new TextEncoder();
        const events = [
          ['start', { conversationId: '00000000-0000-4000-8000-000000000001', userMessageId: 'u1' }],
          ['delta', { text: 'Orders ship ' }], ['delta', { text: 'within **two** ' }], ['delta', { text: 'days [1].' }],
          ['done', { status: 'answered', messageId: 'm1', text: 'Orders ship within **two** days [1].',
            citations: [{ index: 1, title: 'Shipping policy', url: 'https://shop.example/shipping' }] }],
        ];
        const body = new ReadableStream({
          async pull(c) {
            const e = events.shift();
            if (!e) return c.close();
            await new Promise((r) => setTimeout(r, 400));
            c.enqueue(enc.encode(`event: ${e[0]}\ndata: ${JSON.stringify(e[1])}\n\n`));
          },
        });
        return Promise.resolve(new Response(body, { headers: { 'content-type': 'text/event-stream' } }));
      };
    }, `${LAMBDA}/widget-chat`);
    await p.goto(HOST + '/');
    await p.locator(`${W} button.l`).click();
    await p.locator(`${W} textarea`).fill('Shipping?');
    await p.keyboard.press('Enter');
    const bubble = p.locator(`${W} .log .m:not(.u):not(.s)`).last();
    await bubble.filter({ hasText: 'Orders ship' }).waitFor();
    assert.doesNotMatch(await bubble.innerText(), /days/, 'the first delta shows before the rest arrives');
    await bubble.locator('strong', { hasText: 'two' }).waitFor();
    await bubble.locator('sup a[href="https://shop.example/shipping"]').waitFor();
    await p.context().close();
  },

  async 'the help center searches and opens articles, rendered safely'() {
    const p = await newPage();
    await p.goto(HOST + '/');
    await p.locator(`${W} button.l`).click();
    await p.locator(`${W} [role=tab]`, { hasText: 'Help' }).click();
    const list = p.locator(`${W} ul.ar`);
    await list.locator('button', { hasText: 'Opening hours' }).waitFor();
    assert.equal(await list.locator('button', { hasText: 'Draft' }).count(), 0, 'unpublished articles stay hidden');
    await p.locator(`${W} input[type=search]`).fill('returns');
    await p.waitForFunction(() => {
      const b = [...document.querySelector('chatpad-widget').shadowRoot.querySelectorAll('ul.ar button')];
      return b.length == 1 && b[0].textContent == 'Returns policy';
    });
    await list.locator('button', { hasText: 'Returns policy' }).click();
    const article = p.locator(`${W} article`);
    await article.locator('strong', { hasText: '30 days' }).waitFor();
    // No raw HTML, no remote image, no script URL; links open safely.
    assert.equal(await article.locator('img').count(), 0);
    assert.match(await article.innerText(), /<img src=x/);
    assert.equal(await article.locator('a[href^="javascript:"]').count(), 0);
    assert.equal(await article.locator('a[href="https://shop.example/terms"][rel~=noopener]').count(), 1);
    assert.equal(await p.evaluate(() => window.__pwned), undefined);
    assert.ok(await p.evaluate(() => document.querySelector('chatpad-widget').shadowRoot.activeElement?.tagName == 'H3'), 'focus moves to the article');
    await shot(p, '02-help-center-article');
    await article.locator('button', { hasText: 'Back' }).click();
    await p.locator(`${W} input[type=search]`).waitFor();
    await p.context().close();
  },

  async 'the contact form validates and stores a lead'() {
    const p = await newPage();
    await p.goto(HOST + '/');
    await p.locator(`${W} button.l`).click();
    await p.locator(`${W} [role=tab]`, { hasText: 'Contact' }).click();
    const form = p.locator(`${W} #cp-contact form`);
    await form.locator('button[type=submit]').click();
    assert.equal(await form.locator('#cp-f-name').getAttribute('aria-invalid'), 'true');
    assert.equal(await form.locator('#cp-f-name-e').innerText(), 'This field is required.');
    assert.ok(await p.evaluate(() => document.querySelector('chatpad-widget').shadowRoot.activeElement?.id == 'cp-f-name'), 'focus on the first invalid field');
    const email = `ada+${Date.now()}@example.com`;
    await form.locator('#cp-f-name').fill('Ada Lovelace');
    await form.locator('#cp-f-email').fill('not-an-email');
    await form.locator('button[type=submit]').click();
    assert.equal(await form.locator('#cp-f-email-e').innerText(), 'Enter a valid e-mail address.');
    await form.locator('#cp-f-email').fill(email);
    await form.locator('#cp-f-topic').selectOption('Returns');
    const posted = p.waitForResponse((r) => r.url().startsWith(`${LAMBDA}/create-widget-lead`));
    await form.locator('button[type=submit]').click();
    assert.equal((await posted).status(), 201);
    await p.locator(`${W} [role=status]`, { hasText: 'Thank you' }).waitFor();
    await shot(p, '03-contact-form-sent');
    const leads = await api('GET', `/v1/leads?agentId=${agentId}&limit=100`);
    const lead = leads.data.find((l) => l.email == email);
    assert.ok(lead, 'the lead row exists');
    assert.equal(lead.name, 'Ada Lovelace');
    assert.equal(lead.fields.topic, 'Returns');
    await p.context().close();
  },

  async 'a file and a voice message upload to S3 and go with the message'() {
    const p = await newPage();
    await p.goto(HOST + '/');
    await p.locator(`${W} button.l`).click();
    const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000' + '1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082', 'hex');
    const ticket = p.waitForResponse((r) => r.url().startsWith(`${LAMBDA}/create-widget-upload`));
    await p.locator(`${W} input[type=file]`).setInputFiles({ name: 'screenshot.png', mimeType: 'image/png', buffer: png });
    const { key } = await (await ticket).json();
    await p.locator(`${W} .chip button[aria-label="Remove screenshot.png"]`).waitFor();
    assert.deepEqual(s3Object(key), png, `S3 object ${key}`);
    // A voice message (Chromium's fake microphone).
    const voiceTicket = p.waitForResponse((r) => r.url().startsWith(`${LAMBDA}/create-widget-upload`));
    await p.locator(`${W} button[aria-label="Record a voice message"]`).click();
    await p.locator(`${W} button[aria-pressed=true]`).waitFor();
    await p.waitForTimeout(1200);
    await p.locator(`${W} button[aria-label="Stop recording"]`).click();
    const voice = await (await voiceTicket).json();
    assert.equal(voice.headers['content-type'], 'audio/webm');
    await p.locator(`${W} .chip button[aria-label^="Remove Voice message"]`).waitFor();
    const sent = p.waitForRequest((r) => r.url().startsWith(`${LAMBDA}/widget-chat`));
    await ask(p, 'Here is a screenshot of my order, when will it ship?');
    assert.deepEqual(JSON.parse((await sent).postData()).attachments, [{ key }, { key: voice.key }]);
    await p.locator(`${W} .log .m.u .chip`, { hasText: 'screenshot.png' }).waitFor();
    await shot(p, '04-attachments-sent');
    await p.context().close();
  },

  async 'keyboard only: tab to the launcher, chat, close with Escape'() {
    const p = await newPage();
    await p.goto(HOST + '/');
    await p.locator(`${W} button.l`).waitFor();
    const active = () => p.evaluate(() => {
      const host = document.querySelector('chatpad-widget');
      const a = document.activeElement == host ? host.shadowRoot.activeElement : document.activeElement;
      return a && (a.id || a.getAttribute('aria-label') || a.tagName);
    });
    for (let i = 0; i < 10 && (await active()) != 'Open chat'; i++) await p.keyboard.press('Tab');
    assert.equal(await active(), 'Open chat');
    await p.keyboard.press('Enter');
    await p.locator(`${W} section[role=dialog]`).waitFor();
    await p.waitForFunction(() => document.querySelector('chatpad-widget').shadowRoot.activeElement?.id == 'cp-in');
    await p.keyboard.type('Is standard delivery free?');
    await p.keyboard.press('Enter');
    await p.locator(`${W} .log .m:not(.u):not(.s)`, { hasText: /fifty euros/ }).waitFor({ timeout: 60_000 });
    // Every control has a name; the log is a live region.
    const unnamed = await p.evaluate(() =>
      [...document.querySelector('chatpad-widget').shadowRoot.querySelectorAll('button, input:not([type=file]), textarea, select')]
        .filter((e) => !e.hidden && !e.closest('[hidden]'))
        .filter((e) => !(e.getAttribute('aria-label') || e.textContent.trim() || (e.id && e.getRootNode().querySelector(`label[for="${e.id}"]`))))
        .map((e) => e.outerHTML));
    assert.deepEqual(unnamed, []);
    assert.equal(await p.locator(`${W} [role=log]`).getAttribute('aria-live'), 'polite');
    await p.keyboard.press('Shift+Tab');
    await p.keyboard.press('Escape');
    await p.locator(`${W} section[role=dialog]`).waitFor({ state: 'hidden' });
    assert.equal(await active(), 'Open chat');
    await shot(p, '05-keyboard-closed');
    await p.context().close();
  },

  async 'an answer the realtime channel brings before its own stream ends shows once'() {
    // The second answer's stream held back 1.5 s (the page's fetch reads widget-chat's whole
    // response first), while the realtime channel, live since the first answer, already
    // brings the same assistant message: one bubble per answer, not two.
    const p = await newPage();
    await p.addInitScript((chatUrl) => {
      const real = window.fetch;
      window.fetch = async (url, init) => {
        const res = await real(url, init);
        if (!String(url).startsWith(chatUrl) || !window.holdChatStream) return res;
        const body = await res.text();
        await new Promise((r) => setTimeout(r, 1500));
        return new Response(body, { status: res.status, headers: res.headers });
      };
    }, `${LAMBDA}/widget-chat`);
    await p.goto(HOST + '/');
    await p.locator(`${W} button.l`).click();
    const answers = p.locator(`${W} .log .m:not(.u):not(.s)`, { hasText: /fifty euros/ });
    for (const hold of [false, true]) {
      await p.evaluate((h) => (window.holdChatStream = h), hold);
      // The widget takes the next question once the last answer's stream has closed.
      await p.locator(`${W} button[type=submit]:enabled`).waitFor();
      await p.locator(`${W} textarea`).fill('Is standard delivery free?');
      await p.keyboard.press('Enter');
      await answers.nth(hold ? 1 : 0).waitFor({ timeout: 60_000 });
    }
    await p.waitForTimeout(1000);
    assert.equal(await answers.count(), 2);
    await p.context().close();
  },

  async 'a hostile host page (global !important CSS, strict CSP) does not break it'() {
    const p = await newPage();
    const violations = [];
    await p.exposeFunction('__violation', (v) => violations.push(v));
    await p.addInitScript(() => document.addEventListener('securitypolicyviolation', (e) => window.__violation(`${e.violatedDirective} ${e.blockedURI}`)));
    await p.goto(HOST + '/hostile');
    const launcher = p.locator(`${W} button.l`);
    await launcher.waitFor();
    const box = await launcher.boundingBox();
    assert.ok(box && Math.round(box.width) == 56 && Math.round(box.height) == 56, `launcher box ${JSON.stringify(box)}`);
    await launcher.click();
    const panel = p.locator(`${W} section[role=dialog]`);
    await panel.waitFor();
    const pb = await panel.boundingBox();
    assert.ok(pb.width >= 370 && pb.height > 400 && pb.x + pb.width <= 1100, `panel box ${JSON.stringify(pb)}`);
    const font = await p.locator(`${W} textarea`).evaluate((e) => getComputedStyle(e).fontSize);
    assert.equal(font, '15px', 'host CSS does not reach inside');
    await ask(p, 'How long does shipping take?');
    await shot(p, '06-hostile-page');
    assert.deepEqual(violations, []);
    await p.context().close();
  },

  async 'it reconnects when the server drops the connection'() {
    const p = await newPage();
    await p.goto(HOST + '/');
    await p.locator(`${W} button.l`).click();
    let dropped = 0;
    await p.route(`${LAMBDA}/widget-chat**`, (route) => (dropped++ < 2 ? route.abort('connectionreset') : route.continue()));
    await p.locator(`${W} textarea`).fill('Do you ship express?');
    await p.keyboard.press('Enter');
    await p.locator(`${W} .log .m`, { hasText: 'Reconnecting' }).waitFor();
    await shot(p, '07-reconnecting');
    await p.locator(`${W} .log .m:not(.u):not(.s)`, { hasText: /Express delivery costs/ }).waitFor({ timeout: 60_000 });
    assert.equal(dropped, 3);
    await p.context().close();
  },

  async 'the hosted chat page fills the page, in the agent’s name'() {
    // Reduced motion honoured: no opening animation.
    const p = await newPage({ viewport: { width: 420, height: 780 }, reducedMotion: 'reduce' });
    const res = await p.goto(`${SCRIPT}/chat/${agentId}`);
    assert.equal(res.status(), 200);
    assert.equal(await p.locator('meta[property="og:title"]').getAttribute('content'), `Chat with ${AGENT_NAME}`);
    const panel = p.locator(`${W} section[role=dialog]`);
    await panel.waitFor();
    assert.equal(await panel.evaluate((e) => getComputedStyle(e).animationName), 'none');
    const box = await panel.boundingBox();
    assert.ok(box.width == 420 && box.height == 780, `full page: ${JSON.stringify(box)}`);
    assert.equal(await p.locator(`${W} button.l`).isVisible(), false);
    await ask(p, 'Is there free delivery?');
    assert.equal(await p.title(), `Chat with ${AGENT_NAME}`);
    await shot(p, '08-hosted-page');
    await p.context().close();
  },

  async 'the visitor sees the human’s message appear without reload'() {
    // Needs the realtime function (branch realtime); skipped where it is not in the tree.
    if (!existsSync(join(ROOT, 'functions/realtime'))) return 'skipped: no realtime function';
    const p = await newPage();
    await p.goto(HOST + '/');
    await p.locator(`${W} button.l`).click();
    await ask(p, 'Can I change my delivery address?');
    const saved = await p.evaluate((id) => JSON.parse(localStorage.getItem('chatpad:' + id)), agentId);
    const asked = p.waitForResponse((r) => r.url().startsWith(`${LAMBDA}/realtime/request-human`));
    await p.locator(`${W} button`, { hasText: 'Talk to a human' }).click();
    assert.equal((await asked).status(), 200);
    await p.locator(`${W} .log .m.s`, { hasText: 'A person has been asked to join' }).waitFor();
    await api('POST', `/v1/conversations/${saved.conversationId}/takeover`, {});
    const r = await fetch(`${LAMBDA}/send-human-message`, {
      method: 'POST',
      headers: { authorization: `Bearer ${demo.DEMO_JWT}`, 'content-type': 'application/json' },
      body: JSON.stringify({ conversationId: saved.conversationId, content: 'Hi, this is **Sam** from support: yes, you can.' }),
    });
    assert.ok(r.ok, `send-human-message: ${r.status} ${await r.text()}`);
    const human = p.locator(`${W} .log .m:not(.u):not(.s)`, { hasText: 'from support: yes, you can.' });
    await human.waitFor({ timeout: 30_000 });
    await human.locator('strong', { hasText: 'Sam' }).waitFor();
    await p.locator(`${W} .log .m.s`, { hasText: /joined/ }).waitFor();
    // Shown once, though catch-up and the live channel may both carry it.
    await p.waitForTimeout(4000);
    assert.equal(await human.count(), 1);
    await shot(p, '10-human-reply-live');
    await p.context().close();
  },

  async 'a page outside the agent’s allowed domains shows no widget'() {
    const p = await newPage();
    const config = p.waitForResponse((r) => r.url().startsWith(`${LAMBDA}/get-widget-config`));
    await p.goto(HOST.replace('127.0.0.1', 'localhost') + '/');
    assert.equal((await config).status(), 403);
    await p.locator(W).waitFor({ state: 'detached' });
    await p.context().close();
  },

  async 'dark mode and a light brand colour keep text readable (WCAG AA contrast)'() {
    // Last but one: changes the agent's appearance (setUp restores it on the next run).
    await api('PATCH', `/v1/agents/${agentId}`, { appearance: { primaryColor: '#fde047', darkMode: 'auto' } });
    for (const colorScheme of ['light', 'dark']) {
    const p = await newPage({ colorScheme });
    await p.goto(HOST + '/');
    await p.locator(`${W} button.l`).click();
    await ask(p, 'Where do orders ship from?');
    const ratios = await p.evaluate(() => {
      const root = document.querySelector('chatpad-widget').shadowRoot;
      const rgb = (c) => c.match(/[\d.]+/g).slice(0, 3).map(Number);
      const lum = (c) => rgb(c).map((v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4))
        .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
      const bg = (e) => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; if (!c.endsWith(', 0)') && c != 'transparent') return c; } return 'rgb(255,255,255)'; };
      const ratio = (e) => { const [a, b] = [lum(getComputedStyle(e).color), lum(bg(e))].sort((x, y) => y - x); return (a + 0.05) / (b + 0.05); };
      return Object.fromEntries(['.hd h2', '.l', '.log .m.u', '.log .m:not(.u):not(.s) p', '.log sup a', '.src a', '.ft', 'textarea', '.tb button']
        .map((sel) => [sel, ratio(root.querySelector(sel))]));
    });
    for (const [sel, r] of Object.entries(ratios)) assert.ok(r >= 4.5, `${colorScheme} ${sel}: contrast ${r.toFixed(2)} < 4.5`);
    const background = await p.locator(`${W} section[role=dialog]`).evaluate((e) => getComputedStyle(e).backgroundColor);
    assert.equal(background, colorScheme == 'dark' ? 'rgb(17, 24, 39)' : 'rgb(255, 255, 255)');
    await shot(p, `11-${colorScheme}-mode-light-brand`);
    await p.context().close();
    }
  },

  async 'right-to-left languages from the page'() {
    const p = await newPage();
    await p.goto(HOST + '/rtl');
    await p.locator(`${W} button.l`).click();
    const panel = p.locator(`${W} section[role=dialog]`);
    await panel.waitFor();
    assert.equal(await panel.getAttribute('dir'), 'rtl');
    assert.equal(await p.locator(`${W} textarea`).getAttribute('aria-label'), 'اكتب رسالتك');
    await shot(p, '09-rtl');
    await p.context().close();
  },
};

// ---------------------------------------------------------------- run
let failed = 0;
try {
  await setUp();
  const only = process.env.WIDGET_TESTS;
  for (const [name, test] of Object.entries(tests)) {
    if (only && !name.includes(only)) continue;
    const started = Date.now();
    try {
      const skipped = await test();
      console.log(`${skipped ? 'skip' : 'ok  '} ${name} (${skipped || `${Date.now() - started} ms`})`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${name}\n     ${String(err.stack || err).split('\n').slice(0, 6).join('\n     ')}`);
      for (const c of browser.contexts()) {
        for (const pg of c.pages()) await shot(pg, `FAILED-${name.replace(/\W+/g, '-')}`).catch(() => {});
        await c.close().catch(() => {});
      }
    }
  }
  if (problems.length) {
    failed++;
    console.log(`FAIL no page errors or CSP violations\n     ${problems.join('\n     ')}`);
  }
} finally {
  await browser.close();
  server.close();
}
console.log(failed ? `widget browser tests: ${failed} failed (screenshots in ${ARTIFACTS})` : `widget browser tests: all passed (screenshots in ${ARTIFACTS})`);
process.exit(failed ? 1 : 0);
