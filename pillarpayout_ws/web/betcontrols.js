// Bet controls beside each bet panel (issue 20): ½, 2x, Min and Max by the
// amount, a Cancel button while the bet can still be taken back, the last
// amount and auto cash-out of each slot kept across reloads, and Space to
// cash out.
//
// Min and max are the server's (`hello.bet_limits`); max is also bounded by
// the balance. Space cashes out the first bet whose Cash out button is
// enabled, bet 1 before bet 2 (press it again for the other), and that button
// says so; it does nothing while the focus is in a field one types in.

import { formatMoney, hundredths, parseMoney } from "./format.js";

const lastKey = (slot) => `pillarpayout.last.${slot}`;

function button(text, part, slot, title) {
  const node = document.createElement("button");
  node.type = "button";
  node.textContent = text;
  node.id = `${part}-${slot}`;
  node.dataset.part = part;
  if (title) node.title = title;
  return node;
}

// Where a Space is the user's text, not a command.
function typing(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || target.closest("textarea, select") !== null) return true;
  const input = target.closest("input");
  return input !== null && !["button", "checkbox", "radio", "submit", "reset"].includes(input.type);
}

export class BetControls {
  /**
   * @param {object} hooks
   * @param {number[]} hooks.slots the bet slots
   * @param {(name: string, slot: number) => HTMLElement} hooks.part a panel's element
   * @param {(frame: object) => boolean} hooks.send sends a frame on the game socket
   * @param {(kind: string, slot: number) => string} hooks.ref a new ref
   * @param {() => number | null} hooks.balance the player's balance in cents
   */
  constructor({ slots, part, send, ref, balance }) {
    Object.assign(this, { slots, part, send, ref, balance });
    this.limits = null; // {min_bet, max_bet} from hello, cents
    for (const slot of slots) this.build(slot);
    document.addEventListener("keydown", (event) => this.key(event));
  }

  build(slot) {
    const amount = this.part("amount", slot);
    const tools = document.createElement("div");
    tools.className = "amount-tools";
    tools.setAttribute("role", "group");
    tools.setAttribute("aria-label", `Bet ${slot + 1} amount`);
    // Each gives the new amount, kept within [min, max] by the click.
    const steps = [
      ["½", "half", "Halve the amount", (cents) => Math.floor(cents / 2)],
      ["2x", "double", "Double the amount", (cents) => cents * 2],
      ["Min", "min", "The smallest bet", () => 0],
      ["Max", "max", "The largest bet your balance allows", () => Number.MAX_SAFE_INTEGER],
    ];
    for (const [text, name, title, step] of steps) {
      const node = button(text, `amount-${name}`, slot, title);
      node.addEventListener("click", () => {
        const cents = step(parseMoney(amount.value) ?? this.min());
        amount.value = formatMoney(Math.min(this.max(), Math.max(this.min(), cents)));
      });
      tools.append(node);
    }
    this.part("auto", slot).closest("label").after(tools);
    const cancel = button(`Cancel bet ${slot + 1}`, "cancel", slot);
    cancel.className = "cancel";
    cancel.hidden = true;
    cancel.addEventListener("click", () => {
      this.part("bet-error", slot).textContent = "";
      this.send({ type: "cancel_bet", slot, ref: this.ref("cancel", slot) });
    });
    this.part("cashout", slot).after(cancel);
    const last = this.last(slot);
    if (last !== null) {
      amount.value = formatMoney(last.amount);
      this.part("auto", slot).value = last.auto === null ? "" : (last.auto / 100).toFixed(2);
    }
  }

  min() {
    return this.limits?.min_bet ?? 1;
  }

  /** The largest bet: the server's maximum, and no more than the balance. */
  max() {
    const balance = this.balance() ?? Number.MAX_SAFE_INTEGER;
    return Math.max(this.min(), Math.min(this.limits?.max_bet ?? balance, balance));
  }

  last(slot) {
    try {
      const saved = JSON.parse(localStorage.getItem(lastKey(slot)) ?? "null");
      return Number.isSafeInteger(saved?.amount) ? saved : null;
    } catch {
      return null; // something else wrote the key
    }
  }

  onFrame(frame) {
    if (frame.type === "hello" && frame.bet_limits) this.limits = frame.bet_limits;
    // A bet placed by hand from this slot's form (not an auto-bet's): remembered.
    if (frame.type === "bet_accepted" && /^bet\d-/.test(frame.ref ?? "")) {
      const auto = frame.auto_cashout === null ? null : hundredths(frame.auto_cashout);
      localStorage.setItem(lastKey(frame.slot ?? 0), JSON.stringify({ amount: frame.amount, auto }));
    }
  }

  /** Show the slot's Cancel button while its bet can be taken back. */
  render(slot, cancellable) {
    this.part("cancel", slot).hidden = !cancellable;
  }

  /** The slot Space cashes out now, or null. */
  spaceSlot() {
    return this.slots.find((slot) => !this.part("cashout", slot).disabled) ?? null;
  }

  /** What the slot's Cash out button adds to its label: " (Space)" if Space is its key. */
  hint(slot) {
    return this.spaceSlot() === slot ? " (Space)" : "";
  }

  key(event) {
    if (event.code !== "Space" || event.repeat || typing(event.target)) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const slot = this.spaceSlot();
    if (slot === null) return;
    event.preventDefault(); // not also a click of the focused button, nor a scroll
    this.part("cashout", slot).click();
  }
}
