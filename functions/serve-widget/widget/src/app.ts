// The panel: chat with streamed answers and citations, help center, contact form, file and
// voice attachments, "talk to a human" and live human replies. Loaded by the loader on first
// open (or hover); everything lives in the loader's shadow root.
import { fill, strings } from './i18n';
import { render } from './markdown';
import { Realtime, type RtEvent } from './realtime';
import type { Config, Ctx, LeadField, Mount } from './types';

/** Upload types the upload function accepts, and the largest file. */
const ACCEPT = 'image/png,image/jpeg,image/gif,image/webp,application/pdf,audio/webm,audio/ogg,audio/mp4';
const MAX_MB = 10;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const PHONE = /^\+?[\d\s().\/-]{5,40}$/;

const CSS =
  `.p{position:fixed;bottom:88px;right:20px;width:380px;max-width:calc(100vw - 24px);height:min(620px,calc(100vh - 110px));display:flex;flex-direction:column;background:var(--bg);color:var(--fg);border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.3);overflow:hidden;animation:in .18s ease-out;--bg:#fff;--fg:#111827;--mut:#4b5563;--bd:#d1d5db;--bub:#f3f4f6}` +
  `:host(.left) .p{right:auto;left:20px}.pg .p,.pg.p{inset:0;width:auto;max-width:none;height:auto;border-radius:0}` +
  `.dk{--bg:#111827;--fg:#f9fafb;--mut:#d1d5db;--bd:#4b5563;--bub:#1f2937}@media (prefers-color-scheme:dark){.au{--bg:#111827;--fg:#f9fafb;--mut:#d1d5db;--bd:#4b5563;--bub:#1f2937}}` +
  `@keyframes in{from{opacity:0;transform:translateY(10px)}}@keyframes bl{50%{opacity:.3}}` +
  `[hidden]{display:none!important}*{box-sizing:border-box;font:inherit;color:inherit}` +
  `.hd{display:flex;align-items:center;gap:10px;padding:12px 14px;background:var(--cp-primary);color:var(--cp-on-primary)}.hd h2{flex:1;margin:0;font-size:16px;font-weight:600}.hd img{width:32px;height:32px;border-radius:50%}` +
  `button{cursor:pointer;border:1px solid var(--bd);background:var(--bg);border-radius:8px;padding:6px 10px}button:disabled{opacity:.6;cursor:default}` +
  `.hd button{background:transparent;border:0;color:inherit;font-size:22px;line-height:1;padding:2px 8px}` +
  `:focus-visible{outline:3px solid var(--fg);outline-offset:2px}.hd :focus-visible{outline-color:currentColor}` +
  `.tb{display:flex;border-bottom:1px solid var(--bd)}.tb button{flex:1;border:0;border-radius:0;padding:9px;background:var(--bg)}.tb [aria-selected=true]{box-shadow:inset 0 -3px var(--cp-primary);font-weight:600}` +
  `.v{flex:1;display:flex;flex-direction:column;min-height:0}.log,.sc{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px}` +
  `.m{max-width:85%;padding:8px 12px;border-radius:12px;background:var(--bub);overflow-wrap:anywhere}.m p,.m ul,.m ol,.m pre{margin:0 0 6px}.m>:last-child{margin-bottom:0}.m pre{white-space:pre-wrap;font-family:monospace}` +
  `.u{align-self:flex-end;background:var(--cp-primary);color:var(--cp-on-primary)}.s{align-self:center;background:none;color:var(--mut);font-size:13px;text-align:center}` +
  `blockquote{margin:0 0 6px;padding-inline-start:10px;border-inline-start:3px solid var(--bd)}svg{width:18px;height:18px;fill:currentColor;vertical-align:middle}a{color:inherit;text-decoration:underline}.who{display:block;font-size:12px;color:var(--mut);margin-bottom:2px}.src{font-size:13px;margin-top:6px;padding-inline-start:18px}sup a{text-decoration:none}` +
  `.dots::after{content:"…";animation:bl 1s infinite}.ty{min-height:18px;padding:0 14px;font-size:13px;color:var(--mut)}` +
  `.cmp{display:flex;gap:6px;padding:10px;border-top:1px solid var(--bd);align-items:flex-end}.cmp textarea{flex:1;resize:none;border:1px solid var(--bd);border-radius:8px;padding:8px;background:var(--bg);max-height:120px}` +
  `.pri{background:var(--cp-primary);color:var(--cp-on-primary);border-color:var(--cp-primary)}.rec{background:#b91c1c;color:#fff}` +
  `.bar{display:flex;flex-wrap:wrap;gap:6px;padding:0 10px}.chip{font-size:13px;border:1px solid var(--bd);border-radius:12px;padding:2px 8px;display:inline-flex;gap:4px;align-items:center}.chip button{border:0;padding:0 4px}` +
  `label{display:block;font-size:14px;margin:8px 0 2px;font-weight:500}input,select,textarea{width:100%;border:1px solid var(--bd);border-radius:8px;padding:8px;background:var(--bg)}[aria-invalid=true]{border-color:#b91c1c}.err{color:#b91c1c;font-size:13px;margin:2px 0 0}.dk .err,.au .err{color:#fca5a5}` +
  `.ft{font-size:12px;text-align:center;padding:4px;color:var(--mut)}.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}` +
  `ul.ar{list-style:none;padding:0;margin:8px 0}.ar button{width:100%;text-align:start;margin-bottom:6px}h3{margin:8px 0}`;

