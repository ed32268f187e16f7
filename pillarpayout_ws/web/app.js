// PillarPayout in the browser: the game state the server's frames describe
// (protocol.md), the panels that show it, and one animation loop that draws
// the pillar and the multiplier at the screen's rate between the ticks.

import {
  clockTime,
  formatMoney,
  formatMultiplier,
  formatSigned,
  hundredths,
  parseMoney,
  parseMultiplier,
  payoutAt,
} from "./format.js";
import { Announcer } from "./announce.js";
import { AutoBetRun, parseRule } from "./autobet.js";
import { BetControls } from "./betcontrols.js";
import { ChatCue } from "./chat-cue.js";
import { errorSentence } from "./errors.js";
import { heightAt, integrityAt, multiplierAt } from "./growth.js";
import { Moderation } from "./moderation.js";
import { LimitsPanel } from "./limits.js";
import { GameSocket } from "./net.js";
import { PillarView } from "./pillar.js";
import { Sound } from "./sound.js";
import { Leaderboard, StatsPanel, userLink } from "./stats.js";
import { RoundSeeds, VerifyPanel } from "./verify-panel.js";

const TOKEN_KEY = "pillarpayout.token";
// The auto cash-out target of a bet this tab placed, per round and slot: the
// server never repeats it (it is private), so after a reload only this tab knows it.
const armedKey = (roundId, slot) => `pillarpayout.auto.${roundId}.${slot}`;
const HISTORY_KEPT = 50;
const CHAT_KEPT = 100;
const SEEDS_KEPT = 500; // rounds of seeds and hashes remembered for the verify panel
// Between ticks the page runs the growth curve on its own clock, but never more
// than this far past the last tick: if ticks stop coming, the pillar waits.
const MAX_AHEAD_MS = 1000;
const SLOTS = [0, 1]; // two bets a round, each with its own amount, auto cash-out and ref

const $ = (id) => document.getElementById(id);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// -- state -------------------------------------------------------------------

const state = {
  me: null, // {id, username} once a `session` arrives
  balance: null, // cents
  round: {
    id: null,
    phase: "idle", // idle, betting, running, crashed
    bettingEndsAt: 0, // performance.now() when betting closes
    tickElapsed: 0, // elapsed_ms of the last tick ...
    tickAt: 0, // ... and when it arrived
    tickM: 100, // the last tick's multiplier (hundredths)
    shownElapsed: 0, // never draw time going backwards
    crashPoint: null,
    crashedAt: null,
  },
  token: null, // the session's, for /api/me/bets
  myBets: [null, null], // per slot: {roundId, amount, autoCashout, status, multiplier, payout}
  autoBets: [null, null], // per slot: the AutoBetRun, running or the last one stopped
  bets: new Map(), // "user id:slot" -> bet view of the current round
  betsMore: 0,
  history: [], // {round_id, crash_point}, oldest first
  goal: null,
  refs: 0,
  chatSinceHello: 0, // chat frames since the last hello (see loadChat)
  connLost: false, // the socket dropped and no hello has come back yet
};

