/*
 * Every HTTP call of the board, and what its failures mean in words. A 401 asks the sign-in
 * panel (signin.js registers itself with `onUnauthorized`) and tries again once a token is
 * saved; other failures throw ApiError with a sentence a person can act on, item ids replaced
 * by titles and statuses by column names.
 */
import { CLIENT_HEADER, STATUS_LABEL } from './constants.js';
import { state } from './store.js';

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

let unauthorized = async () => {
  throw new ApiError(401, 'unauthorized', 'You are not signed in.');
};

/** `handler()` resolves once a new token is saved, or rejects (the person did not sign in). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

const UUID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi;
const STATUS_WORD = /\b(inbox|planning|ready|in_flight|review|done|blocked)\b/g;

/** A server message rewritten for a person: titles for ids, column names for statuses. */
export function inWords(message) {
  return String(message || '')
    .replace(UUID, (id) => {
      const item = state.items.get(id.toLowerCase());
      return item ? `“${item.title}”` : 'an item';
    })
    .replace(STATUS_WORD, (word) => STATUS_LABEL[word] || word)
    .replace(/^./, (c) => c.toUpperCase());
}

/** What went wrong, as a sentence: for toasts and form errors. */
export function describeError(err) {
  if (err instanceof ApiError) {
    if (err.status === 401) return 'You are not signed in: sign in with the server’s API token.';
    if (err.status === 413) return 'That is too large for the server to accept.';
    if (err.status >= 500) return `The server could not do it (${inWords(err.message)}). Try again in a moment.`;
    const text = inWords(err.message);
    return /[.!?)]$/.test(text) ? text : `${text}.`;
  }
  if (err instanceof TypeError || /failed to fetch|networkerror|load failed/i.test(String(err && err.message))) {
    return 'The flightdeck server cannot be reached: it may be stopped, or this computer is offline. The board reconnects by itself.';
  }
  return String((err && err.message) || err || 'Something went wrong.');
}

async function errorFromResponse(res) {
  let code = `http_${res.status}`;
  let message = `${res.status} ${res.statusText || 'error'}`.trim();
  let field = null;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      field = body.error.field || null;
    }
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(res.status, code, message, field);
}

/**
 * X-Flightdeck marks requests as the board's own: the server refuses state changes that
 * carry neither it nor a JSON body, which is all a page of another site could send.
 */
export function requestHeaders(hasBody) {
  const headers = { Accept: 'application/json', 'X-Flightdeck': '1', [CLIENT_HEADER[0]]: CLIENT_HEADER[1] };
  if (hasBody) headers['Content-Type'] = 'application/json';
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  return headers;
}

/** Fetches with the board's headers; a 401 waits for sign-in and tries again. */
export async function request(method, path, body) {
  for (;;) {
    const hasBody = body !== undefined;
    const res = await fetch(path, {
      method,
      headers: requestHeaders(hasBody),
      body: hasBody ? JSON.stringify(body) : undefined,
      cache: 'no-store',
    });
    if (res.status === 401) {
      await unauthorized();
      continue;
    }
    if (!res.ok) throw await errorFromResponse(res);
    return res;
  }
}

/** One JSON API call (`text`: the body as text; `blob`: as a Blob). */
export async function api(method, path, body, { text = false, blob = false } = {}) {
  const res = await request(method, path, body);
  if (res.status === 204) return null;
  if (blob) return res.blob();
  return text ? res.text() : res.json();
}
