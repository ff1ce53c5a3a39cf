/*
 * The evidence a reviewer decides on, in the drawer: each acceptance criterion checked against
 * the latest attempt's report (met or not, with the agent's evidence); the diff of the agent's
 * changes (per file with +/- counts, unified or side by side, each file drawn when opened);
 * and the artifacts, named by file name and grouped by attempt, previewed in place (Markdown
 * rendered safely, text with line numbers, images) without leaving the board.
 */
import { api, describeError } from './api.js';
import { showToast } from './announce.js';
import { $, el, enc, fileName, plural } from './dom.js';
import { renderMarkdown } from './markdown.js';
import { state } from './store.js';

/* ------------------------------------------------------------------ acceptance checks */

export function renderChecks(item) {
  const list = $('drawer-criteria');
  const report = item.report;
  const entries = (report && report.criteria) || [];
  const find = (criterion) => entries.find((e) => String(e.criterion).trim() === String(criterion).trim());
  const rows = (item.acceptanceCriteria || []).map((criterion) => checkRow(criterion, find(criterion), Boolean(report)));
  // What the agent reported on criteria the item does not have (a reworded one, say).
  for (const entry of entries) {
    if (!(item.acceptanceCriteria || []).some((c) => String(c).trim() === String(entry.criterion).trim())) {
      rows.push(checkRow(entry.criterion, entry, true, true));
    }
  }
  list.replaceChildren(...(rows.length ? rows : [el('li', { className: 'muted', text: 'No acceptance criteria.' })]));
  const summary = $('drawer-report-summary');
  const met = entries.filter((e) => e.met).length;
  const head = report
    ? `The latest attempt reports ${met} of ${entries.length} ${entries.length === 1 ? 'criterion' : 'criteria'} met.`
    : item.acceptanceCriteria.length
      ? 'No acceptance report yet: the criteria are checked when an attempt hands in its work.'
      : '';
  summary.textContent = [head, report && report.summary ? `Agent’s summary: ${report.summary}` : ''].filter(Boolean).join(' ');
  summary.hidden = !summary.textContent;
}

function checkRow(criterion, entry, reported, extra = false) {
  const stateName = entry ? (entry.met ? 'met' : 'unmet') : reported ? 'missing' : 'unknown';
  const word = { met: 'Met', unmet: 'Not met', missing: 'Not in the report', unknown: 'Not checked yet' }[stateName];
  return el(
    'li',
    { className: `check check-${stateName}`, 'data-check': stateName },
    el('span', { className: 'check-mark', 'aria-hidden': 'true' }),
    el(
      'div',
      { className: 'check-body' },
      el('span', { className: 'check-criterion', text: criterion }),
      el('span', { className: 'check-state', text: extra ? `${word} (reported, not one of the item’s criteria)` : word }),
      entry && entry.evidence ? el('span', { className: 'check-evidence', text: entry.evidence }) : null,
    ),
  );
}

/* ------------------------------------------------------------------ diff */

const diffView = { itemId: null, gen: 0, files: [], mode: 'unified' };

export async function loadDiff(item) {
  const gen = ++diffView.gen;
  diffView.itemId = item.id;
  const box = $('drawer-diff');
  box.replaceChildren(el('p', { className: 'muted', text: 'Loading the changes…' }));
  let diff;
  try {
    diff = await api('GET', `/api/items/${enc(item.id)}/diff`);
  } catch (err) {
    if (gen === diffView.gen) box.replaceChildren(el('p', { className: 'muted', text: `The changes could not be loaded: ${describeError(err)}` }));
    return;
  }
  if (gen !== diffView.gen) return;
  diffView.files = splitPatch(diff.patch || '');
  renderDiff(diff);
}

