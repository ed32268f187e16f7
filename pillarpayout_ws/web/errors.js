// What an `error` frame says to a player: one sentence for every code the page
// can get (protocol.md, "Error codes"), money in units with thousands
// separators, never the server's wording in cents or field names.

import { formatMoney, formatMultiplier, parseMoney, parseMultiplier } from "./format.js";

// The numbers some messages carry (the configured bounds, a limit's amount):
// "amount must be between 10 and 1000000 cents" -> [10, 1000000].
const numbers = (message) => (message ?? "").match(/\d+(?:\.\d+)?/g) ?? [];
// The instant in "... until 2027-05-30 12:00 UTC" or "... resets 2026-12-01 00:00 UTC".
const instant = (message) => /\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/.exec(message ?? "")?.[0];

const SENTENCES = {
  // The frame itself was wrong: the page sent something it should not have.
  bad_frame: () => "The page sent something the server could not read: reload the page.",
  unknown_type: () => "The server does not know that request: reload the page.",
  invalid_amount: (m) => {
    const [low, high] = numbers(m);
    return /cents/.test(m ?? "") && high !== undefined
      ? `A bet is from ${formatMoney(Number(low))} to ${formatMoney(Number(high))}.`
      : "That amount cannot be bet: use a number like 2.50.";
  },
  invalid_auto_cashout: (m) => {
    const [low, high] = numbers(m).map(parseMultiplier);
    return high !== undefined && high !== null
      ? `Auto cash-out is from ${formatMultiplier(low)} to ${formatMultiplier(high)}, or empty.`
      : "Auto cash-out: a multiplier of at least 1.01x, or empty.";
  },
  invalid_slot: () => "That bet slot does not exist: reload the page.",
  invalid_username: () => "A username is 3 to 32 letters, digits, _ . or -.",
  invalid_email: () => "That email address does not look right.",
  invalid_password: () => "A password is 8 to 256 characters.",
  invalid_text: () => "A chat line is 1 to 280 characters of plain text.",
  invalid_minutes: () => "A mute lasts 1 to 43,200 minutes.",
  invalid_limit: () => "That limit is not one the server takes: check the amounts and days.",
  // The game refused a well-formed command.
  insufficient_funds: () => "Your balance is too low for this bet.",
  betting_closed: () => "Bets close when the pillar starts building: bet in the next round.",
  already_bet: (m) =>
    /cancelled/.test(m ?? "")
      ? "You cancelled this slot's bet this round: bet in the other slot, or in this one next round."
      : "This slot already has a bet this round.",
  ref_reused: () => "That bet was already sent in an earlier round: place it again.",
  no_active_bet: () => "You have no bet in this slot this round to cash out.",
  round_not_running: () => "The round has not started yet: cash out once the pillar builds.",
  round_crashed: () => "Too late: the pillar fell before your cash-out arrived.",
  self_excluded: (m) => `You excluded yourself from betting until ${instant(m) ?? "the date you chose"}.`,
  cooling_off: (m) => `You are cooling off: no bets until ${instant(m) ?? "the end you chose"}.`,
  limit_reached: (m) => {
    const which = /^(daily|weekly|monthly) (loss|wager)/.exec(m ?? "");
    const amount = parseMoney(numbers(m)[0] ?? "");
    const resets = instant(m);
    if (which === null || amount === null) return "This bet would pass a limit you set.";
    return (
      `This bet would pass your ${which[1]} ${which[2]} limit of ${formatMoney(amount)}` +
      (resets === undefined ? "." : `; it resets ${resets}.`)
    );
  },
  unknown_account: () => "Your account is not loaded yet: log in again.",
  // Account and server.
  auth_required: () => "Log in first: spectators can only watch.",
  invalid_credentials: () => "Wrong username or password.",
  username_taken: () => "That username is taken.",
  email_taken: () => "That email already has an account.",
  invalid_session: () => "Your session has ended: log in again.",
  rate_limited: () => "Too fast: wait a moment and try again.",
  busy: () => "The server is busy with other logins: try again in a moment.",
  shutting_down: () => "The server is restarting: bets resume in a moment.",
  unavailable: () => "The server's storage is busy or down: try again in a moment.",
  internal_error: () => "The server failed on that request: try again.",
  read_only: () => "This is a watch-only copy of the game: play on the game's own page.",
  // Moderation.
  forbidden: () => "You may not do that.",
  unknown_user: () => "No player has that name.",
  unknown_chat: () => "That chat line is gone already.",
  muted: (m) => {
    const [minutes] = numbers(m);
    return minutes === undefined
      ? "You are muted for now."
      : `You are muted for ${minutes} more minute${minutes === "1" ? "" : "s"}.`;
  },
  banned: () => "This account is banned.",
};

// A `cancel_bet` refused for the same reasons as a cash-out needs other words.
const CANCEL_SENTENCES = {
  no_active_bet: () => "There is no bet in this slot this round to cancel.",
  betting_closed: () => "Too late to cancel: the pillar has started building.",
};

/** A player's sentence for an `error` frame ({code, message}) answering a request of `kind`. */
export function errorSentence(frame, kind = "") {
  const sentence = (kind === "cancel" ? CANCEL_SENTENCES : SENTENCES)[frame.code] ?? SENTENCES[frame.code];
  return sentence === undefined ? "The server refused that: try again." : sentence(frame.message);
}

/** Every code this module has a sentence for (the tests check protocol.md's against it). */
export const KNOWN_CODES = Object.keys(SENTENCES);