const seeds = new RoundSeeds();
const stats = new StatsPanel(() => state.token);
new Leaderboard();
const verifyPanel = new VerifyPanel(seeds);
const sound = new Sound($("sound"));
const pillar = new PillarView($("pillar"), document.querySelector("#stage .overlay"));
const moderation = new Moderation($("chat"), (frame) => socket.send(frame));
const announcer = new Announcer();
const chatCue = new ChatCue($("chat"));
const socket = new GameSocket(
  `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
  onFrame,
  onStatus,
);

// Refs are unique per page load (and so per tab): the server remembers a ref with
// the round it was made for and refuses it in a later round (`ref_reused`).
const PAGE_ID = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) =>
  b.toString(16).padStart(2, "0"),
).join("");

// A ref's first part says what the frame was for, and for which slot: "bet1-...",
// "auto0-...", "cashout1-...", "chat-...": an error names the ref it answers.
function ref(kind, slot = "") {
  state.refs += 1;
  return `${kind}${slot}-${PAGE_ID}-${state.refs}`;
}

const limitsPanel = new LimitsPanel((frame) => socket.send(frame), ref);
function refKind(r) {
  const match = typeof r === "string" ? /^([a-z]+?)(\d?)-/.exec(r) : null;
  if (match === null) return { kind: null, slot: null };
  return { kind: match[1], slot: match[2] === "" ? null : Number(match[2]) };
}

const slotOf = (frame) => frame.slot ?? 0; // frames of a server without slots name none
const betKey = (bet) => `${bet.user_id}:${slotOf(bet)}`;
const part = (name, slot) => $(`${name}-${slot}`);

// -- frames from the server -------------------------------------------------------

const handlers = {
  hello(f) {
    const r = state.round;
    const now = performance.now();
    Object.assign(r, {
      id: f.round_id,
      phase: f.phase,
      bettingEndsAt: now + f.betting_left_ms,
      tickElapsed: f.elapsed_ms,
      tickAt: now,
      tickM: hundredths(f.m),
      shownElapsed: f.elapsed_ms,
      crashPoint: f.crash_point === null ? null : hundredths(f.crash_point),
      // A crash that happened before we came: draw the rubble, not the fall.
      crashedAt: f.phase === "crashed" ? now - 60_000 : null,
    });
    if (f.round_id !== null) seeds.published.set(f.round_id, f.seed_hash);
    announceFairness(f.fairness);
    if (f.round_id !== null) seeds.houseEdges.set(f.round_id, f.fairness.house_edge);
    for (const slot of SLOTS) {
      const mine = state.myBets[slot];
      if (mine !== null && mine.roundId !== f.round_id && mine.status === "open") {
        betStatus(slot, `Round #${mine.roundId} ended while you were offline: see My bets.`);
      }
    }
    forgetOtherRounds(f.round_id);
    state.history = f.history.slice(-HISTORY_KEPT);
    for (const h of state.history) seeds.crashPoints.set(h.round_id, hundredths(h.crash_point));
    if (f.crash_point !== null) seeds.crashPoints.set(f.round_id, hundredths(f.crash_point));
    state.bets = new Map(f.bets.map((b) => [betKey(b), b]));
    renderPresence(f.presence);
    state.betsMore = f.bets_more;
    state.goal = f.goal;
    $("chat").replaceChildren();
    f.chat.forEach(addChatLine);
    state.chatSinceHello = 0;
    loadChat(f.chat.length); // hello carries what fits in 8 KiB; the rest is on /api/chat
    const token = localStorage.getItem(TOKEN_KEY);
    if (token !== null) socket.send({ type: "resume", token, ref: ref("resume") });
    else if (state.me !== null) loggedOut();
    renderAll();
  },

  betting(f) {
    Object.assign(state.round, {
      id: f.round_id,
      phase: "betting",
      bettingEndsAt: performance.now() + f.betting_ms,
      tickElapsed: 0,
      tickM: 100,
      shownElapsed: 0,
      crashPoint: null,
      crashedAt: null,
    });
    seeds.published.set(f.round_id, f.seed_hash);
    seeds.houseEdges.set(f.round_id, f.house_edge);
    seeds.forgetBefore(f.round_id - SEEDS_KEPT);
    state.bets.clear();
    state.betsMore = 0;
    forgetOtherRounds(f.round_id);
    verifyPanel.seedArrived(f.round_id - 1);
    renderAll();
    announcer.say(`Round ${f.round_id}: place your bets.`);
    for (const slot of SLOTS) placeAutoBet(slot);
    // The round before is flushed to PostgreSQL by now, most likely (within a
    // second of its crash): its bets are in /api/me/bets.
    stats.refresh();
  },

  running(f) {
    Object.assign(state.round, {
      id: f.round_id,
      phase: "running",
      tickElapsed: 0,
      tickAt: performance.now(),
      tickM: 100,
      shownElapsed: 0,
    });
    renderBetPanels();
    announcer.say(`Round ${f.round_id}: bets are closed, the pillar is building.`);
  },

  tick(f) {
    const r = state.round;
    if (f.round_id !== r.id || r.phase === "crashed") return;
    r.phase = "running";
    r.tickElapsed = f.elapsed_ms;
    r.tickAt = performance.now();
    r.tickM = hundredths(f.m);
  },

  crashed(f) {
    const r = state.round;
    const crash = hundredths(f.crash_point);
    Object.assign(r, {
      id: f.round_id,
      phase: "crashed",
      crashPoint: crash,
      crashedAt: performance.now(),
      tickElapsed: f.elapsed_ms,
    });
    sound.crash();
    seeds.revealed.set(f.round_id, f.server_seed);
    seeds.crashPoints.set(f.round_id, crash);
    seeds.clientSeed = f.client_seed;
    state.history.push({ round_id: f.round_id, crash_point: f.crash_point });
    state.history = state.history.slice(-HISTORY_KEPT);
    for (const bet of state.bets.values()) if (bet.status === "open") bet.status = "lost";
    for (const slot of SLOTS) {
      const mine = state.myBets[slot];
      if (mine !== null && mine.roundId === f.round_id && mine.status === "open") {
        mine.status = "lost";
        betStatus(
          slot,
          `The pillar fell at ${formatMultiplier(crash)}: your ${formatMoney(mine.amount)} is lost.`,
          "loss",
        );
      }
      settleAutoBet(slot, f.round_id);
    }
    verifyPanel.seedArrived(f.round_id);
    renderAll();
    announcer.say(`Round ${f.round_id}: the pillar fell at ${formatMultiplier(crash)}.`);
  },

  round_voided(f) {
    // Cash-outs made stand; every other bet was refunded (a `balance` frame each,
    // before this one, says so in the slot), and the next round's `betting`,
    // which clears the bets list, follows at once. An auto-bet's refunded bet
    // is not a round played: the run bets again.
    for (const slot of SLOTS) {
      const run = state.autoBets[slot];
      if (run !== null && run.bet !== null && run.bet.roundId === f.round_id) run.bet = null;
    }
    const bets = f.refunded === 1 ? "1 bet was" : `${f.refunded} bets were`;
    const text = `Round #${f.round_id} was voided by the operator: ${bets} refunded, cash-outs made stand.`;
    toast(text);
    announcer.say(text);
    renderBetPanels();
  },

  bets(f) {
    if (f.round_id !== state.round.id) return;
    for (const bet of f.bets) {
      if (bet.status === "cancelled") {
        state.bets.delete(betKey(bet)); // taken back during betting: listed no more
        continue;
      }
      state.bets.set(betKey(bet), bet);
      if (state.me !== null && bet.user_id === state.me.id) adoptBetView(bet);
    }
    state.betsMore = f.more;
    renderBets();
    renderBetPanels();
  },

  presence(f) {
    renderPresence(f);
  },

  chat(f) {
    state.chatSinceHello += 1;
    addChatLine(f);
  },

  fairness(f) {
    // A new chain (or house edge) from the next round on: the verify panel uses it.
    announceFairness(f);
  },

  goal(f) {
    const { type, ...goal } = f;
    if (state.goal !== null && state.goal.id === goal.id && goal.status === "completed") {
      toast(`Community goal “${goal.name}” completed: ${goal.reward}!`);
    }
    state.goal = goal;
    renderGoal();
  },

  session(f) {
    localStorage.setItem(TOKEN_KEY, f.token);
    state.token = f.token;
    state.me = { id: f.user.id, username: f.user.username };
    state.balance = f.user.balance;
    $("auth-error").textContent = "";
    for (const form of [$("login-form"), $("register-form")]) form.reset();
    // Back after a reload or a reconnection: our bet of this round, if it is listed.
    for (const slot of SLOTS) {
      const view = state.bets.get(`${f.user.id}:${slot}`);
      if (view !== undefined) adoptBetView(view);
    }
    renderAll();
    stats.refresh();
  },

  logged_out() {
    localStorage.removeItem(TOKEN_KEY);
    loggedOut();
  },

  bet_accepted(f) {
    const slot = slotOf(f);
    state.balance = f.balance;
    const run = state.autoBets[slot];
    if (run !== null && run.bet !== null && run.bet.ref === f.ref) run.bet.accepted = true;
    state.myBets[slot] = {
      roundId: f.round_id,
      amount: f.amount,
      autoCashout: f.auto_cashout === null ? null : hundredths(f.auto_cashout),
      status: "open",
      multiplier: null,
      payout: null,
    };
    if (f.auto_cashout !== null) {
      sessionStorage.setItem(armedKey(f.round_id, slot), String(hundredths(f.auto_cashout)));
    }
    // The public list gets this bet with the next `bets` frame, up to a tick
    // later: the page lists its own bet at once, as a page loaded now would
    // see it in hello.
    if (state.me !== null && f.round_id === state.round.id) {
      const key = `${state.me.id}:${slot}`;
      if (!state.bets.has(key)) {
        state.bets.set(key, {
          user_id: state.me.id,
          username: state.me.username,
          amount: f.amount,
          status: "open",
          multiplier: null,
          payout: null,
          slot,
        });
      }
    }
    const auto =
      f.auto_cashout === null
        ? ""
        : `, auto cash-out at ${formatMultiplier(hundredths(f.auto_cashout))}`;
    betStatus(slot, `Bet of ${formatMoney(f.amount)} placed for round #${f.round_id}${auto}.`);
    part("bet-error", slot).textContent = "";
    renderAccount();
    renderBets();
    renderBetPanels();
  },

  cashed_out(f) {
    state.balance = f.balance;
    const slot = slotOf(f);
    const multiplier = hundredths(f.multiplier);
    const mine = state.myBets[slot];
    if (mine !== null && mine.roundId === f.round_id) {
      // A cashout sent twice is answered twice (protocol.md): one chime.
      if (mine.status !== "cashed_out") sound.cashout();
      Object.assign(mine, { status: "cashed_out", multiplier, payout: f.payout });
    }
    const how =
      { manual: "Cashed out", auto: "Auto cash-out", forced: "Cashed out by the house's cap" }[
        f.reason
      ] ?? "Cashed out";
    const amount = mine !== null && mine.roundId === f.round_id ? mine.amount : null;
    wonStatus(slot, how, multiplier, amount, f.payout);
    part("bet-error", slot).textContent = "";
    renderAccount();
    renderBetPanels();
  },

  bet_cancelled(f) {
    const slot = slotOf(f);
    state.balance = f.balance;
    const mine = state.myBets[slot];
    if (mine !== null && mine.roundId === f.round_id) mine.status = "cancelled";
    if (state.me !== null) state.bets.delete(`${state.me.id}:${slot}`);
    sessionStorage.removeItem(armedKey(f.round_id, slot));
    betStatus(
      slot,
      `Bet of ${formatMoney(f.amount)} cancelled and refunded. This slot takes a bet again next round.`,
    );
    part("bet-error", slot).textContent = "";
    renderAccount();
    renderBets();
    renderBetPanels();
  },

  balance(f) {
    state.balance = f.balance;
    const mine = f.reason === "refund" ? state.myBets[slotOf(f)] : null;
    if (mine !== null && mine.roundId === f.round_id && mine.status === "open") {
      refunded(slotOf(f), f.round_id, f.amount);
    } else {
      toast(`${formatMoney(f.amount)} credited to your balance.`);
    }
    renderAccount();
  },

  error(f) {
    const { kind, slot } = refKind(f.ref);
    const text = errorSentence(f, kind);
    if (kind === "resume") {
      // The stored session has ended (expired, revoked): back to the forms.
      localStorage.removeItem(TOKEN_KEY);
      loggedOut();
      $("auth-error").textContent = text;
    } else if (kind === "auth") {
      $("auth-error").textContent = text;
    } else if (["bet", "auto", "cashout", "cancel"].includes(kind) && slot !== null) {
      part("bet-error", slot).textContent = text;
      part("bet-error", slot).dataset.code = f.code;
      const run = state.autoBets[slot];
      // An auto-bet stops at the first refusal of one of its bets: it never
      // guesses what the player would want instead.
      if (run !== null && run.bet !== null && run.bet.ref === f.ref) {
        stopAutoBet(slot, "error", `Stopped: the server refused the bet. ${text}`);
      }
    } else if (kind === "chat") {
      $("chat-error").textContent = text;
    } else {
      toast(text);
    }
  },
};

