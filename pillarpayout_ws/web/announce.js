// What a screen reader hears of the game: the phase changes and the crash, in
// one polite live region. Never every tick: at most one announcement per
// MIN_GAP_MS, and what comes meanwhile is said together with the next one.

const MIN_GAP_MS = 1500;

export class Announcer {
  constructor() {
    this.region = document.createElement("div");
    this.region.id = "announce";
    this.region.className = "sr-only";
    this.region.setAttribute("aria-live", "polite");
    this.region.setAttribute("aria-atomic", "true");
    document.body.append(this.region);
    this.lastAt = -Infinity;
    this.waiting = []; // sentences held back by the rate limit, oldest first
    this.timer = null;
  }

  /** Say `sentence` now, or with the next announcement if one was made just now. */
  say(sentence) {
    this.waiting.push(sentence);
    if (this.timer !== null) return;
    const wait = this.lastAt + MIN_GAP_MS - performance.now();
    if (wait <= 0) this.flush();
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  flush() {
    this.timer = null;
    this.lastAt = performance.now();
    this.region.textContent = this.waiting.join(" ");
    this.waiting = [];
  }
}
