// Chat moderation in the page: an ignore list for everyone (kept in
// localStorage, hiding the ignored users' lines) and, for moderators and
// admins only (session.user.role), mute / ban / delete controls on each chat
// line. It works on the chat list app.js draws (each <li> carries data-id and
// data-username) and on the frames app.js hands it (onFrame): it keeps out of
// the rest of the page. The server decides who may do what (protocol.md,
// "Moderation"); the controls only save moderators typing frames.

import { errorSentence } from "./errors.js";

const IGNORED_KEY = "pillarpayout.ignored";
const MODERATORS = new Set(["moderator", "admin"]);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(action, text, title) {
  const node = element("button", `mod-${action}`, text);
  node.type = "button";
  node.dataset.action = action;
  node.title = title;
  return node;
}


export class Moderation {
  /**
   * @param {HTMLElement} list the chat's <ol>, whose <li> app.js adds
   * @param {(frame: object) => boolean} send sends a frame on the game socket
   */
  constructor(list, send) {
    this.list = list;
    this.send = send;
    this.role = null; // null: logged out; else the session's role
    this.me = null; // our username (lower case): no tools on our own lines
    this.refs = 0;
    this.ignored = new Set(this.loadIgnored());
    // Its own stylesheet (the page's CSP allows files, not inline styles).
    const sheet = element("link");
    Object.assign(sheet, { rel: "stylesheet", href: "moderation.css" });
    document.head.append(sheet);
    this.bar = this.buildBar();
    list.parentElement.append(this.bar);
    list.addEventListener("click", (event) => this.clicked(event));
    new MutationObserver((changes) => {
      for (const change of changes) {
        for (const node of change.addedNodes) if (node instanceof HTMLLIElement) this.decorate(node);
      }
    }).observe(list, { childList: true });
    this.renderBar();
  }

  // -- the ignore list ---------------------------------------------------------

  loadIgnored() {
    try {
      const names = JSON.parse(localStorage.getItem(IGNORED_KEY) ?? "[]");
      return Array.isArray(names) ? names.filter((n) => typeof n === "string") : [];
    } catch {
      return [];
    }
  }

  setIgnored(username, ignored) {
    const name = username.toLowerCase();
    if (ignored) this.ignored.add(name);
    else this.ignored.delete(name);
    localStorage.setItem(IGNORED_KEY, JSON.stringify([...this.ignored].sort()));
    for (const item of this.list.children) this.decorate(item);
    this.renderBar();
  }

  // -- frames ------------------------------------------------------------------

  onFrame(frame) {
    switch (frame.type) {
      case "session":
        this.role = frame.user.role ?? "player";
        this.me = frame.user.username.toLowerCase();
        this.redecorate();
        break;
      case "role":
        this.role = frame.role;
        this.redecorate();
        break;
      case "logged_out":
        this.role = this.me = null;
        this.redecorate();
        break;
      case "muted": {
        const until = frame.until === null ? null : new Date(frame.until * 1000);
        const why = frame.reason ? ` (${frame.reason})` : "";
        this.status(
          until === null
            ? "You may chat again."
            : `You are muted until ${until.toLocaleTimeString()}${why}.`,
          until !== null,
        );
        break;
      }
      case "chat_deleted":
        for (const item of [...this.list.children]) {
          if (item.dataset.id === String(frame.id)) item.remove();
        }
        break;
      case "moderated":
        this.status(this.describe(frame));
        break;
      case "error":
        if (typeof frame.ref === "string" && frame.ref.startsWith("mod-")) {
          this.status(errorSentence(frame), true);
        }
        break;
      default:
    }
  }

  describe(frame) {
    switch (frame.action) {
      case "mute": {
        const until = new Date(frame.until * 1000).toLocaleTimeString();
        return `${frame.username} is muted until ${until}.`;
      }
      case "ban":
        return `${frame.username} is banned.`;
      case "delete_chat":
        return `A line of ${frame.username} was deleted.`;
      default:
        return `${frame.action}: ${frame.username}.`;
    }
  }

  // -- the chat lines ----------------------------------------------------------

  get moderating() {
    return MODERATORS.has(this.role);
  }

  redecorate() {
    for (const item of this.list.children) this.decorate(item);
    this.renderBar();
  }

  /** Hide an ignored user's line; give a line the tools this page may use on it. */
  decorate(item) {
    const username = item.dataset.username;
    if (username === undefined) return;
    const ignored = this.ignored.has(username.toLowerCase());
    item.classList.toggle("ignored", ignored);
    item.querySelector(".mod-tools")?.remove();
    if (this.me === null || username.toLowerCase() === this.me) return;
    const tools = element("span", "mod-tools");
    tools.append(button("ignore", "ignore", `Hide ${username}'s lines on this page`));
    if (this.moderating) {
      tools.append(
        button("delete", "del", "Delete this line for everyone"),
        button("mute", "mute", `Mute ${username} for the minutes below`),
        button("ban", "ban", `Ban ${username}`),
      );
    }
    item.append(tools);
  }

  clicked(event) {
    const target = event.target;
    if (!(target instanceof HTMLButtonElement) || target.dataset.action === undefined) return;
    const item = target.closest("li");
    const { id, username } = item.dataset;
    const reason = this.bar.querySelector(".mod-reason").value.trim() || null;
    this.refs += 1;
    const ref = `mod-${this.refs}`;
    switch (target.dataset.action) {
      case "ignore":
        this.setIgnored(username, true);
        return;
      case "delete":
        this.send({ type: "delete_chat", id: Number(id), reason, ref });
        return;
      case "mute": {
        const minutes = Number(this.bar.querySelector(".mod-minutes").value);
        this.send({ type: "mute", username, minutes, reason, ref });
        return;
      }
      case "ban":
        if (window.confirm(`Ban ${username}?`)) this.send({ type: "ban", username, reason, ref });
        return;
      default:
    }
  }

  // -- the bar under the chat: ignored users, and the moderator's settings ---------

  buildBar() {
    const bar = element("div", "mod-bar");
    bar.id = "mod-bar";
    const settings = element("span", "mod-settings");
    const minutes = element("input", "mod-minutes");
    Object.assign(minutes, { type: "number", min: "1", max: "43200", value: "10" });
    minutes.title = "Minutes a mute lasts";
    const reason = element("input", "mod-reason");
    Object.assign(reason, { maxLength: 200, placeholder: "reason (optional)" });
    settings.append("Mute for ", minutes, " min ", reason);
    const ignored = element("span", "mod-ignored");
    const status = element("span", "mod-status");
    status.setAttribute("role", "status");
    bar.append(settings, ignored, status);
    return bar;
  }

  renderBar() {
    this.bar.querySelector(".mod-settings").hidden = !this.moderating;
    const box = this.bar.querySelector(".mod-ignored");
    box.replaceChildren();
    if (this.ignored.size > 0) box.append("Ignoring: ");
    for (const name of [...this.ignored].sort()) {
      const entry = element("span", "ignored-user", name);
      entry.dataset.username = name;
      const undo = element("button", "mod-unignore", "×");
      undo.type = "button";
      undo.title = `Show ${name}'s lines again`;
      undo.addEventListener("click", () => this.setIgnored(name, false));
      entry.append(undo);
      box.append(entry, " ");
    }
  }

  status(text, error = false) {
    const status = this.bar.querySelector(".mod-status");
    status.textContent = text;
    status.classList.toggle("error", error);
  }
}