function renderDiff(diff) {
  const box = $('drawer-diff');
  if (!diff.files || !diff.files.length) {
    box.replaceChildren(el('p', { className: 'muted', text: diff.head ? 'The agent changed no file.' : 'No changes yet: the diff appears once an attempt has handed in its work.' }));
    return;
  }
  const added = diff.files.reduce((n, f) => n + f.added, 0);
  const removed = diff.files.reduce((n, f) => n + f.removed, 0);
  const modes = el(
    'div',
    { className: 'diff-modes', role: 'group', 'aria-label': 'Diff layout' },
    ...['unified', 'split'].map((mode) =>
      el('button', { type: 'button', className: 'small', 'data-diff-mode': mode, 'aria-pressed': String(diffView.mode === mode), text: mode === 'unified' ? 'Unified' : 'Side by side' }),
    ),
  );
  const files = diff.files.map((file) => {
    const details = el(
      'details',
      { className: 'diff-file', 'data-path': file.path },
      el(
        'summary',
        {},
        el('span', { className: 'diff-path', text: file.path }),
        el('span', { className: 'diff-status', text: file.status.replace('_', ' ') }),
        file.binary ? el('span', { className: 'muted', text: 'binary' }) : el('span', { className: 'diff-counts' }, el('span', { className: 'added', text: `+${file.added}` }), ' ', el('span', { className: 'removed', text: `−${file.removed}` })),
      ),
    );
    return details;
  });
  const cut = diff.truncated ? [el('p', { className: 'muted', text: 'The diff is too large to show whole: it is cut at its limit.' })] : [];
  box.replaceChildren(
    el('div', { className: 'diff-head' }, el('span', { text: `${plural(diff.files.length, 'file')} changed, +${added} −${removed}` }), modes),
    ...cut,
    ...files,
  );
}

function onDiffToggle(event) {
  const details = event.target;
  if (!(details instanceof HTMLDetailsElement) || !details.open || details.dataset.drawn === diffView.mode) return;
  drawFile(details);
}

function drawFile(details) {
  details.querySelector('.diff-body')?.remove();
  const patch = diffView.files.find((f) => f.path === details.dataset.path);
  const body = patch ? (diffView.mode === 'split' ? splitTable(patch.lines) : unifiedTable(patch.lines)) : el('p', { className: 'muted', text: 'No text changes to show for this file.' });
  const wrap = el('div', { className: 'diff-body' }, body);
  details.append(wrap);
  details.dataset.drawn = diffView.mode;
}

function onDiffClick(event) {
  const button = event.target.closest('[data-diff-mode]');
  if (!button) return;
  diffView.mode = button.dataset.diffMode;
  for (const b of document.querySelectorAll('[data-diff-mode]')) b.setAttribute('aria-pressed', String(b === button));
  for (const details of document.querySelectorAll('#drawer-diff details[open]')) drawFile(details);
}

/** The patch cut into files: path (the new one, or the old for a deletion) and lines. */
export function splitPatch(patch) {
  const files = [];
  let current = null;
  for (const line of patch.split('\n')) {
    const header = /^diff --git a\/(.*) b\/(.*)$/.exec(line);
    if (header) {
      current = { path: header[2], lines: [] };
      files.push(current);
    } else if (current && /^\+\+\+ b\//.test(line)) {
      current.path = line.slice(6);
    } else if (current && /^--- a\//.test(line) && !current.lines.length) {
      current.oldPath = line.slice(6);
    } else if (current && (line.startsWith('@@') || current.lines.length)) {
      if (line.startsWith('@@') || /^[ +\-\\]/.test(line)) current.lines.push(line);
    }
  }
  return files;
}

function unifiedTable(lines) {
  let oldNo = 0;
  let newNo = 0;
  const rows = [];
  for (const line of lines) {
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)/.exec(line);
    if (hunk) {
      oldNo = Number(hunk[1]);
      newNo = Number(hunk[2]);
      rows.push(el('tr', { className: 'hunk' }, el('td', { colspan: '3', text: line })));
      continue;
    }
    const kind = line[0] === '+' ? 'add' : line[0] === '-' ? 'del' : line[0] === '\\' ? 'note' : 'ctx';
    const left = kind === 'add' || kind === 'note' ? '' : String(oldNo++);
    const right = kind === 'del' || kind === 'note' ? '' : String(newNo++);
    rows.push(el('tr', { className: kind }, el('td', { className: 'ln', text: left }), el('td', { className: 'ln', text: right }), el('td', { className: 'code', text: line })));
  }
  return el('table', { className: 'diff-table unified' }, el('tbody', {}, ...rows));
}

