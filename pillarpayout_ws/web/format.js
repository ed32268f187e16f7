// Money is integer cents and multipliers are integer hundredths, as on the
// wire and in the engine: no float ever holds money here.

const pad2 = (n) => String(n).padStart(2, "0");

/** 1250 -> "12.50", -5 -> "-0.05". */
export function formatMoney(cents) {
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${pad2(abs % 100)}`;
}

/** 235 -> "2.35x". */
export function formatMultiplier(hundredths) {
  return `${Math.floor(hundredths / 100)}.${pad2(hundredths % 100)}x`;
}

/** A wire multiplier (2.35, at most two decimals) in hundredths (235). */
export function hundredths(wireNumber) {
  return Math.round(wireNumber * 100);
}

// Digits with at most two decimals, in hundredths: "12.5" -> 1250, "2" -> 200.
function parseTwoDecimals(text) {
  const match = /^(\d{1,12})(?:[.,](\d{1,2}))?$/.exec(text.trim());
  if (match === null) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? "0").padEnd(2, "0"));
}

/** "12.5" or "12,50" -> 1250 cents; null unless a plain amount with at most two decimals. */
export function parseMoney(text) {
  return parseTwoDecimals(text);
}

/** "2.1" or "2.1x" -> 210 hundredths; null unless a number with at most two decimals. */
export function parseMultiplier(text) {
  return parseTwoDecimals(text.trim().replace(/x$/i, ""));
}

/** What a cashout at `multiplier` (hundredths) pays for `amount` cents: floor(amount * m). */
export function payoutAt(amount, multiplier) {
  return Math.floor((amount * multiplier) / 100);
}

/** "14:03" from Unix seconds. */
export function clockTime(ts) {
  const d = new Date(ts * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}