function onFrame(frame) {
  limitsPanel.onFrame(frame); // web/limits.js: the player's own limits
  controls.onFrame(frame); // web/betcontrols.js: the bet limits, the last amounts
  const handler = handlers[frame.type];
  if (handler !== undefined) handler(frame); // frame types added later are ignored
  moderation.onFrame(frame); // roles, deleted lines, the moderator's answers (moderation.js)
}

function onStatus(status, detail) {
  const conn = $("conn");
  conn.dataset.state = status;
  if (status === "live") state.connLost = false;
  else if (status === "down") state.connLost = true;
  $("conn-lost").hidden = !state.connLost;
  $("stage").classList.toggle("offline", state.connLost);
  if (status === "live") conn.textContent = "live";
  else if (status === "connecting") conn.textContent = "connecting…";
  else {
    conn.textContent = `disconnected: retrying in ${(detail.retryInMs / 1000).toFixed(1)} s`;
    for (const slot of SLOTS) {
      stopAutoBet(slot, "disconnect", "Stopped: the connection to the server dropped.");
    }
    if (detail.code === 4002) {
      // Logged out on another tab or device: this token is revoked.
      localStorage.removeItem(TOKEN_KEY);
      loggedOut();
    }
  }
  renderBetPanels();
}

// The bet list is public (and shows at most the largest bets): it tells a
// page that came back mid-round about its own bet, which no personal frame repeats.
function adoptBetView(view) {
  const slot = slotOf(view);
  const mine = state.myBets[slot];
  const multiplier = view.multiplier === null ? null : hundredths(view.multiplier);
  if (mine === null || mine.roundId !== state.round.id) {
    const armed = sessionStorage.getItem(armedKey(state.round.id, slot));
    state.myBets[slot] = {
      roundId: state.round.id,
      amount: view.amount,
      autoCashout: armed === null ? null : Number(armed),
      status: view.status,
      multiplier,
      payout: view.payout,
    };
    showAdoptedBet(slot);
  } else if (mine.status === "open" && view.status !== "open") {
    Object.assign(mine, { status: view.status, multiplier, payout: view.payout });
    showAdoptedBet(slot);
  }
}

