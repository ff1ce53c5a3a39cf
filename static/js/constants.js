/*
 * What the board and its browser tests agree on: columns, the moves a person may make, storage
 * keys, shortcuts. Pure data, no DOM: tests/browser imports this file as it is.
 */

/** The columns, in board order: status and label. */
export const STATUSES = [
  ['inbox', 'Inbox'],
  ['planning', 'Planning'],
  ['ready', 'Ready'],
  ['in_flight', 'In flight'],
  ['review', 'Review'],
  ['done', 'Done'],
  ['blocked', 'Blocked'],
];
export const STATUS_ORDER = STATUSES.map(([status]) => status);
export const STATUS_LABEL = Object.fromEntries(STATUSES);

/**
 * The moves a person may make (src/model/status.rs `manual_moves`; ready -> in flight happens
 * only through a claim). The server has the last word: this only keeps the board from offering
 * moves it would refuse.
 */
export const MANUAL_MOVES = {
  inbox: ['planning', 'blocked'],
  planning: ['ready', 'blocked'],
  ready: ['blocked'],
  in_flight: ['review', 'done', 'blocked', 'ready'],
  review: ['done', 'ready', 'blocked'],
  done: [],
  blocked: ['ready', 'inbox'],
};

/** Columns that fold to a narrow strip (their cards are rarely worked on). */
export const FOLDABLE = ['done', 'blocked'];
/** Items in these columns wait on a person (tab title, favicon badge, notifications). */
export const WAITING_STATUSES = ['review', 'blocked'];

export const PRIORITY_RANK = { urgent: 0, high: 1, medium: 2, low: 3 };
export const DONE_LIMIT = 50;

export const TOKEN_KEY = 'flightdeck.token';
export const THEME_KEY = 'flightdeck.theme';
export const FOLDED_KEY = 'flightdeck.folded';
export const NOTIFY_KEY = 'flightdeck.notify';
export const DRAWER_WIDTH_KEY = 'flightdeck.drawerWidth';

/** Sent with every request: the server records items made here as created by "board". */
export const CLIENT_HEADER = ['X-Flightdeck-Client', 'board'];

export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 10000;
export const POOL_REFRESH_MS = 200;
export const ITEM_REFETCH_MS = 250;
export const RESYNC_RETRY_MS = 3000;
export const RENDER_FALLBACK_MS = 100;
/** Items per page of the snapshot (GET /api/items?limit=). */
export const SNAPSHOT_PAGE = 2000;
export const CANCEL_REASON = 'cancelled by a person from the board';
export const PHONE_WIDTH_PX = 700;

/** Keyboard shortcuts, as listed under `?`: key, what it does. */
export const SHORTCUTS = [
  ['?', 'Show these shortcuts'],
  ['n', 'New item'],
  ['/', 'Filter by title'],
  ['a', 'Approve the item in the drawer'],
  ['r', 'Reject the item in the drawer, with feedback'],
  ['t', 'Retry the blocked item in the drawer'],
  ['u', 'Unblock the item in the drawer (back to Inbox)'],
  ['[ / ]', 'Move the focused card one column left / right'],
  ['Enter', 'Open the focused card'],
  ['Escape', 'Close the drawer or dialog'],
];
