// Money is integer cents and multipliers are integer hundredths, as on the
// wire and in the engine: no float ever holds money here.

const pad2 = (n) => String(n).padStart(2, "0");
// 1234567 -> "1,234,567".
const grouped = (n) => String(n).replace(/\B(?=(\d{3})+$)/g, ",");

/** 1250 -> "12.50", 123456789 -> "1,234,567.89", -5 -> "-0.05". */
export function formatMoney(cents) {
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  return `${sign}${grouped(Math.floor(abs / 100))}.${pad2(abs % 100)}`;
}

/** A signed amount: 250 -> "+2.50", -250 -> "-2.50", 0 -> "±0.00". */
export function formatSigned(cents) {
  return `${cents > 0 ? "+" : cents === 0 ? "±" : ""}${formatMoney(cents)}`;
}

/** 235 -> "2.35x", 1234500 -> "12,345.00x". */
export function formatMultiplier(hundredths) {
  return `${grouped(Math.floor(hundredths / 100))}.${pad2(hundredths % 100)}x`;
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

/** "12.5", "12,50" or "1,234.50" -> cents; null unless a plain amount with at most
 * two decimals (thousands separators allowed, as formatMoney writes them). */
export function parseMoney(text) {
  const grouped = /^\s*\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?\s*$/.test(text);
  return parseTwoDecimals(grouped ? text.replaceAll(",", "") : text);
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
