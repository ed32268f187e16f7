// The verify dialog, and what the page knows about each round's seed.
//
// A round's seed is revealed in its `crashed` frame. The rounds form one seed
// chain: the seed_hash published for round R+1 (in `betting` or `hello`) IS the
// seed of round R, and hashing a round's seed gives the seed of the round
// before. So from one known seed the page can work out the seeds of the rounds
// before it in its history without asking the server.
//
// The chain's salt (client seed) and the house edge are published in `hello`
// (`fairness`), in every `betting` (the edge) and in a `fairness` frame when
// they change; any past round can be loaded by its id from /api/rounds/ID.

import { formatMultiplier, hundredths } from "./format.js";
import { crashPoint, hexToBytes, seedHash, sha256, toHex } from "./verify.js";

const CHAIN_REACH = 200; // how many rounds back the page hashes down to find a seed

export class RoundSeeds {
  constructor() {
    this.revealed = new Map(); // round id -> server seed from its `crashed` frame
    this.published = new Map(); // round id -> seed_hash published before it ran
    this.crashPoints = new Map(); // round id -> crash point (hundredths) the server played
    this.houseEdges = new Map(); // round id -> house edge (percent) published for it
    this.clientSeed = null; // the chain's public salt (hello's fairness, or a crash)
    this.houseEdge = 1; // the current chain's house edge, percent
    this.fairness = null; // the latest published `fairness`
  }

  /** The chain being played, as `hello` and `fairness` frames publish it. */
  learnFairness(fairness) {
    this.fairness = fairness;
    this.clientSeed = fairness.client_seed;
    this.houseEdge = fairness.house_edge;
  }

  edgeOf(roundId) {
    return this.houseEdges.get(roundId) ?? this.houseEdge;
  }

  /** The seed of `roundId` directly known: revealed, or published as the next round's hash. */
  direct(roundId) {
    if (this.revealed.has(roundId)) return { seed: this.revealed.get(roundId), how: "revealed" };
    if (this.published.has(roundId + 1)) {
      return { seed: this.published.get(roundId + 1), how: "next" };
    }
    return null;
  }

  /** {seed, how, from} for `roundId`, hashing down from a later round if need be; or null. */
  async seedOf(roundId) {
    const known = this.direct(roundId);
    if (known !== null) return { ...known, from: roundId };
    for (let later = roundId + 1; later <= roundId + CHAIN_REACH; later++) {
      const found = this.direct(later);
      if (found === null) continue;
      let seed = found.seed;
      for (let r = later; r > roundId; r--) seed = toHex(await sha256(hexToBytes(seed)));
      return { seed, how: "chain", from: later };
    }
    return null;
  }

  /** Forget rounds before `roundId`, so a page left open for days stays small. */
  forgetBefore(roundId) {
    for (const map of [this.revealed, this.published, this.crashPoints, this.houseEdges]) {
      for (const key of map.keys()) if (key < roundId) map.delete(key);
    }
  }

  /** The round whose published seed_hash is `hash`, if the page saw it. */
  roundWithHash(hash) {
    for (const [roundId, published] of this.published) if (published === hash) return roundId;
    return null;
  }
}

const $ = (id) => document.getElementById(id);

