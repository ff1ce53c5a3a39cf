// Agent output as inert, coloured text. Agents print ANSI escape sequences (colours from
// compilers and test runners, cursor moves from progress bars); the colours (SGR: 16 colours,
// bold/dim/italic/underline, 256 colours, truecolour) become styled spans, every other escape
// and control character is dropped, and nothing the agent prints is ever parsed as HTML: the
// result is built from text nodes and spans whose style comes from numbers only.

// CSI (ESC [ or the one-byte C1 CSI), OSC (ESC ] ... BEL or ST), other two-byte escapes, a lone
// ESC, and the other control characters but tab.
const ESCAPES =
  // eslint-disable-next-line no-control-regex
  /(?:\x1b\[|\x9b)([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]?|[\x00-\x08\x0a-\x1a\x1c-\x1f\x7f-\x9a\x9c-\x9f]/g;

/** The 16 standard colours' class names: 0-7 normal, 8-15 bright. */
const basic = (n) => `ansi-${n}`;

/** A colour of the 256-colour palette beyond the 16 standard ones, as CSS. */
function palette(n) {
  if (n < 232) {
    const i = n - 16;
    const level = (v) => (v === 0 ? 0 : 55 + v * 40);
    return `rgb(${level(Math.floor(i / 36))}, ${level(Math.floor(i / 6) % 6)}, ${level(i % 6)})`;
  }
  const grey = 8 + (n - 232) * 10;
  return `rgb(${grey}, ${grey}, ${grey})`;
}

const byte = (v) => Math.max(0, Math.min(255, Number(v) || 0));

/** A 38/48 extended colour starting at params[i]: [colour, params consumed]. */
function extended(params, i) {
  if (params[i + 1] === 5) {
    const n = byte(params[i + 2]);
    return [n < 16 ? { cls: basic(n) } : { css: palette(n) }, 3];
  }
  if (params[i + 1] === 2) {
    return [{ css: `rgb(${byte(params[i + 2])}, ${byte(params[i + 3])}, ${byte(params[i + 4])})` }, 5];
  }
  return [null, 1];
}

/** Applies one SGR sequence's parameters to the style `s` (mutated). */
function applySgr(s, text) {
  const params = text === '' ? [0] : text.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  for (let i = 0; i < params.length; i += 1) {
    const p = params[i];
    if (p === 0) Object.assign(s, { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false });
    else if (p === 1) s.bold = true;
    else if (p === 2) s.dim = true;
    else if (p === 3) s.italic = true;
    else if (p === 4) s.underline = true;
    else if (p === 22) s.bold = s.dim = false;
    else if (p === 23) s.italic = false;
    else if (p === 24) s.underline = false;
    else if (p >= 30 && p <= 37) s.fg = { cls: basic(p - 30) };
    else if (p >= 90 && p <= 97) s.fg = { cls: basic(p - 90 + 8) };
    else if (p >= 40 && p <= 47) s.bg = { cls: `${basic(p - 40)}-bg` };
    else if (p >= 100 && p <= 107) s.bg = { cls: `${basic(p - 100 + 8)}-bg` };
    else if (p === 39) s.fg = null;
    else if (p === 49) s.bg = null;
    else if (p === 38 || p === 48) {
      const [colour, used] = extended(params, i);
      if (colour && p === 38) s.fg = colour;
      if (colour && p === 48) s.bg = colour.cls ? { cls: `${colour.cls}-bg` } : colour;
      i += used - 1;
    }
  }
}

const plain = (s) => !s.fg && !s.bg && !s.bold && !s.dim && !s.italic && !s.underline;

/**
 * Splits `text` into runs of visible text with their style: `[{text, style}]`, escapes and
 * control characters removed.
 */
export function ansiRuns(text) {
  const runs = [];
  const style = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };
  let last = 0;
  const push = (part) => {
    if (part) runs.push({ text: part, style: plain(style) ? null : { ...style } });
  };
  ESCAPES.lastIndex = 0;
  for (let m = ESCAPES.exec(text); m; m = ESCAPES.exec(text)) {
    push(text.slice(last, m.index));
    last = ESCAPES.lastIndex;
    if (m[2] === 'm') applySgr(style, m[1]);
  }
  push(text.slice(last));
  return runs;
}

/** The text a reader sees: `text` without escapes and control characters. */
export function visibleText(text) {
  return ansiRuns(text)
    .map((r) => r.text)
    .join('');
}

/**
 * Appends `text` to `parent` as coloured text nodes, with every case-insensitive occurrence of
 * `needle` (lower-cased; empty for none) wrapped in <mark>.
 */
export function appendAnsi(parent, text, needle) {
  for (const run of ansiRuns(text)) {
    let target = parent;
    if (run.style) {
      const span = document.createElement('span');
      const s = run.style;
      const classes = [];
      if (s.fg && s.fg.cls) classes.push(s.fg.cls);
      if (s.bg && s.bg.cls) classes.push(s.bg.cls);
      if (s.bold) classes.push('ansi-bold');
      if (s.dim) classes.push('ansi-dim');
      if (s.italic) classes.push('ansi-italic');
      if (s.underline) classes.push('ansi-underline');
      if (classes.length) span.className = classes.join(' ');
      if (s.fg && s.fg.css) span.style.color = s.fg.css;
      if (s.bg && s.bg.css) span.style.backgroundColor = s.bg.css;
      parent.append(span);
      target = span;
    }
    appendMarked(target, run.text, needle);
  }
}

function appendMarked(parent, text, needle) {
  if (!needle) {
    parent.append(text);
    return;
  }
  const lower = text.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(needle); i >= 0 && needle; i = lower.indexOf(needle, at)) {
    if (i > at) parent.append(text.slice(at, i));
    const mark = document.createElement('mark');
    mark.textContent = text.slice(i, i + needle.length);
    parent.append(mark);
    at = i + needle.length;
  }
  if (at < text.length) parent.append(text.slice(at));
}
