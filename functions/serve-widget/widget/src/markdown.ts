// Markdown to DOM nodes, safely: built with createElement/textContent only (raw HTML in the
// text stays text), no images (a remote image would tell a third party who reads the chat:
// `![alt](url)` becomes a link), links only to http(s)/mailto, opened with rel=noopener.

/** A safe link target, or null. */
export function safeUrl(url: string): string | null {
  try {
    const u = new URL(url, 'https://invalid.invalid/');
    if (u.origin == 'https://invalid.invalid') return null;
    return ['http:', 'https:', 'mailto:'].includes(u.protocol) ? u.href : null;
  } catch {
    return null;
  }
}

function link(href: string, text: string): HTMLElement | Text {
  const url = safeUrl(href);
  if (!url) return document.createTextNode(text);
  const a = document.createElement('a');
  a.href = url;
  a.target = '_blank';
  a.rel = 'noopener noreferrer nofollow';
  a.textContent = text;
  return a;
}

const INLINE = /(`[^`]+`)|(!?\[[^\]]*\]\([^)\s]+\))|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*|_[^_\s][^_]*_)|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])|(\[\d+\])/;

/** Appends `text`'s inline Markdown to `parent`; `cite(n)` renders a `[n]` citation marker. */
export function inline(parent: Node, text: string, cite?: (n: number) => Node | null): void {
  while (text) {
    const m = INLINE.exec(text);
    if (!m) {
      parent.appendChild(document.createTextNode(text));
      return;
    }
    if (m.index) parent.appendChild(document.createTextNode(text.slice(0, m.index)));
    const s = m[0];
    let node: Node | null = null;
    if (m[1]) {
      node = document.createElement('code');
      node.textContent = s.slice(1, -1);
    } else if (m[2]) {
      const lm = /^!?\[([^\]]*)\]\(([^)\s]+)\)$/.exec(s)!;
      node = link(lm[2], lm[1] || lm[2]);
    } else if (m[3] || m[4]) {
      node = document.createElement(m[3] ? 'strong' : 'em');
      inline(node, m[3] ? s.slice(2, -2) : s.slice(1, -1), cite);
    } else if (m[5]) {
      node = link(s, s);
    } else if (m[6]) {
      node = cite ? cite(+s.slice(1, -1)) : null;
    }
    parent.appendChild(node || document.createTextNode(s));
    text = text.slice(m.index + s.length);
  }
}

/** `md` rendered as block elements (paragraphs, headings, lists, code blocks, quotes). */
export function render(md: string, cite?: (n: number) => Node | null): DocumentFragment {
  const out = document.createDocumentFragment();
  const lines = md.replace(/\r\n?/g, '\n').split('\n');
  let list: HTMLElement | null = null;
  let para: HTMLElement | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^```/.test(line)) {
      const pre = document.createElement('pre');
      const code: string[] = [];
      while (++i < lines.length && !/^```/.test(lines[i])) code.push(lines[i]);
      pre.textContent = code.join('\n');
      out.appendChild(pre);
      list = para = null;
      continue;
    }
    const item = /^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/.exec(line);
    if (item) {
      const tag = item[1] ? 'UL' : 'OL';
      if (!list || list.tagName != tag) out.appendChild((list = document.createElement(tag)));
      const li = document.createElement('li');
      inline(li, item[3], cite);
      list.appendChild(li);
      para = null;
      continue;
    }
    list = null;
    if (!line.trim()) {
      para = null;
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    const quote = /^>\s?(.*)$/.exec(line);
    if (heading || quote) {
      const el = document.createElement(heading ? 'h' + Math.min(heading[1].length + 2, 6) : 'blockquote');
      inline(el, heading ? heading[2] : quote![1], cite);
      out.appendChild(el);
      para = null;
      continue;
    }
    if (para) para.appendChild(document.createElement('br'));
    else out.appendChild((para = document.createElement('p')));
    inline(para, line, cite);
  }
  return out;
}
