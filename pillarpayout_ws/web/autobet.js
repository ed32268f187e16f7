// Auto-bet: the rules of a betting run (base bet, what a win and a loss do to
// the next stake, when to stop), kept apart from the page so that they are
// plain arithmetic on cents. The page places each bet itself, as an ordinary
// `bet` frame with its own ref, and stops the run at once on an error for one
// of its bets, a disconnect or a logout (see README, "Browser client").

import { parseMultiplier } from "./format.js";

/** What a win or a loss does to the stake: back to the base, or times `factor`
 * (hundredths, at least 1.00x); null when the factor is not a multiplier. */
export function parseRule(mode, factorText) {
  if (mode === "reset") return { mode: "reset", factor: null };
  const factor = parseMultiplier(factorText);
  if (factor === null || factor < 100) return null;
  return { mode: "multiply", factor };
}

/**
 * A run of auto-bets for one slot.
 *
 * `plan`: {base, autoCashout (hundredths), onWin, onLoss (see parseRule),
 * stopProfit, stopLoss (cents or null), rounds (count)}.
 */
export class AutoBetRun {
  constructor(plan) {
    this.plan = plan;
    this.stake = plan.base; // the next bet, in cents
    this.profit = 0; // cents won (negative: lost) since the start
    this.played = 0; // rounds settled
    this.bet = null; // the bet of this round: {ref, roundId, accepted}
    this.stopped = null; // why the run ended: {reason, text}
  }

  get running() {
    return this.stopped === null;
  }

  /** The stake after a round that staked `stake` and was won or lost: floor(stake * factor). */
  static nextStake(plan, stake, won) {
    const rule = won ? plan.onWin : plan.onLoss;
    if (rule.mode === "reset") return plan.base;
    return Math.max(1, Math.floor((stake * rule.factor) / 100));
  }

  /** A round is over for our bet; returns the reason to stop, or null to go on. */
  settle(amount, payout) {
    const won = payout > 0;
    this.profit += payout - amount;
    this.played += 1;
    this.stake = AutoBetRun.nextStake(this.plan, amount, won);
    this.bet = null;
    const { stopProfit, stopLoss, rounds } = this.plan;
    if (stopProfit !== null && this.profit >= stopProfit) return "profit";
    if (stopLoss !== null && -this.profit >= stopLoss) return "loss";
    if (this.played >= rounds) return "rounds";
    return null;
  }

  stop(reason, text) {
    if (this.stopped === null) this.stopped = { reason, text };
    this.bet = null;
  }
}
