// The pillar's growth curve, the same formulas as pillarpayout_ws/engine/growth.py,
// so the page can draw the multiplier between the server's ticks.
//
// m(t) = floor(100 * e^(0.00006 * t_ms)) hundredths; integrity = floor(1_000_000 / m)
// hundredths of a percent. The engine takes the floor of the exact value; a float
// exp can differ from it in the last bit, which would show one hundredth off for a
// frame at an exact boundary. Every tick carries the server's m and corrects it.

export const GROWTH_RATE = 0.00006; // per millisecond

/** The multiplier in hundredths after `elapsedMs` of running (100 at 0). */
export function multiplierAt(elapsedMs) {
  if (elapsedMs <= 0) return 100;
  return Math.floor(100 * Math.exp(GROWTH_RATE * elapsedMs));
}

/** The unrounded multiplier (1.0 at 0): what the pillar's height follows. */
export function heightAt(elapsedMs) {
  return Math.exp(GROWTH_RATE * Math.max(0, elapsedMs));
}

/** Integrity in hundredths of a percent at `multiplier` hundredths (10000 at 1.00x). */
export function integrityAt(multiplier) {
  return Math.floor(1_000_000 / Math.max(100, multiplier));
}