function splitTable(lines) {
  let oldNo = 0;
  let newNo = 0;
  const rows = [];
  let dels = [];
  let adds = [];
  const flush = () => {
    for (let i = 0; i < Math.max(dels.length, adds.length); i += 1) {
      const d = dels[i];
      const a = adds[i];
      rows.push(
        el(
          'tr',
          {},
          el('td', { className: 'ln', text: d ? String(d[0]) : '' }),
          el('td', { className: d ? 'code del' : 'code empty', text: d ? d[1] : '' }),
          el('td', { className: 'ln', text: a ? String(a[0]) : '' }),
          el('td', { className: a ? 'code add' : 'code empty', text: a ? a[1] : '' }),
        ),
      );
    }
    dels = [];
    adds = [];
  };
  for (const line of lines) {
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)/.exec(line);
    if (hunk) {
      flush();
      oldNo = Number(hunk[1]);
      newNo = Number(hunk[2]);
      rows.push(el('tr', { className: 'hunk' }, el('td', { colspan: '4', text: line })));
    } else if (line[0] === '-') dels.push([oldNo++, line.slice(1)]);
    else if (line[0] === '+') adds.push([newNo++, line.slice(1)]);
    else if (line[0] === ' ') {
      flush();
      rows.push(el('tr', { className: 'ctx' }, el('td', { className: 'ln', text: String(oldNo++) }), el('td', { className: 'code', text: line.slice(1) }), el('td', { className: 'ln', text: String(newNo++) }), el('td', { className: 'code', text: line.slice(1) })));
    }
  }
  flush();
  return el('table', { className: 'diff-table split' }, el('tbody', {}, ...rows));
}

/* ------------------------------------------------------------------ artifacts */

/**
 * Artifacts by attempt: the session folder in a file's path (`agents/<session>/...`) names
 * its attempt; the groups are in the order the attempts handed in. An artifact with no session
 * in its path (the branch or diff link flightdeck hands back, a link someone added) joins the
 * attempt handed in nearest in time to it: the one it came in with.
 */
export function groupArtifacts(artifacts) {
  const time = (a) => {
    const t = Date.parse(a.createdAt);
    return Number.isFinite(t) ? t : 0;
  };
  const sorted = [...(artifacts || [])].sort((a, b) => time(a) - time(b));
  const groups = [];
  const bySession = new Map();
  const loose = [];
  for (const artifact of sorted) {
    const session = /^agents\/([^/]+)\//.exec(artifact.path);
    if (!session) {
      loose.push(artifact);
      continue;
    }
    let group = bySession.get(session[1]);
    if (!group) {
      group = { artifacts: [] };
      groups.push(group);
      bySession.set(session[1], group);
    }
    group.artifacts.push(artifact);
  }
  if (!groups.length) return loose.length ? [{ artifacts: loose }] : [];
  for (const artifact of loose) {
    const distance = (group) => Math.min(...group.artifacts.map((a) => Math.abs(time(a) - time(artifact))));
    const nearest = groups.reduce((best, group) => (distance(group) < distance(best) ? group : best));
    nearest.artifacts.push(artifact);
  }
  for (const group of groups) group.artifacts.sort((a, b) => time(a) - time(b));
  return groups;
}

export function renderArtifacts(item) {
  const box = $('drawer-artifacts');
  const groups = groupArtifacts(item.artifacts);
  if (!groups.length) {
    box.replaceChildren(el('p', { className: 'muted', text: 'No artifacts yet.' }));
    return;
  }
  box.replaceChildren(
    ...groups.map((group, i) =>
      el(
        'section',
        { className: 'attempt' },
        el('h4', { text: groups.length > 1 || item.attempts > 1 ? `Attempt ${i + 1}${i === groups.length - 1 ? ' (latest)' : ''}` : 'Latest attempt' }),
        el('ul', { className: 'plain' }, ...group.artifacts.map((a) => artifactEntry(item, a))),
      ),
    ),
  );
}

function artifactEntry(item, artifact) {
  let target;
  if (artifact.type === 'file') {
    target = el('button', { type: 'button', className: 'link artifact-file', 'data-artifact': artifact.id, title: artifact.path, text: fileName(artifact.path) });
  } else if (/^https?:\/\//i.test(artifact.path)) {
    target = el('a', { href: artifact.path, target: '_blank', rel: 'noopener noreferrer', text: artifact.path });
  } else {
    target = el('span', { className: 'artifact-ref', text: artifact.path });
  }
  return el(
    'li',
    { className: 'artifact' },
    el('span', { className: 'badge kind', text: artifact.type }),
    ' ',
    target,
    artifact.description ? el('span', { className: 'muted', text: ` — ${artifact.description}` }) : null,
  );
}

const IMAGE = /\.(png|jpe?g|gif|webp|svg)$/i;
const MARKDOWN = /\.(md|markdown)$/i;
const PREVIEW_MAX = 2 * 1024 * 1024;
const preview = { gen: 0 };