/** Material-style icons (24×24 paths): attach, microphone, send. */
const PATHS = {
  attach: 'M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z',
  mic: 'M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5.3-3a5.3 5.3 0 0 1-10.6 0H5a7 7 0 0 0 6 6.7V21h2v-3.3a7 7 0 0 0 6-6.7z',
  send: 'M2 21l21-9L2 3v7l15 2-15 2z',
};
function icon(name: keyof typeof PATHS): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', PATHS[name]);
  svg.append(path);
  return svg;
}

type Attrs = Record<string, string | boolean | ((e: any) => void)>;
/** A tiny element builder: attributes (on* are listeners, booleans toggle) and children. */
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...kids: (Node | string)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const k in attrs) {
    const v = attrs[k];
    if (typeof v == 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false) el.setAttribute(k, v);
  }
  el.append(...kids);
  return el;
}

const mount: Mount = (ctx) => {
  const { t, rtl } = strings(ctx.lang);
  const { urls, agentId, saved } = ctx;
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(CSS);
  ctx.root.adoptedStyleSheets = [...ctx.root.adoptedStyleSheets, sheet];
  let cfg: Config | null = null;
  let name = '…';
  const seen = new Set<string>();
  // Assistant messages that arrive over realtime while this tab's own question streams: the
  // realtime catch-up can bring the answer before the stream's `done` names it (two bubbles
  // for one answer). Held until the stream ends, then shown unless the stream showed them.
  const held: RtEvent[] = [];
  let rt: Realtime | undefined;
  let files: { key: string; name: string }[] = [];
  let busy = false;

  // ---- structure
  const title = h('h2', { id: 'cp-title' }, name);
  const closeBtn = h('button', { type: 'button', 'aria-label': t.close, onclick: () => close() }, '×');
  const tabs = h('div', { class: 'tb', role: 'tablist' });
  const log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': t.chat, tabindex: '0' });
  const typingEl = h('div', { class: 'ty', 'aria-live': 'polite' });
  const input = h('textarea', { id: 'cp-in', rows: '1', maxlength: '4000', placeholder: t.input, 'aria-label': t.input });
  const fileIn = h('input', { type: 'file', accept: ACCEPT, hidden: true, tabindex: '-1', 'aria-hidden': 'true' });
  const chips = h('div', { class: 'bar', 'aria-live': 'polite' });
  const humanBtn = h('button', { type: 'button', hidden: true, onclick: () => askHuman() }, t.human);
  const attachBtn = h('button', { type: 'button', 'aria-label': t.attach, title: t.attach, onclick: () => fileIn.click() }, icon('attach'));
  const micBtn = h('button', { type: 'button', 'aria-label': t.record, title: t.record, 'aria-pressed': 'false', onclick: () => voice() }, icon('mic'));
  const sendBtn = h('button', { type: 'submit', class: 'pri', 'aria-label': t.send }, icon('send'));
  const composer = h('form', { class: 'cmp', onsubmit: (e: Event) => { e.preventDefault(); submit(); } }, attachBtn, micBtn, input, sendBtn);
  const chatView = h('div', { class: 'v', id: 'cp-chat', role: 'tabpanel' }, log, typingEl, h('div', { class: 'bar' }, humanBtn), chips, composer, fileIn);
  const helpView = h('div', { class: 'v', id: 'cp-help', role: 'tabpanel', hidden: true });
  const contactView = h('div', { class: 'v', id: 'cp-contact', role: 'tabpanel', hidden: true });
  const footer = h('div', { class: 'ft' }, t.powered);
  const panel = h('section', { class: 'p', role: 'dialog', 'aria-labelledby': 'cp-title', dir: rtl ? 'rtl' : 'ltr', lang: ctx.lang, hidden: true },
    h('div', { class: 'hd' }, title, closeBtn), tabs, chatView, helpView, contactView, footer);
  if (ctx.page) panel.classList.add('pg');
  if (!('MediaRecorder' in window) || !navigator.mediaDevices) micBtn.hidden = true;
  ctx.root.append(panel);
  ctx.launcher.setAttribute('aria-controls', 'cp-panel');
  panel.id = 'cp-panel';

  const views: [string, HTMLElement][] = [[t.chat, chatView]];
  function setTabs() {
    tabs.replaceChildren(
      ...views.map(([label, view]) =>
        h('button', { type: 'button', role: 'tab', 'aria-controls': view.id, 'aria-selected': String(!view.hidden), onclick: () => show(view) }, label),
      ),
    );
    tabs.hidden = views.length < 2;
  }
  function show(view: HTMLElement) {
    for (const [, v] of views) v.hidden = v != view;
    setTabs();
    if (view == helpView && !helpView.firstChild) helpCenter();
    if (view == contactView && !contactView.firstChild) contactForm();
    (view.querySelector('input,textarea') as HTMLElement | null)?.focus();
  }
  setTabs();

  // ---- messages
  function note(text: string) {
    log.append(h('div', { class: 'm s' }, text));
    log.scrollTop = log.scrollHeight;
  }
  function bubble(role: string, who?: string): HTMLElement {
    const el = h('div', { class: 'm' + (role == 'user' ? ' u' : role == 'system' ? ' s' : '') });
    log.append(el);
    if (who) el.dataset.who = who;
    return el;
  }
  function fillBubble(el: HTMLElement, text: string, citations: any[] = [], attachments: any[] = []) {
    const cite = (n: number) => {
      const c = citations.find((c) => c.index == n);
      if (!c) return null;
      const a = c.url ? h('a', { href: c.url, target: '_blank', rel: 'noopener noreferrer', title: c.title }, `[${n}]`) : document.createTextNode(`[${n}]`);
      return h('sup', {}, a);
    };
    el.replaceChildren();
    if (el.dataset.who) el.append(h('span', { class: 'who' }, el.dataset.who));
    el.append(render(text, cite));
    for (const f of attachments) el.append(h('div', { class: 'chip' }, icon(String(f.contentType || f.name).match(/audio|voice/i) ? 'mic' : 'attach'), f.name || t.voice));
    const linked = citations.filter((c) => c.url);
    if (linked.length) {
      el.append(h('ol', { class: 'src', 'aria-label': t.sources }, ...linked.map((c) => h('li', {}, h('a', { href: c.url, target: '_blank', rel: 'noopener noreferrer' }, c.title || c.url)))));
    }
    log.scrollTop = log.scrollHeight;
  }

  // ---- chat
  function submit() {
    const text = input.value.trim() || files.map((f) => f.name).join(', ');
    if (!text || busy) return;
    input.value = '';
    rt?.typing(false);
    ask(text);
  }

  async function ask(text: string) {
    busy = true;
    sendBtn.disabled = true;
    const sent = files;
    files = [];
    chips.replaceChildren();
    fillBubble(bubble('user'), text, [], sent);
    const answer = bubble('assistant');
    answer.classList.add('dots');
    let acc = '';
    let started = false;
    let frame = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await fetch(urls.chat, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
          body: JSON.stringify({
            agentId, visitorId: saved.visitorId, conversationId: saved.conversationId, message: text, stream: true,
            attachments: sent.length ? sent.map((f) => ({ key: f.key })) : undefined,
          }),
        });
        if (!res.ok) {
          const body = await res.json().catch(() => ({}));
          if (body.error?.code == 'conversation_not_found' && saved.conversationId && attempt < 1) {
            saved.conversationId = undefined;
            continue;
          }
          throw Object.assign(new Error(body.error?.message || t.error), { final: true });
        }
        await events(res, (event, data) => {
          if (event == 'start') {
            started = true;
            seen.add(data.userMessageId);
            if (saved.conversationId != data.conversationId) {
              saved.conversationId = data.conversationId;
              ctx.save();
              live(true);
            }
          } else if (event == 'delta') {
            acc += data.text;
            answer.classList.remove('dots');
            frame ||= requestAnimationFrame(() => {
              frame = 0;
              fillBubble(answer, acc);
            });
          } else if (event == 'done') {
            cancelAnimationFrame(frame);
            answer.classList.remove('dots');
            if (data.status == 'answered') {
              seen.add(data.messageId);
              fillBubble(answer, data.text, data.citations);
              if (data.offerHuman && cfg?.features.humanHandoff) humanBtn.classList.add('pri');
            } else if (data.status == 'unavailable') fillBubble(answer, data.text);
            else answer.remove();
          } else if (event == 'error') {
            throw Object.assign(new Error(data.message || t.error), { final: true });
          }
        });
        break;
      } catch (err: any) {
        // A network failure before the question was stored: try again with backoff.
        if (!err.final && !started && attempt < 4) {
          answer.classList.add('dots');
          answer.textContent = t.reconnecting;
          await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
          continue;
        }
        answer.classList.remove('dots');
        fillBubble(answer, err.final ? err.message : t.error);
        if (!started) {
          answer.append(' ', h('button', { type: 'button', onclick: () => { answer.previousElementSibling?.remove(); answer.remove(); files = sent; ask(text); } }, t.retry));
        }
        break;
      }
    }
    busy = false;
    sendBtn.disabled = false;
    held.splice(0).forEach(onEvent);
  }

  /** Reads a Server-Sent Events body, calling `on` per event. */
  async function events(res: Response, on: (event: string, data: any) => void) {
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (value) buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = 'message';
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).replace(/^ /, '');
        }
        if (data) on(event, JSON.parse(data));
      }
      if (done) return;
    }
  }

  // ---- realtime: human replies, takeover, typing
  let typingTimer = 0;
  function live(restart = false) {
    if (!urls.realtime || !saved.conversationId) return;
    if (restart) rt?.stop();
    if (restart || !rt) rt = new Realtime(urls.realtime, { agentId, visitorId: saved.visitorId, conversationId: saved.conversationId }, onEvent);
    rt.start();
  }
  function onEvent(e: RtEvent) {
    const d = e.data || {};
    if (e.type == 'message.created') {
      const m = d.message;
      if (!m || seen.has(m.id)) return;
      if (busy && m.role == 'assistant') return void held.push(e);
      seen.add(m.id);
      if (m.role == 'system') return note(m.content);
      typingEl.textContent = '';
      fillBubble(bubble(m.role, m.role == 'human' ? m.sender?.name || t.someone : undefined), m.content, [], m.attachments || []);
    } else if (e.type == 'typing' && d.from == 'agent') {
      typingEl.textContent = d.typing ? fill(t.typing, { name: d.name || t.someone }) : '';
      clearTimeout(typingTimer);
      typingTimer = window.setTimeout(() => (typingEl.textContent = ''), 8000);
    } else if (e.type == 'conversation.updated' && d.needsHuman) {
      humanBtn.disabled = true;
    } else if (e.type == 'takeover.ended') {
      humanBtn.disabled = false;
    }
  }
  let idle = 0;
  input.addEventListener('input', () => {
    rt?.typing(true);
    clearTimeout(idle);
    idle = window.setTimeout(() => rt?.typing(false), 3000);
  });
  input.addEventListener('keydown', (e) => {
    if (e.key == 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });

  async function askHuman() {
    humanBtn.disabled = true;
    if (!saved.conversationId) await ask(t.humanText);
    live();
    const ok = await (rt?.requestHuman() ?? Promise.resolve(false));
    note(ok ? t.humanAsked : t.error);
    humanBtn.disabled = ok;
  }

  // ---- attachments and voice
  fileIn.addEventListener('change', () => {
    const f = fileIn.files?.[0];
    fileIn.value = '';
    if (f) upload(f, f.name);
  });
  async function upload(blob: Blob, fileName: string) {
    const type = blob.type.split(';')[0];
    if (!ACCEPT.split(',').includes(type)) return note(fill(t.badType, { name: fileName }));
    if (blob.size > MAX_MB * 1048576) return note(fill(t.tooBig, { name: fileName, max: MAX_MB }));
    const chip = h('span', { class: 'chip' }, fill(t.uploading, { name: fileName }));
    chips.append(chip);
    try {
      const r = await fetch(urls.upload, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ agentId, visitorId: saved.visitorId, fileName, contentType: type, byteSize: blob.size }),
      });
      const ticket = await r.json();
      if (!r.ok) throw new Error(ticket.error?.message);
      const headers: Record<string, string> = {};
      for (const k in ticket.headers) if (k != 'content-length') headers[k] = ticket.headers[k];
      const put = await fetch(ticket.url, { method: ticket.method, headers, body: blob });
      if (!put.ok) throw new Error();
      const file = { key: ticket.key, name: fileName };
      files.push(file);
      chip.replaceChildren(icon(type.startsWith('audio/') ? 'mic' : 'attach'), fileName,
        h('button', { type: 'button', 'aria-label': fill(t.remove, { name: fileName }), onclick: () => { files = files.filter((x) => x != file); chip.remove(); input.focus(); } }, '×'));
    } catch (err: any) {
      chip.remove();
      note(err.message || t.error);
    }
  }
  let recorder: MediaRecorder | undefined;
  async function voice() {
    if (recorder) return recorder.stop();
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const chunks: Blob[] = [];
      const rec = (recorder = new MediaRecorder(stream));
      const began = Date.now();
      rec.ondataavailable = (e) => chunks.push(e.data);
      rec.onstop = () => {
        stream.getTracks().forEach((tr) => tr.stop());
        recorder = undefined;
        micBtn.classList.remove('rec');
        micBtn.setAttribute('aria-pressed', 'false');
        micBtn.setAttribute('aria-label', t.record);
        const type = (rec.mimeType || 'audio/webm').split(';')[0];
        upload(new Blob(chunks, { type }), `${t.voice} (${Math.round((Date.now() - began) / 1000)} s)`);
      };
      rec.start();
      micBtn.classList.add('rec');
      micBtn.setAttribute('aria-pressed', 'true');
      micBtn.setAttribute('aria-label', t.stop);
    } catch {
      note(t.error);
    }
  }

  // ---- help center
  function helpCenter() {
    const search = h('input', { type: 'search', 'aria-label': t.search, placeholder: t.search });
    const list = h('ul', { class: 'ar', 'aria-live': 'polite' });
    const body = h('div', { class: 'sc' }, search, list);
    helpView.append(body);
    let timer = 0;
    let seq = 0;
    const load = async () => {
      const n = ++seq;
      const u = new URL(urls.config.replace(/\/?$/, '/articles'));
      u.searchParams.set('agentId', agentId);
      if (search.value.trim()) u.searchParams.set('q', search.value.trim());
      const res = await fetch(u.toString()).then((r) => (r.ok ? r.json() : null)).catch(() => null);
      if (n != seq) return;
      const items: any[] = res?.data || [];
      list.replaceChildren(...(items.length ? items.map((a) => h('li', {}, h('button', { type: 'button', onclick: () => open(a) }, a.title))) : [h('li', {}, res ? t.noArticles : t.error)]));
    };
    const open = (a: any) => {
      const heading = h('h3', { tabindex: '-1' }, a.title);
      const back = h('button', { type: 'button', onclick: () => { article.remove(); body.hidden = false; search.focus(); } }, '← ' + t.back);
      const article = h('article', { class: 'sc' }, back, heading, h('div', { class: 'm' }, render(a.bodyMarkdown || '')));
      body.hidden = true;
      helpView.append(article);
      heading.focus();
    };
    search.addEventListener('input', () => {
      clearTimeout(timer);
      timer = window.setTimeout(load, 250);
    });
    load();
  }

  // ---- contact form
  function contactForm() {
    const fields: LeadField[] = cfg?.leadFormFields?.length ? cfg.leadFormFields : [
      { name: 'name', label: 'Name', type: 'text' },
      { name: 'email', label: 'Email', type: 'email', required: true },
    ];
    const controls: Record<string, HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement> = {};
    const errors: Record<string, HTMLElement> = {};
    const status = h('p', { role: 'status' });
    const form = h('form', { class: 'sc', novalidate: true, onsubmit: (e: Event) => { e.preventDefault(); send(); } });
    for (const f of fields) {
      const id = 'cp-f-' + f.name;
      const attrs: Attrs = { id, name: f.name, 'aria-describedby': id + '-e', required: !!f.required, 'aria-required': String(!!f.required) };
      const el =
        f.type == 'textarea' ? h('textarea', { ...attrs, rows: '4', maxlength: '5000' })
        : f.type == 'select' ? h('select', attrs, h('option', { value: '' }, '—'), ...(f.options || []).map((o) => h('option', { value: o }, o)))
        : h('input', { ...attrs, type: f.type == 'phone' ? 'tel' : f.type, maxlength: '500', autocomplete: f.type == 'email' ? 'email' : f.type == 'phone' ? 'tel' : f.name == 'name' ? 'name' : 'on' });
      controls[f.name] = el;
      errors[f.name] = h('p', { class: 'err', id: id + '-e' });
      form.append(h('label', { for: id }, f.label + (f.required ? ' *' : '')), el, errors[f.name]);
    }
    const submitBtn = h('button', { type: 'submit', class: 'pri' }, t.submit);
    form.append(h('p', {}, submitBtn), status);
    contactView.append(form);
    const mark = (bad: Record<string, string>) => {
      for (const f of fields) {
        errors[f.name].textContent = bad[f.name] || '';
        controls[f.name].setAttribute('aria-invalid', String(!!bad[f.name]));
      }
      const first = fields.find((f) => bad[f.name]);
      if (first) controls[first.name].focus();
      return !first;
    };
    const send = async () => {
      const values: Record<string, string> = {};
      const bad: Record<string, string> = {};
      for (const f of fields) {
        const v = (values[f.name] = controls[f.name].value.trim());
        if (!v) { if (f.required) bad[f.name] = t.required; }
        else if (f.type == 'email' && !EMAIL.test(v)) bad[f.name] = t.email;
        else if (f.type == 'phone' && !PHONE.test(v)) bad[f.name] = t.phone;
        if (!v) delete values[f.name];
      }
      if (!mark(bad)) return;
      submitBtn.disabled = true;
      status.textContent = '';
      try {
        const r = await fetch(urls.lead, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ agentId, visitorId: saved.visitorId, conversationId: saved.conversationId, fields: values }),
        });
        const body = await r.json().catch(() => ({}));
        if (r.ok) {
          if (body.conversationId && !saved.conversationId) {
            saved.conversationId = body.conversationId;
            ctx.save();
          }
          form.replaceChildren(h('p', { role: 'status', tabindex: '-1' }, t.thanks));
          (form.firstChild as HTMLElement).focus();
          return;
        }
        const server: Record<string, string> = {};
        for (const [k, v] of Object.entries(body.error?.details?.fields || {})) server[k.replace(/^fields\./, '')] = String(v);
        if (mark(server)) status.textContent = body.error?.message || t.error;
      } catch {
        status.textContent = t.error;
      }
      submitBtn.disabled = false;
    };
  }

  // ---- configuration
  ctx.config.then((c) => {
    cfg = c;
    if (!c) return;
    name = c.name;
    title.textContent = fill(t.title, { name });
    if (ctx.page) document.title = title.textContent;
    const a = c.appearance || {};
    if (a.font) (ctx.root.host as HTMLElement).style.setProperty('--cp-font', `"${a.font.replace(/["\\]/g, '')}",system-ui,sans-serif`);
    panel.classList.add(a.darkMode == 'dark' ? 'dk' : a.darkMode == 'auto' ? 'au' : 'lt');
    if (a.backgroundColor && a.darkMode != 'dark') panel.style.setProperty('--bg', a.backgroundColor);
    if (a.textColor && a.darkMode != 'dark') panel.style.setProperty('--fg', a.textColor);
    if (a.avatarUrl?.startsWith('https://')) title.before(h('img', { src: a.avatarUrl, alt: '' }));
    footer.hidden = !c.features.poweredBy;
    // A person is reached through the realtime function: without one, no button.
    humanBtn.hidden = !c.features.humanHandoff || !urls.realtime;
    if (c.helpCenter) views.push([t.help, helpView]);
    if (c.features.leadForm) views.push([t.contact, contactView]);
    setTabs();
    if (c.greeting && !log.firstChild) fillBubble(bubble('assistant'), c.greeting);
  });

  // ---- open / close
  function open() {
    panel.hidden = false;
    ctx.launcher.setAttribute('aria-expanded', 'true');
    ctx.launcher.setAttribute('aria-label', t.close);
    live();
    input.focus();
  }
  function close() {
    if (ctx.page) return;
    panel.hidden = true;
    ctx.launcher.setAttribute('aria-expanded', 'false');
    ctx.launcher.setAttribute('aria-label', t.open);
    ctx.launcher.focus();
  }
  panel.addEventListener('keydown', (e) => {
    if (e.key == 'Escape') close();
  });
  ctx.launcher.setAttribute('aria-label', t.open);
  closeBtn.hidden = ctx.page;
  return { open, close, toggle: () => (panel.hidden ? open() : close()) };
};

(window as any).__chatpadMount = mount;
