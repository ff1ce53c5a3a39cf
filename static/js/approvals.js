// A person in the loop of a running ACP agent, in the item's drawer: the permission requests
// that wait for an answer (the tool call, its command, arguments or diff, one button per
// option) and a box for follow-up messages. `api(method, path, body)` is the board's fetch
// helper and resolves to the parsed JSON answer or throws an Error whose message is the API's
// sentence. Everything the agent sent is set as text, never as HTML.

/** Fills `container` for `item`; returns a refresh function. */
export function renderApprovals(container, item, api) {
  container.replaceChildren();
  const list = el("div", "approvals");
  const status = el("p", "approvals-status");
  status.setAttribute("role", "status");
  container.append(list, status);

  async function refresh() {
    let approvals = [];
    try {
      approvals = (await api("GET", "/api/approvals")).filter((a) => a.itemId === item.id);
    } catch (e) {
      status.textContent = `Cannot load approvals: ${e.message}`;
      return;
    }
    list.replaceChildren(...approvals.map((a) => card(a)));
  }

  function card(approval) {
    const box = el("section", "approval");
    box.dataset.approvalId = approval.id;
    box.append(el("h4", "", `The agent asks to ${approval.tool.kind}: ${approval.tool.title}`));
    for (const [label, text] of [
      ["Command", approval.tool.command],
      ["Change", approval.tool.diff],
      ["Arguments", approval.tool.command || approval.tool.diff ? null : approval.tool.input],
    ]) {
      if (!text) continue;
      box.append(el("div", "approval-label", label), el("pre", "approval-detail", text));
    }
    box.append(el("p", "approval-expires", `Refused at ${new Date(approval.expiresAt).toLocaleTimeString()} if nobody answers.`));
    const buttons = el("div", "approval-options");
    for (const option of approval.options) {
      const button = el("button", option.kind.startsWith("allow") ? "primary allow" : "danger reject", option.name || option.optionId);
      button.type = "button";
      button.addEventListener("click", async () => {
        buttons.querySelectorAll("button").forEach((b) => (b.disabled = true));
        try {
          const answer = await api("POST", `/api/approvals/${encodeURIComponent(approval.id)}`, { option: option.optionId });
          status.textContent = answer.message;
          box.remove();
        } catch (e) {
          status.textContent = e.message;
          buttons.querySelectorAll("button").forEach((b) => (b.disabled = false));
        }
      });
      buttons.append(button);
    }
    box.append(buttons);
    return box;
  }

  if (item.status === "in_flight") {
    const form = el("form", "approval-message");
    const text = el("textarea");
    text.name = "text";
    text.maxLength = 32768;
    text.placeholder = "Tell the agent something: it reads it as its next turn";
    text.setAttribute("aria-label", "Message to the agent");
    const send = el("button", "", "Send");
    send.type = "submit";
    form.append(text, send);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!text.value.trim()) return;
      send.disabled = true;
      try {
        const answer = await api("POST", `/api/items/${encodeURIComponent(item.id)}/messages`, { text: text.value });
        status.textContent = answer.delivery === "queued"
          ? "Queued: the agent reads it when its current turn ends."
          : "Sent: it is the agent's next turn.";
        text.value = "";
      } catch (e) {
        status.textContent = e.message;
      } finally {
        send.disabled = false;
      }
    });
    container.append(form);
  }

  refresh();
  return refresh;
}

/** The card badge for an item whose agent waits on a person, or null. */
export function waitingBadge(item) {
  if (!item.waitingOnPerson) return null;
  const badge = el("span", "badge waiting-on-person", "needs you");
  badge.title = "The agent waits for a person to allow a tool call";
  return badge;
}

function el(tag, className = "", text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
