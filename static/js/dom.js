/*
 * Small helpers for building the page and writing about time and numbers. Item and agent text
 * is attacker-controlled: it only ever reaches the page as text nodes, never as HTML.
 */

export const $ = (id) => document.getElementById(id);
export const enc = encodeURIComponent;

/** Builds an element. Strings among the children become text nodes, never HTML. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'className') node.className = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function formatNumber(n) {
  return Number(n || 0).toLocaleString();
}

export function formatTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n) => String(n).padStart(2, '0');
  if (h) return `${h}h ${pad(m)}m ${pad(s)}s`;
  if (m) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}

export function waitText(secs) {
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h`;
  return `${Math.floor(secs / 86400)} d`;
}

const timeKeyCache = new Map();

/**
 * A string that sorts like the instant `iso` names, to the nanosecond. The server writes
 * RFC 3339 with a varying number of fraction digits, so plain string comparison is not enough
 * and Date keeps only milliseconds.
 */
export function timeKey(iso) {
  if (!iso) return '';
  let key = timeKeyCache.get(iso);
  if (key !== undefined) return key;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)$/i.exec(iso);
  const fraction = ((m && m[2]) || '').padEnd(9, '0').slice(0, 9);
  if (m && m[3].toUpperCase() === 'Z') {
    key = `${m[1]}.${fraction}`;
  } else {
    const date = new Date(iso);
    key = Number.isNaN(date.getTime()) ? String(iso) : `${date.toISOString().slice(0, 19)}.${fraction}`;
  }
  if (timeKeyCache.size > 50000) timeKeyCache.clear();
  timeKeyCache.set(iso, key);
  return key;
}

export function compareText(a, b) {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

export function lastLine(text) {
  const lines = String(text || '').split('\n').map((line) => line.trim()).filter(Boolean);
  return lines.length ? lines[lines.length - 1] : '';
}

/** The last part of a path: what a person calls the file. */
export function fileName(path) {
  return String(path || '').split('/').filter(Boolean).pop() || String(path || '');
}

/** localStorage that never throws (private mode, storage off): null when unavailable. */
export function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

export function store(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    /* the setting lives for this page only */
  }
}
