// The script tag's target: renders the launcher at once (Shadow DOM, no iframe), fetches the
// agent's appearance, and loads the panel (app.js) on first open, or earlier on hover/focus.
import type { Config, Ctx, Mount, Saved, Urls } from './types';

// serve-widget replaces this string (quotes included) with the endpoints' URLs.
const URLS = '__CHATPAD_URLS__' as unknown as Urls;
type W = Window & { __chatpadApp?: Promise<Mount>; __chatpadMount?: Mount; ChatPad?: unknown };
const w = window as W;

const script = (document.currentScript ||
  document.querySelector('script[data-agent-id]')) as HTMLScriptElement | null;
const agentId = script?.dataset.agentId || '';
// The function URL without a trailing slash or query: the base of the versioned app bundle.
const base = (script?.src || '').replace(/[?#].*$/, '').replace(/\/+$/, '');

const ICONS: Record<string, string> = {
  chat: 'M4 4h16v12H7l-3 3z',
  message: 'M3 5h18v11H8l-5 4z',
  help: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm1 16h-2v-2h2zm1.1-6.7-.9.9c-.7.7-1.2 1.3-1.2 2.8h-2v-.5c0-1.1.5-2.1 1.2-2.8l1.2-1.3a2 2 0 1 0-3.4-1.4H7a5 5 0 1 1 7.1 4.3z',
  sparkle: 'M12 2l2.4 7.6L22 12l-7.6 2.4L12 22l-2.4-7.6L2 12l7.6-2.4z',
};

/** `url` with `params` in its query. */
export function withQuery(url: string, params: Record<string, string>): string {
  const u = new URL(url);
  for (const k in params) u.searchParams.set(k, params[k]);
  return u.toString();
}

function storageKey() {
  return 'chatpad:' + agentId;
}

function load(): Saved {
  try {
    const saved = JSON.parse(localStorage.getItem(storageKey()) || 'null');
    if (saved && typeof saved.visitorId == 'string') return saved;
  } catch {
    // Storage blocked or corrupt: a fresh visitor.
  }
  const rand = crypto.getRandomValues(new Uint8Array(16));
  return { visitorId: 'v_' + Array.from(rand, (b) => b.toString(16).padStart(2, '0')).join('') };
}

function start() {
  if (!agentId || !document.body) return;
  const page = script?.dataset.mode == 'page';
  const saved = load();
  const save = () => {
    try {
      localStorage.setItem(storageKey(), JSON.stringify(saved));
    } catch {
      // Storage blocked: the conversation lasts as long as the page.
    }
  };
  save();

  // A custom element: host-page rules aimed at div/button do not reach it; inline !important
  // declarations beat the page's own !important ones.
  const host = document.createElement('chatpad-widget');
  const hostStyle: Record<string, string> = {
    all: 'initial',
    position: 'fixed',
    'z-index': '2147483000',
    display: 'block',
    inset: page ? '0' : 'auto',
  };
  for (const k in hostStyle) host.style.setProperty(k, hostStyle[k], 'important');
  const root = host.attachShadow({ mode: 'open' });
  // Constructed style sheets: not inline <style>, so a strict page CSP does not block them.
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(
    `:host{--cp-primary:#2563eb;--cp-on-primary:#fff;--cp-font:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}.l,.p{font:15px/1.45 var(--cp-font)}` +
      `.l{position:fixed;bottom:20px;right:20px;width:56px;height:56px;border-radius:50%;border:0;margin:0;padding:0;cursor:pointer;background:var(--cp-primary);color:var(--cp-on-primary);box-shadow:0 4px 14px rgba(0,0,0,.25);display:grid;place-items:center;transition:transform .15s}` +
      `.l:hover{transform:scale(1.06)}.l:focus-visible{outline:3px solid #111;outline-offset:3px;box-shadow:0 0 0 6px #fff}:host(.left) .l{right:auto;left:20px}.l svg{width:28px;height:28px;fill:currentColor}` +
      `@media (prefers-reduced-motion:reduce){*{transition:none!important;animation:none!important}}`,
  );
  root.adoptedStyleSheets = [sheet];
  const launcher = document.createElement('button');
  launcher.className = 'l';
  launcher.type = 'button';
  launcher.setAttribute('aria-label', 'Open chat');
  launcher.setAttribute('aria-expanded', 'false');
  launcher.setAttribute('aria-haspopup', 'dialog');
  launcher.innerHTML = `<svg viewBox="0 0 24 24" aria-hidden="true"><path d="${ICONS.chat}"/></svg>`;
  if (page) launcher.hidden = true;
  root.append(launcher);
  document.body.append(host);

  const config: Promise<Config | null> = fetch(withQuery(URLS.config, { agentId }))
    .then((r) => (r.ok ? r.json() : Promise.reject()))
    .catch(() => {
      // An unknown or disabled agent, a page outside its allowed domains (refused without
      // CORS headers, so a network error here) or no service: no widget on this page view.
      host.remove();
      return null;
    });
  config.then((c) => {
    if (!c) return;
    const a = c.appearance || {};
    if (a.position == 'bottom-left') root.host.classList.add('left');
    const path = ICONS[a.launcherIcon || 'chat'] || ICONS.chat;
    launcher.querySelector('path')!.setAttribute('d', path);
    if (a.primaryColor) {
      host.style.setProperty('--cp-primary', a.primaryColor);
      host.style.setProperty('--cp-on-primary', onColor(a.primaryColor));
    }
  });

  const ctx: Ctx = { agentId, urls: URLS, lang: language(), page, root, launcher, config, saved, save };
  let api: ReturnType<Mount> | undefined;
  /** Loads app.js (three tries: a dropped connection must not cost the visitor's click). */
  const fetchApp = (tries: number): Promise<Mount> =>
    new Promise<Mount>((resolve, reject) => {
      const s = document.createElement('script');
      s.src = base + '/' + URLS.app;
      s.async = true;
      s.onload = () => (w.__chatpadMount ? resolve(w.__chatpadMount) : reject(new Error('no app in ' + s.src)));
      s.onerror = () => {
        s.remove();
        if (tries > 1) setTimeout(() => fetchApp(tries - 1).then(resolve, reject), 700);
        else reject(new Error('cannot load ' + s.src));
      };
      document.head.append(s);
    });
  const app = (): Promise<ReturnType<Mount>> => {
    w.__chatpadApp ||= fetchApp(3).catch((e) => {
      w.__chatpadApp = undefined; // the next click tries again
      throw e;
    });
    return w.__chatpadApp.then((mount) => (api = api || mount(ctx)));
  };
  const failed = (e: unknown) => console.warn('ChatPad widget:', e);
  const preload = () => void app().catch(failed);
  launcher.addEventListener('pointerenter', preload, { once: true });
  launcher.addEventListener('focus', preload, { once: true });
  launcher.addEventListener('click', () => app().then((a) => a.toggle()).catch(failed));
  w.ChatPad = {
    open: () => app().then((a) => a.open()),
    close: () => api?.close(),
  };
  if (page || script?.dataset.open == 'true') app().then((a) => a.open()).catch(failed);
}

/** The page's language unless the script tag names one. */
function language(): string {
  return (script?.dataset.lang || document.documentElement.lang || navigator.language || 'en').toLowerCase();
}

/** Black or white, whichever contrasts more with `hex` (WCAG relative luminance). */
export function onColor(hex: string): string {
  const n = parseInt(hex.slice(1), 16);
  const lum = [n >> 16, (n >> 8) & 255, n & 255]
    .map((c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4))
    .reduce((s, c, i) => s + c * [0.2126, 0.7152, 0.0722][i], 0);
  // Contrast with white is 1.05/(L+0.05), with black (L+0.05)/0.05.
  return 1.05 / (lum + 0.05) >= (lum + 0.05) / 0.05 ? '#fff' : '#000';
}

if (document.readyState == 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