// What the server's frames say of this slot's bet, once the page comes back.
function showAdoptedBet(slot) {
  const mine = state.myBets[slot];
  if (mine.status === "cashed_out") {
    wonStatus(slot, "Cashed out", mine.multiplier, mine.amount, mine.payout);
  } else if (mine.status === "lost") {
    betStatus(slot, `Lost: your ${formatMoney(mine.amount)} fell with the pillar.`, "loss");
  } else {
    // The target is known only if this tab placed the bet (sessionStorage).
    const auto =
      mine.autoCashout === null
        ? ""
        : `, auto cash-out armed at ${formatMultiplier(mine.autoCashout)}`;
    betStatus(slot, `Bet of ${formatMoney(mine.amount)} placed for round #${mine.roundId}${auto}.`);
  }
}

function refunded(slot, roundId, amount) {
  state.myBets[slot].status = "refunded";
  betStatus(slot, `Round #${roundId} was voided: your ${formatMoney(amount)} is refunded.`);
}

function forgetOtherRounds(roundId) {
  for (const slot of SLOTS) {
    const mine = state.myBets[slot];
    if (mine !== null && mine.roundId !== roundId) state.myBets[slot] = null;
  }
}

function loggedOut() {
  for (const slot of SLOTS) stopAutoBet(slot, "logout", "Stopped: logged out.");
  state.me = null;
  state.token = null;
  state.balance = null;
  state.myBets = [null, null];
  stats.clear();
  renderAll();
}

// -- auto-bet ----------------------------------------------------------------------
// Each bet of a run is an ordinary `bet` frame with its own ref, sent by this
// page when a betting window opens; nothing runs on the server (README, "Browser client").

/** The balance not yet promised to a bet sent this round and not acknowledged yet. */
function uncommittedBalance() {
  let pending = 0;
  for (const run of state.autoBets) {
    if (run !== null && run.running && run.bet !== null && !run.bet.accepted) pending += run.stake;
  }
  return state.balance - pending;
}

function placeAutoBet(slot) {
  const run = state.autoBets[slot];
  const r = state.round;
  if (run === null || !run.running || run.bet !== null || r.phase !== "betting") return;
  const mine = state.myBets[slot];
  if (mine !== null && mine.roundId === r.id) return; // this slot has its bet this round
  if (state.me === null) return stopAutoBet(slot, "logout", "Stopped: logged out.");
  if (!socket.open) {
    return stopAutoBet(slot, "disconnect", "Stopped: the connection to the server dropped.");
  }
  const available = uncommittedBalance();
  if (run.stake > available) {
    return stopAutoBet(
      slot,
      "balance",
      `Stopped: the next bet, ${formatMoney(run.stake)}, is more than your balance, ${formatMoney(
        Math.max(0, available),
      )}.`,
    );
  }
  const betRef = ref("auto", slot);
  run.bet = { ref: betRef, roundId: r.id, accepted: false };
  socket.send({
    type: "bet",
    slot,
    amount: run.stake,
    auto_cashout: run.plan.autoCashout / 100,
    ref: betRef,
  });
  renderAutoBet(slot);
}

