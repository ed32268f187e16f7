// The stats panel (my bets, paged, and any player's public profile) and the
// leaderboard, from the server's /api/me/bets, /api/users/NAME and
// /api/leaderboard. Every name and value goes in as text (textContent), never
// as HTML: usernames are the players' own words.

import { clockTime, formatMoney, formatMultiplier, hundredths } from "./format.js";


const $ = (id) => document.getElementById(id);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A button that opens `username`'s profile (the page listens for clicks on `.user-link`). */
export function userLink(username, className = "") {
  const link = element("button", `user-link ${className}`.trim(), username);
  link.type = "button";
  link.dataset.username = username;
  link.title = `${username}'s profile`;
  return link;
}

/**
 * Calls `onShown` each time `node` comes on screen: the panels below the game
 * ask the server for nothing until someone scrolls to them.
 */
function watchVisible(node, onShown) {
  const seen = { now: false };
  new IntersectionObserver(([entry]) => {
    const was = seen.now;
    seen.now = entry.isIntersecting;
    if (seen.now && !was) onShown();
  }).observe(node);
  return seen;
}

async function getJson(url, headers = {}) {
  const response = await fetch(url, { headers: { Accept: "application/json", ...headers } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  return { status: response.status, ok: response.ok, body };
}

function dateOf(ts) {
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(
    d.getDate(),
  ).padStart(2, "0")} ${clockTime(ts)}`;
}

export class StatsPanel {
  /** @param {() => string | null} token the session token, null when logged out */
  constructor(token) {
    this.token = token;
    this.before = null; // the page shown: bets with id < before (null: the newest)
    this.next = null; // next_before of the page shown
    this.loading = 0; // answers still awaited; an older one is dropped
    this.stale = true; // the list shown is not this session's newest page
    this.seen = watchVisible($("stats"), () => {
      if (this.stale) this.refresh();
    });
    $("tab-my-bets").addEventListener("click", () => this.show("my-bets"));
    $("tab-profile").addEventListener("click", () => this.show("profile"));
    $("my-bets-newest").addEventListener("click", () => this.loadMyBets(null));
    $("my-bets-older").addEventListener("click", () => this.loadMyBets(this.next));
    $("profile-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const name = $("profile-name").value.trim();
      if (name !== "") this.openProfile(name);
    });
  }

  show(which) {
    $("tab-my-bets").setAttribute("aria-selected", String(which === "my-bets"));
    $("tab-profile").setAttribute("aria-selected", String(which === "profile"));
    $("my-bets-box").hidden = which !== "my-bets";
    $("profile").hidden = which !== "profile";
    $("stats-error").textContent = "";
  }

  /** Logged out: nothing of the last player's stays on screen. */
  clear() {
    this.stale = true;
    this.before = null;
    this.next = null;
    this.loading += 1;
    $("my-bets").hidden = true;
    $("my-bets").tBodies[0].replaceChildren();
    $("my-bets-note").textContent = "Log in to see your bets.";
    $("my-bets-newest").disabled = true;
    $("my-bets-older").disabled = true;
  }

  /** The newest page again, if that is the one shown (after a round, a login), once in sight. */
  refresh() {
    if (this.before !== null || this.token() === null) return;
    this.stale = !this.seen.now;
    if (!this.stale) this.loadMyBets(null);
  }

  async loadMyBets(before) {
    const token = this.token();
    if (token === null) return this.clear();
    const ticket = ++this.loading;
    // Bets a page: the table's data-page-size (index.html), else 10.
    const limit = Number($("my-bets").dataset.pageSize) || 10;
    const query = new URLSearchParams({ limit: String(limit) });
    if (before !== null) query.set("before", String(before));
    let answer;
    try {
      answer = await getJson(`/api/me/bets?${query}`, { Authorization: `Bearer ${token}` });
    } catch {
      answer = { status: 0, ok: false, body: null };
    }
    if (ticket !== this.loading) return; // a newer request (or a logout) came meanwhile
    if (!answer.ok) {
      $("stats-error").textContent =
        answer.status === 401
          ? "Your session has ended: log in again to see your bets."
          : "Could not load your bets: try again in a moment.";
      return;
    }
    $("stats-error").textContent = "";
    const { bets, next_before: next } = answer.body;
    this.before = before;
    this.next = next;
    const rows = bets.map((bet) => {
      const row = element("tr", bet.status);
      row.dataset.betId = String(bet.id);
      row.dataset.roundId = String(bet.round_id);
      row.dataset.slot = String(bet.slot ?? 0);
      row.dataset.amount = String(bet.amount);
      row.dataset.payout = String(bet.payout);
      row.title = dateOf(bet.placed_at);
      row.append(
        element("td", "", `#${bet.round_id}`),
        element("td", "", String((bet.slot ?? 0) + 1)),
        element("td", "num", formatMoney(bet.amount)),
        element(
          "td",
          "num",
          bet.cashout_multiplier === null
            ? bet.auto_cashout === null
              ? "–"
              : `auto ${formatMultiplier(hundredths(bet.auto_cashout))}`
            : formatMultiplier(hundredths(bet.cashout_multiplier)),
        ),
        element("td", "num", formatMoney(bet.payout)),
        element("td", "result", bet.status.replace("_", " ")),
      );
      return row;
    });
    $("my-bets").tBodies[0].replaceChildren(...rows);
    $("my-bets").hidden = rows.length === 0;
    $("my-bets-note").textContent =
      rows.length === 0 ? (before === null ? "No bets yet." : "No older bets.") : "";
    $("my-bets-newest").disabled = false; // also a refresh
    $("my-bets-older").disabled = next === null;
  }

  async openProfile(username) {
    this.show("profile");
    $("profile-name").value = username;
    const body = $("profile-body");
    body.dataset.username = "";
    body.replaceChildren(element("p", "muted", `Loading ${username}…`));
    $("stats").scrollIntoView({ block: "nearest" });
    let answer;
    try {
      answer = await getJson(`/api/users/${encodeURIComponent(username)}`);
    } catch {
      answer = { status: 0, ok: false, body: null };
    }
    if ($("profile-name").value !== username) return; // another profile was asked for since
    if (!answer.ok) {
      body.replaceChildren(
        element(
          "p",
          "muted",
          answer.status === 404 ? `No player is called ${username}.` : "Could not load the profile.",
        ),
      );
      return;
    }
    const p = answer.body;
    const list = element("dl", "profile-facts");
    const facts = [
      ["Joined", dateOf(p.joined_at)],
      ["Rounds played", String(p.rounds_played)],
      ["Bets", String(p.bets)],
      ["Wagered", formatMoney(p.wagered)],
      ["Profit", formatMoney(p.profit)],
      [
        "Best multiplier",
        p.best_multiplier === null ? "–" : formatMultiplier(hundredths(p.best_multiplier)),
      ],
      ["Biggest win", p.biggest_win === null ? "–" : formatMoney(p.biggest_win)],
    ];
    for (const [name, value] of facts) list.append(element("dt", "", name), element("dd", "", value));
    body.replaceChildren(element("div", "profile-name", p.username), list);
    body.dataset.username = p.username;
  }
}

