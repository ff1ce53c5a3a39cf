/*
 * A small Markdown renderer for artifact previews that builds DOM nodes, never HTML: the
 * agent wrote the file, so every character of it reaches the page as text. It knows what
 * plans and reports use (headings, paragraphs, lists, block quotes, fenced code, rules, inline
 * code, emphasis, links); links go only to http(s) and mailto, in a new tab without a referrer.
 */
import { el } from './dom.js';

const SAFE_LINK = /^(https?:|mailto:)/i;

/** `text` as a DocumentFragment of safe elements. */
export function renderMarkdown(text) {
  const out = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = /^\s*(```|~~~)\s*([\w+-]*)/.exec(line);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[(i += 1) - 1]);
      i += 1;
      out.append(el('pre', { className: 'md-code' }, el('code', { text: body.join('\n') })));
      continue;
    }
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      // Headings inside a preview sit below the drawer's own: h4 and smaller.
      out.append(inline(el(`h${Math.min(6, heading[1].length + 3)}`), heading[2]));
      i += 1;
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      out.append(el('hr'));
      i += 1;
      continue;
    }
    if (/^\s*>/.test(line)) {
      const quoted = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) quoted.push(lines[(i += 1) - 1].replace(/^\s*>\s?/, ''));
      const quote = el('blockquote');
      quote.append(renderMarkdown(quoted.join('\n')));
      out.append(quote);
      continue;
    }
    const item = /^\s*([-*+]|\d+[.)])\s+/.exec(line);
    if (item) {
      const ordered = /\d/.test(item[1]);
      const list = el(ordered ? 'ol' : 'ul');
      while (i < lines.length) {
        const m = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(lines[i]);
        if (!m || /\d/.test(m[1]) !== ordered) break;
        const task = /^\[([ xX])\]\s+(.*)$/.exec(m[2]);
        const li = el('li');
        if (task) li.append(el('span', { className: 'md-task', text: task[1] === ' ' ? '☐ ' : '☑ ' }));
        list.append(inline(li, task ? task[2] : m[2]));
        i += 1;
      }
      out.append(list);
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !/^(\s*(```|~~~|#{1,6}\s|>|[-*+]\s|\d+[.)]\s))/.test(lines[i])) {
      para.push(lines[(i += 1) - 1].trim());
    }
    if (!para.length) para.push(lines[(i += 1) - 1].trim());
    out.append(inline(el('p'), para.join(' ')));
  }
  return out;
}

const INLINE = /(`+)([^`]+?)\1|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|_([^_\s][^_]*)_|\[([^\]]+)\]\(([^)\s]+)\)/g;

/** Appends `text` to `node` with inline code, strong, emphasis and links. */
function inline(node, text) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) node.append(text.slice(last, m.index));
    if (m[2] !== undefined) node.append(el('code', { text: m[2] }));
    else if (m[3] !== undefined || m[4] !== undefined) node.append(el('strong', { text: m[3] ?? m[4] }));
    else if (m[5] !== undefined || m[6] !== undefined) node.append(el('em', { text: m[5] ?? m[6] }));
    else if (SAFE_LINK.test(m[8])) node.append(el('a', { href: m[8], target: '_blank', rel: 'noopener noreferrer', text: m[7] }));
    else node.append(m[7]);
    last = m.index + m[0].length;
  }
  if (last < text.length) node.append(text.slice(last));
  return node;
}