function settleAutoBet(slot, roundId) {
  const run = state.autoBets[slot];
  if (run === null || !run.running || run.bet === null || run.bet.roundId !== roundId) return;
  const mine = state.myBets[slot];
  if (!run.bet.accepted || mine === null || mine.roundId !== roundId) {
    stopAutoBet(slot, "error", `Stopped: the bet of round #${roundId} was never acknowledged.`);
    return;
  }
  const payout = mine.status === "cashed_out" ? mine.payout : 0;
  const reason = run.settle(mine.amount, payout);
  const profit = formatMoney(run.profit);
  if (reason === "profit") stopAutoBet(slot, reason, `Stopped: profit ${profit} reached.`);
  else if (reason === "loss") {
    stopAutoBet(slot, reason, `Stopped: loss of ${formatMoney(-run.profit)} reached.`);
  }
  else if (reason === "rounds") {
    stopAutoBet(slot, reason, `Done: ${run.played} rounds played, profit ${profit}.`);
  }
  renderAutoBet(slot);
}

function stopAutoBet(slot, reason, text) {
  const run = state.autoBets[slot];
  if (run === null || !run.running) return;
  run.stop(reason, text);
  renderAutoBet(slot);
  renderBetPanels();
}

/** The plan in a slot's auto-bet form, or a message saying what is wrong with it. */
function readAutoPlan(slot) {
  const value = (name) => part(name, slot).value.trim();
  const base = parseMoney(value("ab-base"));
  if (base === null || base === 0) return "Base bet: an amount like 1.00.";
  const autoCashout = parseMultiplier(value("ab-cashout"));
  if (autoCashout === null || autoCashout < 101) return "Auto cash-out: at least 1.01.";
  const onWin = parseRule(part("ab-win-mode", slot).value, value("ab-win-factor"));
  if (onWin === null) return "Win factor: a multiplier of at least 1.00, like 2.00.";
  const onLoss = parseRule(part("ab-loss-mode", slot).value, value("ab-loss-factor"));
  if (onLoss === null) return "Loss factor: a multiplier of at least 1.00, like 2.00.";
  const optional = (name) => (value(name) === "" ? null : parseMoney(value(name)));
  const stopProfit = optional("ab-stop-profit");
  const stopLoss = optional("ab-stop-loss");
  if ((value("ab-stop-profit") !== "" && stopProfit === null) || stopProfit === 0) {
    return "Stop on profit: an amount like 10.00, or leave it empty.";
  }
  if ((value("ab-stop-loss") !== "" && stopLoss === null) || stopLoss === 0) {
    return "Stop on loss: an amount like 10.00, or leave it empty.";
  }
  const rounds = /^\d{1,6}$/.test(value("ab-rounds")) ? Number(value("ab-rounds")) : 0;
  if (rounds < 1) return "Rounds: a whole number of at least 1.";
  return { base, autoCashout, onWin, onLoss, stopProfit, stopLoss, rounds };
}

function renderAutoBet(slot) {
  const run = state.autoBets[slot];
  const status = part("ab-status", slot);
  const running = run !== null && run.running;
  part("ab-start", slot).hidden = running;
  part("ab-stop", slot).hidden = !running;
  for (const input of part("ab-form", slot).querySelectorAll("input, select")) {
    input.disabled = running;
  }
  part("ab-start", slot).disabled = state.me === null || !socket.open;
  if (run === null) return;
  status.dataset.state = running ? "running" : "stopped";
  // The round of the run's acknowledged bet, while it is in play.
  status.dataset.betRound = run.bet !== null && run.bet.accepted ? String(run.bet.roundId) : "";
  status.dataset.played = String(run.played);
  status.dataset.profit = String(run.profit);
  if (running) {
    delete status.dataset.reason;
    status.className = "status";
    status.textContent =
      `Auto-bet: ${run.played} of ${run.plan.rounds} rounds, ` +
      `${run.bet === null ? "next" : "this"} bet ${formatMoney(run.stake)}, ` +
      `profit ${formatMoney(run.profit)}.`;
  } else {
    status.dataset.reason = run.stopped.reason;
    // Stopped as planned (or by the player): plain; stopped by a problem: in red.
    const planned = ["rounds", "profit", "user"].includes(run.stopped.reason);
    status.className = planned ? "status" : "status loss";
    status.textContent = run.stopped.text;
  }
}

// -- what the user does ----------------------------------------------------------

function requireSocket(errorId) {
  if (socket.open) return true;
  $(errorId).textContent = "Not connected to the server: reconnecting…";
  return false;
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

$("tab-login").addEventListener("click", () => showAuthTab("login"));
$("tab-register").addEventListener("click", () => showAuthTab("register"));

function showAuthTab(which) {
  $("tab-login").setAttribute("aria-selected", String(which === "login"));
  $("tab-register").setAttribute("aria-selected", String(which === "register"));
  $("login-form").hidden = which !== "login";
  $("register-form").hidden = which !== "register";
  $("auth-error").textContent = "";
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!requireSocket("auth-error")) return;
  const { username, password } = formValues(event.target);
  $("auth-error").textContent = "";
  socket.send({ type: "login", username: username.trim(), password, ref: ref("auth") });
});

$("register-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!requireSocket("auth-error")) return;
  const { username, email, password } = formValues(event.target);
  $("auth-error").textContent = "";
  socket.send({
    type: "register",
    username: username.trim(),
    email: email.trim(),
    password,
    ref: ref("auth"),
  });
});

