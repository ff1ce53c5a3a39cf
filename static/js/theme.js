/*
 * Light or dark: the system's choice unless the person picked one with the toggle (kept in
 * this browser). The stylesheet does the rest from `data-theme` on <html>.
 */
import { THEME_KEY } from './constants.js';
import { $, store, stored } from './dom.js';

const NEXT = { system: 'dark', dark: 'light', light: 'system' };
const LABEL = { system: 'Theme: system', dark: 'Theme: dark', light: 'Theme: light' };

function current() {
  const value = stored(THEME_KEY);
  return value === 'dark' || value === 'light' ? value : 'system';
}

function apply(theme) {
  if (theme === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  const button = $('theme');
  button.textContent = LABEL[theme];
  button.title = `Switch to ${LABEL[NEXT[theme]].replace('Theme: ', '')} theme`;
}

export function setTheme(theme) {
  store(THEME_KEY, theme === 'system' ? null : theme);
  apply(theme);
}

export function wireTheme() {
  apply(current());
  $('theme').addEventListener('click', () => setTheme(NEXT[current()]));
}