/** Shows a file artifact inside the drawer: Markdown rendered, images, text numbered. */
export async function previewArtifact(itemId, artifactId) {
  const item = state.items.get(itemId);
  const artifact = item && item.artifacts.find((a) => a.id === artifactId);
  if (!artifact) return;
  const gen = ++preview.gen;
  const box = $('artifact-preview');
  const name = fileName(artifact.path);
  const download = el('button', { type: 'button', className: 'small', 'data-download': artifact.id, text: 'Download' });
  const close = el('button', { type: 'button', className: 'small', 'data-close-preview': true, text: 'Close preview' });
  const body = el('div', { className: 'preview-body' }, el('p', { className: 'muted', text: `Loading ${name}…` }));
  box.replaceChildren(el('div', { className: 'preview-head' }, el('h4', { text: name, title: artifact.path }), download, close), body);
  box.hidden = false;
  box.scrollIntoView({ block: 'nearest' });
  let blob;
  try {
    blob = await api('GET', artifactUrl(itemId, artifactId), undefined, { blob: true });
  } catch (err) {
    if (gen === preview.gen) body.replaceChildren(el('p', { className: 'muted', text: `${name} could not be loaded: ${describeError(err)}` }));
    return;
  }
  if (gen !== preview.gen) return;
  if (IMAGE.test(name)) {
    // A data: URL (the page's CSP allows images from data:, not from blob:); SVG shown as an
    // image runs no script.
    const type = /\.svg$/i.test(name) ? 'image/svg+xml' : blob.type || 'image/png';
    const url = await readAsDataUrl(new Blob([blob], { type }));
    if (gen === preview.gen) body.replaceChildren(el('img', { src: url, alt: `${name}, made by the agent`, className: 'preview-image' }));
    return;
  }
  const bytes = new Uint8Array(await blob.slice(0, PREVIEW_MAX).arrayBuffer());
  if (gen !== preview.gen) return;
  if (bytes.includes(0)) {
    body.replaceChildren(el('p', { className: 'muted', text: `${name} is not text: download it to open it.` }));
    return;
  }
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  const cut = blob.size > PREVIEW_MAX ? [el('p', { className: 'muted', text: `Only the first ${PREVIEW_MAX / 1024 / 1024} MB are shown: download it for the rest.` })] : [];
  if (MARKDOWN.test(name)) {
    body.replaceChildren(el('div', { className: 'markdown' }, renderMarkdown(text)), ...cut);
  } else {
    body.replaceChildren(numberedText(text), ...cut);
  }
}

function numberedText(text) {
  const lines = text.replace(/\n$/, '').split('\n');
  const rows = lines.map((line, i) => el('tr', {}, el('td', { className: 'ln', text: String(i + 1) }), el('td', { className: 'code', text: line })));
  return el('table', { className: 'text-lines' }, el('tbody', {}, ...rows));
}

function readAsDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function artifactUrl(itemId, artifactId) {
  return `/api/items/${enc(itemId)}/artifacts/${enc(artifactId)}`;
}

/** Saves the file with the token in the header (a plain link would get 401). */
async function downloadArtifact(itemId, artifactId) {
  const item = state.items.get(itemId);
  const artifact = item && item.artifacts.find((a) => a.id === artifactId);
  if (!artifact) return;
  try {
    const blob = await api('GET', artifactUrl(itemId, artifactId), undefined, { blob: true });
    const url = URL.createObjectURL(blob);
    const save = el('a', { href: url, download: fileName(artifact.path) || 'artifact' });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    showToast(describeError(err));
  }
}

export function closePreview() {
  preview.gen += 1;
  const box = $('artifact-preview');
  box.hidden = true;
  box.replaceChildren();
}

export function wireReview() {
  $('drawer-diff').addEventListener('toggle', onDiffToggle, true);
  $('drawer-diff').addEventListener('click', onDiffClick);
  $('drawer-artifacts').addEventListener('click', (event) => {
    const file = event.target.closest('[data-artifact]');
    if (file && state.drawerId) previewArtifact(state.drawerId, file.dataset.artifact);
  });
  $('artifact-preview').addEventListener('click', (event) => {
    if (event.target.closest('[data-close-preview]')) closePreview();
    const download = event.target.closest('[data-download]');
    if (download && state.drawerId) downloadArtifact(state.drawerId, download.dataset.download);
  });
}