export class VerifyPanel {
  constructor(seeds) {
    this.seeds = seeds;
    this.dialog = $("verify");
    this.roundId = null; // the round opened from the history bar; null for a pasted seed
    this.runs = 0; // a newer verification makes an older one's late answer void
    $("v-run").addEventListener("click", () => this.verify());
    $("v-load").addEventListener("click", () => {
      const id = Number($("v-round-id").value.trim());
      if (Number.isInteger(id) && id > 0) this.openRound(id);
      else this.verdict(null, "A round number is a whole number, like 42.");
    });
    $("v-close").addEventListener("click", () => this.dialog.close());
    $("verify-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.verify();
    });
  }

  /** Open the dialog on a round (of the history bar, or by its number) and verify it
   * at once: from the server's published record, else from what the page saw. */
  async openRound(roundId) {
    this.roundId = roundId;
    this.clear("working"); // nothing of the round shown before stays while this one loads
    $("v-round-id").value = String(roundId);
    this.show();
    const record = await publishedRound(roundId);
    if (record !== null && record.status === "crashed") {
      this.seeds.crashPoints.set(roundId, hundredths(record.crash_point));
      this.seeds.published.set(roundId, record.seed_hash);
      this.seeds.houseEdges.set(roundId, record.house_edge);
    }
    const claimed = this.seeds.crashPoints.get(roundId);
    $("v-round").textContent =
      `Round #${roundId}` +
      (claimed === undefined ? "" : `: the pillar fell at ${formatMultiplier(claimed)}`);
    if (record !== null && record.status === "crashed") {
      $("v-seed").value = record.server_seed;
      $("v-client").value = record.client_seed;
      $("v-source").textContent =
        `Seed, client seed and house edge from the server's published record (/api/rounds/${roundId}).`;
    } else {
      const known = await this.seeds.seedOf(roundId);
      $("v-seed").value = known?.seed ?? "";
      $("v-client").value = this.seeds.clientSeed ?? "";
      $("v-source").textContent =
        record === null
          ? describe(known, roundId, this.seeds.clientSeed)
          : `Round #${roundId} has not crashed: its seed is not public yet.`;
    }
    $("v-edge").value = String(this.seeds.edgeOf(roundId));
    await this.verify();
  }

  /** Open the dialog empty, for any seed pasted in. */
  openBlank() {
    this.roundId = null;
    $("v-round").textContent = "Paste a server seed and its client seed, or load a round.";
    $("v-seed").value = "";
    $("v-round-id").value = "";
    $("v-client").value = this.seeds.clientSeed ?? "";
    $("v-edge").value = String(this.seeds.houseEdge);
    $("v-source").textContent = "";
    this.clear("idle");
    this.show();
    $("v-seed").focus();
  }

  show() {
    if (!this.dialog.open) this.dialog.showModal();
  }

  /** A round's seed became known while its dialog was open: fill it in. */
  async seedArrived(roundId) {
    if (this.dialog.open && this.roundId === roundId && $("v-seed").value === "") {
      await this.openRound(roundId);
    }
  }

  clear(state) {
    for (const id of ["v-computed", "v-claimed", "v-hash", "v-published"]) $(id).textContent = "–";
    $("v-verdict").textContent = "";
    $("v-verdict").className = "verdict";
    $("v-result").dataset.state = state;
    $("v-result").dataset.ok = "";
  }

  async verify() {
    const run = ++this.runs;
    const seed = $("v-seed").value.trim().toLowerCase();
    const client = $("v-client").value.trim();
    const edge = Number($("v-edge").value.trim().replace(",", "."));
    this.clear("working");
    if (seed === "") {
      this.verdict(null, "No seed to check yet: paste the round's server seed.");
      return;
    }
    if (client === "") {
      this.verdict(null, "The client seed is needed: every crash reveals it, or paste it.");
      return;
    }
    let computed, hash;
    try {
      computed = await crashPoint(seed, client, edge);
      hash = await seedHash(seed);
    } catch (error) {
      if (run === this.runs) this.verdict(false, error.message, "error");
      return;
    }
    if (run !== this.runs) return;
    const roundId = this.roundId ?? this.seeds.roundWithHash(hash);
    const claimed = roundId === null ? undefined : this.seeds.crashPoints.get(roundId);
    const published = roundId === null ? undefined : this.seeds.published.get(roundId);
    $("v-computed").textContent = formatMultiplier(computed);
    $("v-claimed").textContent = claimed === undefined ? "not known" : formatMultiplier(claimed);
    $("v-hash").textContent = hash;
    $("v-published").textContent = published ?? "not seen by this page";
    const crashOk = claimed === undefined ? null : computed === claimed;
    const hashOk = published === undefined ? null : hash === published;
    if (crashOk === false || hashOk === false) {
      const what = crashOk === false ? "crash point" : "seed_hash";
      this.verdict(
        false,
        `Does not match: this seed does not give the ${what} the server published.`,
      );
    } else if (crashOk) {
      const also = hashOk ? ", and it hashes to the seed_hash published before the round" : "";
      this.verdict(true, `Matches: this seed gives the crash point the server played${also}.`);
    } else {
      this.verdict(
        null,
        "Computed. The page knows no crash point played with this seed to compare.",
      );
    }
  }

  verdict(ok, text, state = "done") {
    $("v-verdict").textContent = text;
    $("v-verdict").className = `verdict ${ok === true ? "ok" : ok === false ? "bad" : ""}`;
    $("v-result").dataset.state = state;
    $("v-result").dataset.ok = ok === null ? "" : String(ok);
  }
}

/** The server's record of a round, or null (unknown, or the server cannot be asked). */
async function publishedRound(roundId) {
  try {
    const response = await fetch(`/api/rounds/${roundId}`, { headers: { Accept: "application/json" } });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

function describe(known, roundId, clientSeed) {
  const salt =
    clientSeed === null ? " The client seed is learnt at the next crash; or paste it." : "";
  if (known === null) {
    return (
      "This page has not seen this round's seed: it is revealed when a round crashes. Paste it." +
      salt
    );
  }
  if (known.how === "revealed")
    return "Seed revealed by the server when this round crashed." + salt;
  const how =
    known.how === "next"
      ? `Seed taken from round #${roundId + 1}'s published seed_hash`
      : `Seed worked out by hashing round #${known.from}'s seed ${known.from - roundId} time(s)`;
  return `${how} down the seed chain; if a new chain began since, paste the round's own seed.${salt}`;
}