$("logout").addEventListener("click", () => {
  // An auto-bet stops the moment the player asks to leave, not when the server answers.
  for (const slot of SLOTS) stopAutoBet(slot, "logout", "Stopped: logged out.");
  if (!socket.send({ type: "logout", ref: ref("auth") })) {
    localStorage.removeItem(TOKEN_KEY);
    loggedOut();
  }
});

// The two bet panels, one per slot, from one template.
for (const slot of SLOTS) {
  const panel = $("bet-panel-template").content.cloneNode(true);
  for (const node of panel.querySelectorAll("[data-part]")) node.id = `${node.dataset.part}-${slot}`;
  panel.querySelector("[data-part=bet-panel]").dataset.slot = String(slot);
  panel.querySelector("[data-part=slot-title]").textContent = `Bet ${slot + 1}`;
  $("bet-panels").append(panel);
  part("bet-form", slot).addEventListener("submit", (event) => {
    event.preventDefault();
    placeBet(slot);
  });
  part("cashout", slot).addEventListener("click", () => {
    part("bet-error", slot).textContent = "";
    if (!requireSocket(`bet-error-${slot}`)) return;
    socket.send({ type: "cashout", slot, ref: ref("cashout", slot) });
  });
  part("ab-form", slot).addEventListener("submit", (event) => {
    event.preventDefault();
    startAutoBet(slot);
  });
  part("ab-stop", slot).addEventListener("click", () => stopAutoBet(slot, "user", "Stopped."));
}
const controls = new BetControls({
  slots: SLOTS,
  part,
  send: (frame) => requireSocket(`bet-error-${frame.slot}`) && socket.send(frame),
  ref,
  balance: () => state.balance,
});

function placeBet(slot) {
  const error = part("bet-error", slot);
  error.textContent = "";
  const amount = parseMoney(part("amount", slot).value);
  if (amount === null || amount === 0) {
    error.textContent = "Amount: a number with at most two decimals, like 2.50.";
    return;
  }
  const autoText = part("auto", slot).value.trim();
  const auto = autoText === "" ? null : parseMultiplier(autoText);
  if (auto !== null && auto < 101) {
    error.textContent = "Auto cash-out: at least 1.01, or leave it empty.";
    return;
  }
  if (autoText !== "" && auto === null) {
    error.textContent = "Auto cash-out: a multiplier like 2.00, or leave it empty.";
    return;
  }
  if (!requireSocket(`bet-error-${slot}`)) return;
  socket.send({
    type: "bet",
    slot,
    amount,
    auto_cashout: auto === null ? null : auto / 100,
    ref: ref("bet", slot),
  });
}

function startAutoBet(slot) {
  const status = part("ab-status", slot);
  const plan = readAutoPlan(slot);
  if (typeof plan === "string") {
    status.textContent = plan;
    status.className = "status loss";
    status.dataset.state = "invalid";
    return;
  }
  if (state.me === null || !socket.open) return;
  state.autoBets[slot] = new AutoBetRun(plan);
  renderAutoBet(slot);
  renderBetPanels();
  placeAutoBet(slot); // at once if this round still takes bets
}

// A username anywhere (bets, chat, leaderboard) opens that player's profile.
document.addEventListener("click", (event) => {
  const link = event.target.closest(".user-link");
  if (link !== null) stats.openProfile(link.dataset.username);
});

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("chat-text");
  const text = input.value.trim();
  $("chat-error").textContent = "";
  if (text === "" || !requireSocket("chat-error")) return;
  socket.send({ type: "chat", text, ref: ref("chat") });
  input.value = "";
});

$("history").addEventListener("click", (event) => {
  const chip = event.target.closest(".chip");
  if (chip !== null) verifyPanel.openRound(Number(chip.dataset.roundId));
});

$("open-verify").addEventListener("click", () => verifyPanel.openBlank());

// -- panels ----------------------------------------------------------------------

function renderAll() {
  renderAccount();
  renderHistory();
  renderBets();
  renderGoal();
  renderBetPanels();
}

function renderPresence(presence) {
  const box = $("presence");
  box.hidden = presence === undefined || presence === null; // a server without presence
  if (box.hidden) return;
  box.textContent = `${presence.players} playing · ${presence.spectators} watching`;
  box.dataset.players = String(presence.players);
  box.dataset.spectators = String(presence.spectators);
}

function renderAccount() {
  const me = state.me;
  $("who").hidden = me === null;
  $("auth").hidden = me !== null;
  $("username").textContent = me?.username ?? "";
  const balance = $("balance");
  balance.textContent = state.balance === null ? "–" : formatMoney(state.balance);
  balance.dataset.cents = state.balance === null ? "" : String(state.balance);
  $("chat-text").disabled = me === null;
  $("chat-text").placeholder = me === null ? "Log in to chat" : "Say something (280 characters)";
  $("chat-form").querySelector("button").disabled = me === null;
  for (const item of $("chat").children) markOwnLine(item);
}

function renderBetPanels() {
  const r = state.round;
  const canPlay = state.me !== null && socket.open;
  $("bet-panels").hidden = state.me === null;
  for (const slot of SLOTS) {
    const held = state.myBets[slot];
    const mine = held !== null && held.roundId === r.id ? held : null;
    const auto = state.autoBets[slot] !== null && state.autoBets[slot].running;
    const bet = part("bet", slot);
    bet.disabled = !canPlay || r.phase !== "betting" || mine !== null || auto;
    bet.textContent = auto
      ? "Auto-bet is on"
      : r.phase === "betting"
        ? mine === null
          ? `Place bet ${slot + 1}`
          : mine.status === "cancelled"
            ? "Cancelled: next round"
            : "Bet placed"
        : "Betting opens next round";
    const cashout = part("cashout", slot);
    cashout.disabled =
      !canPlay || r.phase !== "running" || mine === null || mine.status !== "open";
    if (mine === null || mine.status !== "open" || !canPlay) {
      cashout.textContent = `Cash out bet ${slot + 1}`; // never a stale amount
    }
    controls.render(slot, canPlay && r.phase === "betting" && mine?.status === "open" && !auto);
    renderAutoBet(slot);
  }
}

