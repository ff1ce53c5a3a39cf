/*
 * The small modal dialogs: a reason (reject feedback), a confirmation, the shortcuts under `?`,
 * and the item form (new and edit). Form errors name the field the server named.
 */
import { SHORTCUTS, STATUS_LABEL } from './constants.js';
import { api, describeError } from './api.js';
import { $, el, enc } from './dom.js';
import { state, upsertItem } from './store.js';

/** Asks for a reason; resolves with the text ('' allowed) or null when cancelled. */
export function askReason(heading, okLabel, label = 'Reason') {
  const dialog = $('reason-dialog');
  const form = $('reason-form');
  form.reset();
  $('reason-title').textContent = heading;
  $('reason-label').textContent = label;
  $('reason-ok').textContent = okLabel;
  return showDialogForAnswer(dialog).then((answer) =>
    answer === 'ok' ? String(form.elements.namedItem('reason').value).trim() : null,
  );
}

export function confirmAction(text, okLabel) {
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  return showDialogForAnswer($('confirm-dialog')).then((answer) => answer === 'ok');
}

function showDialogForAnswer(dialog) {
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue), { once: true });
  });
}

export function showShortcuts() {
  const list = $('shortcut-list');
  if (!list.children.length) {
    list.append(...SHORTCUTS.flatMap(([key, what]) => [el('dt', {}, el('kbd', { text: key })), el('dd', { text: what })]));
  }
  const dialog = $('help-dialog');
  if (!dialog.open) dialog.showModal();
}

/* ------------------------------------------------------------------ item dialog */

const itemForm = { editing: null, criteriaSent: [] };

export function openItemDialog(item) {
  const form = $('item-form');
  form.reset();
  clearFormError();
  itemForm.editing = item ? item.id : null;
  $('item-dialog-title').textContent = item ? 'Edit item' : 'New item';
  const fields = form.elements;
  fields.namedItem('title').value = item ? item.title : '';
  fields.namedItem('description').value = item ? item.description : '';
  fields.namedItem('priority').value = item ? item.priority : 'medium';
  fields.namedItem('complexity').value = item ? item.complexity : 'm';
  fields.namedItem('status').value = 'inbox';
  fields.namedItem('status').disabled = Boolean(item);
  $('status-field').hidden = Boolean(item);
  setCriteriaRows(item && item.acceptanceCriteria.length ? item.acceptanceCriteria : ['']);
  fillDependencyOptions(item);
  $('item-dialog').showModal();
  fields.namedItem('title').focus();
}

function setCriteriaRows(values) {
  $('criteria').replaceChildren(...values.map(criterionRow));
}

function criterionRow(value = '') {
  const input = el('input', { type: 'text', name: 'criterion', 'aria-label': 'Acceptance criterion', autocomplete: 'off' });
  input.value = value;
  const remove = el('button', { type: 'button', className: 'icon remove-criterion', 'aria-label': 'Remove criterion', title: 'Remove criterion' });
  return el('li', { className: 'criterion-row' }, input, remove);
}

function addCriterionRow() {
  const row = criterionRow();
  $('criteria').append(row);
  row.querySelector('input').focus();
}

function onCriteriaClick(event) {
  const remove = event.target.closest('.remove-criterion');
  if (remove) remove.closest('li').remove();
}

function fillDependencyOptions(item) {
  const select = $('blocked-by');
  const chosen = new Set(item ? item.blockedBy : []);
  const candidates = [...state.items.values()]
    .filter((other) => !item || other.id !== item.id)
    .sort((a, b) => (a.status === 'done') - (b.status === 'done') || String(a.title).localeCompare(String(b.title)));
  select.replaceChildren(
    ...candidates.map((other) => {
      const option = el('option', { value: other.id, text: `${other.title} · ${STATUS_LABEL[other.status] || other.status}` });
      option.selected = chosen.has(other.id);
      return option;
    }),
  );
  $('dep-filter').value = '';
}

function filterDependencyOptions() {
  const text = $('dep-filter').value.trim().toLowerCase();
  for (const option of $('blocked-by').options) {
    option.hidden = Boolean(text) && !option.selected && !option.textContent.toLowerCase().includes(text);
  }
}

function readItemForm(form) {
  const fields = form.elements;
  const criteriaInputs = [...form.querySelectorAll('input[name="criterion"]')].filter((input) => input.value.trim() !== '');
  const body = {
    title: fields.namedItem('title').value,
    description: fields.namedItem('description').value,
    acceptanceCriteria: criteriaInputs.map((input) => input.value),
    priority: fields.namedItem('priority').value,
    complexity: fields.namedItem('complexity').value,
    blockedBy: [...$('blocked-by').selectedOptions].map((option) => option.value),
  };
  if (!itemForm.editing) body.status = fields.namedItem('status').value;
  return { body, criteriaInputs };
}

async function submitItemForm(event) {
  event.preventDefault();
  const form = event.target;
  clearFormError();
  const { body, criteriaInputs } = readItemForm(form);
  itemForm.criteriaSent = criteriaInputs;
  const save = form.querySelector('button[type="submit"]');
  save.disabled = true;
  try {
    const editing = itemForm.editing;
    const item = editing
      ? await api('PATCH', `/api/items/${enc(editing)}`, body)
      : await api('POST', '/api/items', body);
    upsertItem(item);
    $('item-dialog').close();
  } catch (err) {
    showFormError(err);
  } finally {
    save.disabled = false;
  }
}

function showFormError(err) {
  const box = $('item-error');
  box.textContent = describeError(err);
  box.hidden = false;
  const field = fieldElement(err.field);
  if (field) {
    field.classList.add('invalid');
    field.setAttribute('aria-invalid', 'true');
    if (typeof field.focus === 'function' && field.tagName !== 'FIELDSET') field.focus();
  }
}

/** The form control a server error's `field` ("title", "acceptanceCriteria[2]", ...) names. */
function fieldElement(field) {
  if (!field) return null;
  const criterion = /^acceptanceCriteria(?:\[(\d+)\])?/.exec(field);
  if (criterion) {
    return (criterion[1] !== undefined && itemForm.criteriaSent[Number(criterion[1])]) || $('criteria-field');
  }
  const name = field.replace(/[[.].*$/, '');
  if (name === 'blockedBy') return $('blocked-by');
  const control = $('item-form').elements.namedItem(name);
  return control instanceof Element ? control : null;
}

function clearFormError() {
  const box = $('item-error');
  box.hidden = true;
  box.textContent = '';
  for (const node of $('item-form').querySelectorAll('.invalid')) {
    node.classList.remove('invalid');
    node.removeAttribute('aria-invalid');
  }
}

function onItemFormInput(event) {
  const node = event.target;
  if (node.classList && node.classList.contains('invalid')) {
    node.classList.remove('invalid');
    node.removeAttribute('aria-invalid');
  }
}

export function wireDialogs() {
  const form = $('item-form');
  form.addEventListener('submit', submitItemForm);
  form.addEventListener('input', onItemFormInput);
  $('item-cancel').addEventListener('click', () => $('item-dialog').close());
  $('add-criterion').addEventListener('click', addCriterionRow);
  $('criteria').addEventListener('click', onCriteriaClick);
  $('dep-filter').addEventListener('input', filterDependencyOptions);
}
