// The "Limits" panel: limits a player sets on themselves (protocol.md,
// `set_limits` and `limits`). Tightening applies at once; raising or removing a
// limit waits 24 hours and is shown as pending. A cool-off and a self-exclusion
// cannot be ended early, so both ask for confirmation first.
//
// app.js only hands this module every frame (`panel.onFrame`) and a way to send
// one; the panel builds its own DOM after the bet panel.

import { errorSentence } from "./errors.js";
import { formatMoney, parseMoney } from "./format.js";

const NAMES = [
  ["daily_loss", "Daily loss"],
  ["weekly_loss", "Weekly loss"],
  ["monthly_loss", "Monthly loss"],
  ["daily_wager", "Daily wager"],
  ["weekly_wager", "Weekly wager"],
  ["monthly_wager", "Monthly wager"],
];

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

const when = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 16) + " UTC";

export class LimitsPanel {
  /**
   * @param {(frame: object) => boolean} send sends one frame to the server
   * @param {(kind: string) => string} ref a new frame ref
   */
  constructor(send, ref) {
    this.send = send;
    this.ref = ref;
    this.refs = new Set();
    this.inputs = new Map();
    this.section = el("section", {
      id: "limits-panel",
      className: "panel limits",
      hidden: true,
      ariaLabel: "Your limits",
    });
    const rows = NAMES.map(([name, label]) => {
      const input = el("input", {
        id: `limit-${name}`,
        inputMode: "decimal",
        placeholder: "none",
        size: 8,
      });
      this.inputs.set(name, input);
      const shown = el("span", { className: "muted", id: `limit-${name}-shown` });
      return el("tr", {}, [
        el("th", { textContent: label }),
        el("td", {}, [input]),
        el("td", {}, [shown]),
      ]);
    });
    this.status = el("p", { className: "status", role: "status", id: "limits-status" });
    this.error = el("p", { className: "error", role: "alert", id: "limits-error" });
    this.cool = el("input", { id: "limits-cool", type: "number", min: 1, max: 42, size: 4 });
    this.exclude = el("input", { id: "limits-exclude", type: "number", min: 6, size: 4 });
    const save = el("button", { type: "submit", className: "primary", textContent: "Save limits" });
    const form = el("form", { id: "limits-form" }, [
      el("table", {}, [el("tbody", {}, rows)]),
      el("p", { className: "muted", textContent: "Amounts in currency units; empty: no limit." }),
      save,
    ]);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveLimits();
    });
    const coolButton = el("button", { type: "button", textContent: "Cool off" });
    coolButton.addEventListener("click", () => this.block("cool_off_days", this.cool, "days"));
    const excludeButton = el("button", { type: "button", textContent: "Exclude me" });
    excludeButton.addEventListener("click", () =>
      this.block("self_exclusion_months", this.exclude, "months"),
    );
    this.section.append(
      el("h2", { textContent: "Limits" }),
      form,
      el("p", {}, [
        el("label", { textContent: "Cool-off, days (1-42) " }, [this.cool]),
        coolButton,
      ]),
      el("p", {}, [
        el("label", { textContent: "Self-exclusion, months (6+) " }, [this.exclude]),
        excludeButton,
      ]),
      this.status,
      this.error,
    );
    const after = document.getElementById("bet-panel");
    if (after !== null) after.after(this.section);
    else document.body.append(this.section);
  }

  sendFrame(frame) {
    const r = this.ref("limits");
    this.refs.add(r);
    this.error.textContent = "";
    if (!this.send({ ...frame, ref: r })) this.error.textContent = "Not connected.";
  }

  saveLimits() {
    const limits = {};
    for (const [name, input] of this.inputs) {
      const text = input.value.trim();
      if (text === "") {
        if (input.dataset.current !== "") limits[name] = null;
        continue;
      }
      const cents = parseMoney(text);
      if (cents === null || cents <= 0) {
        this.error.textContent = `${name.replace("_", " ")}: an amount like 50.00, or empty.`;
        return;
      }
      limits[name] = cents;
    }
    this.sendFrame({ type: "set_limits", limits });
  }

  block(field, input, unit) {
    const n = Number(input.value);
    if (!Number.isInteger(n) || n <= 0) {
      this.error.textContent = `Enter a whole number of ${unit}.`;
      return;
    }
    if (!confirm(`No bets for ${n} ${unit}. This cannot be undone early. Continue?`)) return;
    this.sendFrame({ type: "set_limits", [field]: n });
  }

  render(f) {
    for (const [name, input] of this.inputs) {
      const limit = f.limits[name];
      const current = limit.amount === null ? "" : formatMoney(limit.amount);
      input.value = current;
      input.dataset.current = current;
      const used = f.usage[name];
      let text = limit.amount === null ? "" : `used ${formatMoney(used ?? 0)}`;
      if (limit.pending) {
        const to = limit.pending_amount === null ? "none" : formatMoney(limit.pending_amount);
        text += ` · ${to} from ${when(limit.effective_at_ms)}`;
      }
      document.getElementById(`limit-${name}-shown`).textContent = text;
    }
    const notes = [];
    if (f.self_excluded_until_ms !== null) {
      notes.push(`Self-excluded until ${when(f.self_excluded_until_ms)}.`);
    }
    if (f.cool_off_until_ms !== null) notes.push(`Cooling off until ${when(f.cool_off_until_ms)}.`);
    this.status.textContent = notes.join(" ");
  }

  /** Every frame from the server passes here (app.js's onFrame). */
  onFrame(f) {
    if (f.type === "session") {
      this.section.hidden = false;
      this.sendFrame({ type: "limits" });
    } else if (f.type === "logged_out") {
      this.section.hidden = true;
    } else if (f.type === "limits") {
      this.refs.delete(f.ref);
      this.render(f);
    } else if (f.type === "error" && this.refs.has(f.ref)) {
      this.refs.delete(f.ref);
      this.error.textContent = errorSentence(f);
    }
  }
}