function chipClass(crash) {
  if (crash < 120) return "bust";
  if (crash < 200) return "low";
  if (crash < 1000) return "good";
  return "big";
}

function renderHistory() {
  const chips = state.history
    .slice()
    .reverse()
    .map((h) => {
      const crash = hundredths(h.crash_point);
      const chip = element("button", `chip ${chipClass(crash)}`, formatMultiplier(crash));
      chip.type = "button";
      chip.dataset.roundId = String(h.round_id);
      chip.title = `Round #${h.round_id}: click to verify`;
      chip.setAttribute("aria-label", `Round ${h.round_id} crashed at ${formatMultiplier(crash)}`);
      return chip;
    });
  $("history").replaceChildren(...chips);
  fitChips();
}

// Only the chips that fit in the row whole are shown (and reached with Tab);
// the others would be cut off under "Verify a seed…".
function fitChips() {
  const chips = [...$("history").children];
  for (const chip of chips) chip.hidden = false;
  const row = chips[0]?.offsetTop;
  for (const chip of chips) chip.hidden = chip.offsetTop > row;
}

function renderBets() {
  const list = [...state.bets.values()].sort((a, b) => b.amount - a.amount);
  const rows = list.map((bet) => {
    const mine = state.me !== null && bet.user_id === state.me.id;
    const row = element("li", `${bet.status}${mine ? " me" : ""}`);
    row.dataset.userId = String(bet.user_id);
    row.dataset.slot = String(slotOf(bet));
    row.dataset.status = bet.status;
    const name = element("span", "name");
    name.append(userLink(bet.username));
    // A player's second bet of the round says so.
    if (slotOf(bet) === 1) name.append(element("span", "slot-tag", "2nd"));
    row.append(name, element("span", "amount", formatMoney(bet.amount)));
    let result = "…";
    if (bet.status === "cashed_out") {
      result = `${formatMultiplier(hundredths(bet.multiplier))}: won ${formatMoney(bet.payout)}`;
    } else if (bet.status === "lost") result = "lost";
    row.append(element("span", "result", result));
    return row;
  });
  if (state.betsMore > 0) {
    rows.push(element("li", "more", `and ${state.betsMore} smaller bet(s)`));
  }
  if (rows.length === 0) rows.push(element("li", "more", "No bets yet this round."));
  $("bets").replaceChildren(...rows);
  $("bets-count").textContent = list.length === 0 ? "" : `(${list.length + state.betsMore})`;
}

function renderGoal() {
  const goal = state.goal;
  const box = $("goal");
  if (goal === null) {
    box.replaceChildren(element("p", "muted", "No goal under way."));
    return;
  }
  const percent = Math.min(
    100,
    Math.floor((100 * goal.current_blocks) / Math.max(1, goal.target_blocks)),
  );
  const fill = element("div", "goal-fill");
  fill.style.width = `${percent}%`;
  const bar = element("div", "goal-bar");
  bar.append(fill);
  const numbers = element("div", "goal-numbers");
  numbers.append(
    element("span", "", `${goal.current_blocks} / ${goal.target_blocks} blocks`),
    goal.status === "completed"
      ? element("span", "goal-done", "completed")
      : element("span", "", `${percent}%`),
  );
  const reward = element("div", "goal-reward", `Reward: ${goal.reward}`);
  box.replaceChildren(element("div", "goal-name", goal.name), bar, numbers, reward);
  box.dataset.current = String(goal.current_blocks);
}

function addChatLine(line) {
  const list = $("chat");
  const atBottom = chatCue.atBottom();
  const item = element("li");
  Object.assign(item.dataset, { id: String(line.id), username: line.username }); // moderation.js
  // Read aloud as a sentence: "14:03 ada says: gl all".
  item.append(
    element("span", "time", clockTime(line.ts)),
    userLink(line.username, "from"),
    element("span", "sr-only", " says: "),
    element("span", "text", line.text),
  );
  markOwnLine(item);
  list.append(item);
  while (list.children.length > CHAT_KEPT) list.firstElementChild.remove();
  chatCue.added(atBottom);
}

// The player's own chat lines: class "mine" and a visible "you" tag.
function markOwnLine(item) {
  const mine = state.me !== null && item.dataset.username === state.me.username;
  item.classList.toggle("mine", mine);
  const tag = item.querySelector(".you-tag");
  if (mine && tag === null) {
    const you = element("span", "you-tag", "you");
    you.setAttribute("aria-hidden", "true"); // a cue to the eye; the name says who
    item.querySelector(".from").after(you);
  } else if (!mine && tag !== null) tag.remove();
}

// "Cashed out at 1.50x: won 7.50 (+2.50)": what came back, and the profit on the stake.
function wonStatus(slot, how, multiplier, amount, payout) {
  const profit = amount === null ? "" : ` (${formatSigned(payout - amount)})`;
  betStatus(slot, `${how} at ${formatMultiplier(multiplier)}: won ${formatMoney(payout)}${profit}.`, "win");
  const status = part("bet-status", slot);
  status.dataset.payout = String(payout);
  status.dataset.multiplier = String(multiplier);
}

