// Provable fairness in the browser: the formulas of pillarpayout_ws/engine/fairness.py.
//
//   d     = HMAC_SHA256(key = client_seed as ASCII, msg = bytes of the server_seed hex)
//   X     = int(first 13 hex digits of d, 16) / 2**52
//   crash = max(1.00, floor((100 - edge) / (1 - X)) / 100)
//   seed_hash = sha256(bytes of the server_seed hex); it is also the seed of the
//               round played just before (the seed chain).
//
// Computed in IEEE doubles as the server does (and bustabit's verifier), so the
// results agree bit for bit. WebCrypto does the hashing wherever the page is a
// secure context (https, localhost, 127.0.0.1); elsewhere (a phone opening
// http://192.168.x.y:8765/) crypto.subtle does not exist and the small SHA-256
// below does it instead. `{ webCrypto: false }` forces it, so both can be tested.

const subtle = globalThis.crypto?.subtle;

/** "00ff" -> Uint8Array [0, 255]; throws a readable Error for anything else. */
export function hexToBytes(hex) {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) {
    throw new Error("the server seed must be hexadecimal digits, two per byte");
  }
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.substr(2 * i, 2), 16);
  return bytes;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function asciiBytes(text) {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 127) throw new Error("the client seed must be ASCII");
    bytes[i] = code;
  }
  return bytes;
}

export async function sha256(bytes, { webCrypto = true } = {}) {
  if (webCrypto && subtle) return new Uint8Array(await subtle.digest("SHA-256", bytes));
  return sha256Plain(bytes);
}

export async function hmacSha256(key, message, { webCrypto = true } = {}) {
  // WebCrypto refuses an empty HMAC key; the formula allows it (Python's hmac does).
  if (webCrypto && subtle && key.length > 0) {
    const k = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]);
    return new Uint8Array(await subtle.sign("HMAC", k, message));
  }
  return hmacPlain(key, message);
}

/** The crash point in hundredths (374 = 3.74x) of a round, as the server computes it. */
export async function crashPoint(serverSeed, clientSeed, houseEdge = 1, options = {}) {
  if (!(houseEdge >= 0 && houseEdge < 100)) {
    throw new Error("the house edge must be a percentage from 0 up to 100");
  }
  const d = await hmacSha256(asciiBytes(clientSeed), hexToBytes(serverSeed), options);
  // 52 bits: the first 6 bytes (48 bits, exact in a double), then the 7th byte's high half.
  let n = 0;
  for (let i = 0; i < 6; i++) n = n * 256 + d[i];
  n = n * 16 + (d[6] >> 4);
  const x = n / 2 ** 52;
  return Math.max(100, Math.floor((100 - houseEdge) / (1 - x)));
}

/** sha256 of the seed's bytes, lowercase hex: the round's published seed_hash. */
export async function seedHash(serverSeed, options = {}) {
  return toHex(await sha256(hexToBytes(serverSeed), options));
}

// -- SHA-256 without WebCrypto (FIPS 180-4) -----------------------------------

const K = new Uint32Array(64);
const H0 = new Uint32Array(8);
{
  // The constants are the fractional parts of the cube (K) and square (H0) roots
  // of the first primes; a double carries them with bits to spare.
  const fraction = (x) => ((x - Math.floor(x)) * 2 ** 32) >>> 0;
  const primes = [];
  for (let n = 2; primes.length < 64; n++) if (primes.every((p) => n % p !== 0)) primes.push(n);
  primes.forEach((p, i) => {
    K[i] = fraction(Math.cbrt(p));
    if (i < 8) H0[i] = fraction(Math.sqrt(p));
  });
}

const ror = (x, n) => (x >>> n) | (x << (32 - n));

function sha256Plain(data) {
  const blocks = new Uint8Array(((data.length + 9 + 63) >> 6) << 6);
  blocks.set(data);
  blocks[data.length] = 0x80;
  const view = new DataView(blocks.buffer);
  view.setUint32(blocks.length - 8, Math.floor(data.length / 2 ** 29));
  view.setUint32(blocks.length - 4, (data.length * 8) >>> 0);
  const h = H0.slice();
  const w = new Uint32Array(64);
  for (let offset = 0; offset < blocks.length; offset += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(offset + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 =
        (hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const t2 = ((ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    [a, b, c, d, e, f, g, hh].forEach((x, i) => (h[i] += x));
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  h.forEach((x, i) => outView.setUint32(4 * i, x));
  return out;
}

function hmacPlain(key, message) {
  const block = new Uint8Array(64);
  block.set(key.length > 64 ? sha256Plain(key) : key);
  const inner = new Uint8Array(64 + message.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    inner[i] = block[i] ^ 0x36;
    outer[i] = block[i] ^ 0x5c;
  }
  inner.set(message, 64);
  outer.set(sha256Plain(inner), 64);
  return sha256Plain(outer);
}