export class Leaderboard {
  constructor() {
    this.loading = 0;
    this.loaded = false;
    watchVisible($("leaderboard"), () => {
      if (!this.loaded) this.load();
    });
    for (const id of ["lb-by", "lb-period"]) $(id).addEventListener("change", () => this.load());
    $("lb-refresh").addEventListener("click", () => this.load());
  }

  async load() {
    const by = $("lb-by").value;
    const period = $("lb-period").value;
    const ticket = ++this.loading;
    this.loaded = true;
    let answer;
    try {
      answer = await getJson(`/api/leaderboard?${new URLSearchParams({ by, period })}`);
    } catch {
      answer = { status: 0, ok: false, body: null };
    }
    if (ticket !== this.loading) return;
    const list = $("lb-rows");
    if (!answer.ok) {
      $("lb-error").textContent = "Could not load the leaderboard.";
      list.replaceChildren();
      return;
    }
    $("lb-error").textContent = "";
    list.dataset.by = answer.body.by;
    list.dataset.period = answer.body.period;
    const rows = answer.body.rows.map((r) => {
      const row = element("li");
      row.dataset.rank = String(r.rank);
      row.append(
        element("span", "rank", `${r.rank}.`),
        userLink(r.username, "name"),
        element(
          "span",
          "value",
          by === "multiplier" ? formatMultiplier(hundredths(r.value)) : formatMoney(r.value),
        ),
      );
      return row;
    });
    if (rows.length === 0) rows.push(element("li", "more", "Nobody yet in this period."));
    list.replaceChildren(...rows);
  }
}