function betStatus(slot, text, tone = "") {
  const status = part("bet-status", slot);
  status.textContent = text;
  status.className = `status ${tone}`;
  delete status.dataset.payout;
  delete status.dataset.multiplier;
}

let toastTimer = null;
/** The chat's last lines from /api/chat, when there are more than `shown`. */
async function loadChat(shown) {
  try {
    const response = await fetch("/api/chat", { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const { chat } = await response.json();
    // Lines that came meanwhile would be shown twice or lost: keep hello's then.
    if (chat.length <= shown || state.chatSinceHello > 0) return;
    $("chat").replaceChildren();
    chat.forEach(addChatLine);
  } catch {
    // Offline or refused: the lines from hello stay.
  }
}

/** Take the published chain and house edge; say so when they change under the player. */
function announceFairness(fairness) {
  const before = seeds.fairness;
  seeds.learnFairness(fairness);
  if (before === null) return;
  if (before.chain_id !== fairness.chain_id) {
    toast(`A new seed chain (#${fairness.chain_id}) is played from now on: see Verify.`);
  } else if (before.house_edge !== fairness.house_edge) {
    toast(`The house edge is now ${fairness.house_edge} %.`);
  }
}

function toast(text) {
  $("toast").textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => ($("toast").textContent = ""), 5000);
}

// -- the animation loop ----------------------------------------------------------------

// What to draw now: the multiplier (hundredths) and the unrounded height.
function current(now) {
  const r = state.round;
  if (r.phase === "crashed") return { m: r.crashPoint, height: r.crashPoint / 100 };
  if (r.phase !== "running") return { m: 100, height: 1 };
  const ahead = Math.min(now - r.tickAt, MAX_AHEAD_MS);
  r.shownElapsed = Math.max(r.shownElapsed, r.tickElapsed + ahead);
  const m = Math.max(multiplierAt(r.shownElapsed), r.tickM);
  return { m, height: Math.max(heightAt(r.shownElapsed), m / 100) };
}

const PHASES = {
  idle: "waiting for the first round",
  betting: "place your bets",
  running: "building",
  crashed: "collapsed",
};

const shown = {
  multiplier: "",
  integrity: "",
  countdown: "",
  phase: "",
  "cashout-0": "",
  "cashout-1": "",
};

function setText(id, text) {
  if (shown[id] !== text) {
    shown[id] = text;
    $(id).textContent = text;
  }
}

function frame(now) {
  const r = state.round;
  const { m, height } = current(now);
  const integrity = integrityAt(m);
  if (r.phase === "running") sound.climb(m);
  else sound.reset();
  const multiplier = $("multiplier");
  setText("multiplier", formatMultiplier(m));
  multiplier.dataset.hundredths = String(m);
  multiplier.classList.toggle("crashed", r.phase === "crashed");
  const mine = state.myBets.filter((bet) => bet !== null && bet.roundId === r.id);
  multiplier.classList.toggle(
    "cashed",
    mine.length > 0 && mine.every((bet) => bet.status === "cashed_out") && r.phase === "running",
  );
  setText("phase", state.connLost ? "connection lost — reconnecting…" : (PHASES[r.phase] ?? r.phase));
  $("phase").dataset.phase = r.phase;
  $("round").textContent = r.id === null ? "Round –" : `Round #${r.id}`;
  let countdown = "";
  if (r.phase === "betting") {
    countdown = `starts in ${(Math.max(0, r.bettingEndsAt - now) / 1000).toFixed(1)} s`;
  } else if (r.phase === "crashed" && r.crashPoint !== null) {
    countdown = `the pillar fell at ${formatMultiplier(r.crashPoint)}`;
  }
  setText("countdown", countdown);
  setText("integrity", `${(integrity / 100).toFixed(2)}%`);
  const fill = $("integrity-fill");
  fill.style.width = `${integrity / 100}%`;
  fill.classList.toggle("weak", integrity < 5000 && integrity >= 2500);
  fill.classList.toggle("critical", integrity < 2500);
  for (const slot of SLOTS) {
    const bet = state.myBets[slot];
    const key = `cashout-${slot}`;
    const live = !state.connLost && socket.open;
    if (live && bet?.roundId === r.id && bet.status === "open" && r.phase === "running") {
      const offer = payoutAt(bet.amount, m);
      setText(key, `Cash out bet ${slot + 1}: ${formatMoney(offer)}${controls.hint(slot)}`);
      $(key).dataset.offer = String(offer);
    } else {
      shown[key] = "";
    }
  }
  pillar.draw(
    {
      phase: r.phase,
      height,
      integrity: integrity / 10_000,
      crashHeight: r.crashPoint === null ? 1 : r.crashPoint / 100,
      crashedAt: r.crashedAt,
    },
    now,
  );
  requestAnimationFrame(frame);
}

// The canvas's size, and the overlay's (the scale stays under it), set the view's layout.
const stageSize = new ResizeObserver(() => {
  pillar.resize($("pillar").clientWidth, $("pillar").clientHeight);
});
stageSize.observe($("pillar"));
stageSize.observe(document.querySelector("#stage .overlay"));
new ResizeObserver(fitChips).observe($("history"));

renderAll();
socket.connect();
requestAnimationFrame(frame);
