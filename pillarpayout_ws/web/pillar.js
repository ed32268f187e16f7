// The pillar on a canvas: one block per 0.10x above 1.00x (the blocks a round
// adds to the community goal), cracks and sway as its integrity falls, and a
// collapse when the round crashes. Drawing is a pure function of what the page
// knows and the time, so a page that joins after a crash draws the rubble.

const GROUND = 28; // px of ground under the pillar
const MAX_BLOCK = 26;
const MIN_BLOCK = 3;
const GRAVITY = 2600; // px/s²
const LABELS = [1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000];

// A fixed pseudo-random number in [0, 1) for block i and purpose k: the same
// block keeps its jitter and cracks from frame to frame.
function noise(i, k) {
  const x = Math.sin(i * 127.1 + k * 311.7) * 43758.5453;
  return x - Math.floor(x);
}

export class PillarView {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.width = 0;
    this.height = 0;
    this.rubble = null; // the pieces of the last collapse
  }

  resize(width, height) {
    const ratio = window.devicePixelRatio || 1;
    this.width = width;
    this.height = height;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    this.ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  }

  // Where blocks sit for a pillar `height` (1.0 = no blocks): block size, the
  // camera's lift when even the smallest blocks do not fit, and the count.
  layout(height) {
    const count = Math.max(0, (height - 1) * 10);
    // The multiplier is written over the top of the stage: keep the pillar under it.
    const usable = this.height - GROUND - Math.min(150, this.height * 0.38);
    const block = Math.max(MIN_BLOCK, Math.min(MAX_BLOCK, usable / Math.max(12, count + 2)));
    const lift = Math.max(0, count * block - usable);
    const width = Math.min(120, Math.max(48, this.width * 0.22));
    return { count, block, lift, width, base: this.height - GROUND + lift };
  }

  /**
   * view: {phase, height: unrounded multiplier (1.0 up), integrity: 0..1,
   *        crashHeight, crashedAt: performance.now() of the crash or null}
   */
  draw(view, now) {
    const { ctx, width: w, height: h } = this;
    if (w === 0 || h === 0) return;
    ctx.clearRect(0, 0, w, h);
    const sky = ctx.createLinearGradient(0, 0, 0, h);
    sky.addColorStop(0, "#0b1020");
    sky.addColorStop(1, "#1b2440");
    ctx.fillStyle = sky;
    ctx.fillRect(0, 0, w, h);

    const crashed = view.phase === "crashed" && view.crashedAt !== null;
    const shown = crashed ? view.crashHeight : view.phase === "running" ? view.height : 1;
    const lay = this.layout(shown);
    this.drawScale(lay);
    if (crashed) {
      if (this.rubble === null || this.rubble.at !== view.crashedAt) {
        this.rubble = { at: view.crashedAt, pieces: this.pieces(lay) };
      }
      this.drawCollapse(lay, (now - view.crashedAt) / 1000);
    } else {
      this.rubble = null;
      this.drawPillar(lay, view.integrity, now);
    }
    ctx.fillStyle = "#2a2f3d";
    ctx.fillRect(0, h - GROUND, w, GROUND);
    ctx.fillStyle = "#3b4255";
    ctx.fillRect(0, h - GROUND, w, 3);
  }

  drawScale(lay) {
    const { ctx, width: w } = this;
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (const m of LABELS) {
      const y = lay.base - (m - 1) * 10 * lay.block;
      if (y < 10 || y > this.height - GROUND - 4) continue;
      ctx.fillStyle = "rgba(160, 176, 214, 0.14)";
      ctx.fillRect(0, Math.round(y), w, 1);
      ctx.fillStyle = "rgba(160, 176, 214, 0.55)";
      ctx.fillText(`${m}x`, 8, y - 7);
    }
  }

  blockRect(lay, i) {
    const jitter = (noise(i, 1) - 0.5) * lay.width * 0.06;
    return {
      x: this.width / 2 - lay.width / 2 + jitter,
      y: lay.base - (i + 1) * lay.block,
      w: lay.width,
      h: lay.block,
    };
  }

  drawPillar(lay, integrity, now) {
    const { ctx } = this;
    const damage = 1 - integrity; // 0 at 100 %, towards 1 as it weakens
    ctx.save();
    // Sway about the foot of the pillar, growing as the integrity falls.
    const sway = Math.sin(now / 260) * damage * damage * 0.035;
    ctx.translate(this.width / 2, lay.base);
    ctx.rotate(sway);
    ctx.translate(-this.width / 2, -lay.base);
    const whole = Math.floor(lay.count);
    for (let i = 0; i <= whole; i++) {
      const part = i < whole ? 1 : lay.count - whole;
      if (part <= 0) break;
      const r = this.blockRect(lay, i);
      const shade = 150 + Math.round(noise(i, 2) * 40);
      ctx.globalAlpha = i < whole ? 1 : 0.55;
      ctx.fillStyle = `rgb(${shade}, ${shade - 12}, ${shade - 40})`;
      ctx.fillRect(r.x, r.y + r.h * (1 - part), r.w, r.h * part);
      if (lay.block >= 6) {
        ctx.fillStyle = "rgba(0, 0, 0, 0.18)";
        ctx.fillRect(r.x, r.y + r.h - 2, r.w, 2);
      }
      // Cracks: more blocks crack, and wider, as the integrity falls.
      if (i < whole && noise(i, 3) < damage * 0.9) {
        ctx.strokeStyle = `rgba(40, 20, 10, ${0.35 + damage * 0.5})`;
        ctx.lineWidth = 1;
        ctx.beginPath();
        const cx = r.x + r.w * (0.2 + noise(i, 4) * 0.6);
        ctx.moveTo(cx, r.y);
        ctx.lineTo(cx + (noise(i, 5) - 0.5) * r.w * 0.3, r.y + r.h * 0.5);
        ctx.lineTo(cx + (noise(i, 6) - 0.5) * r.w * 0.4, r.y + r.h);
        ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
    // The foundation stone, always there.
    ctx.fillStyle = "#6d6455";
    ctx.fillRect(this.width / 2 - lay.width / 2 - 10, lay.base - 4, lay.width + 20, 8);
    ctx.restore();
  }

  // Each block of the fallen pillar flies off from where it stood; higher
  // blocks fly further. Motion is a closed form of the time since the crash.
  pieces(lay) {
    const list = [];
    const whole = Math.max(1, Math.floor(lay.count));
    const side = noise(whole, 7) < 0.5 ? -1 : 1;
    for (let i = 0; i < whole; i++) {
      const r = this.blockRect(lay, i);
      const reach = (i + 1) / whole;
      list.push({
        ...r,
        vx: side * (40 + 380 * reach) * (0.6 + noise(i, 8) * 0.8),
        vy: -(60 + 240 * noise(i, 9)) * reach,
        spin: (noise(i, 10) - 0.5) * 5,
      });
    }
    return list;
  }

  drawCollapse(lay, t) {
    const { ctx } = this;
    const floor = this.height - GROUND;
    for (const p of this.rubble.pieces) {
      // Fall until the piece meets the ground, then lie there.
      const a = GRAVITY / 2;
      const drop = floor - (p.y + p.h);
      const land = (-p.vy + Math.sqrt(p.vy * p.vy + 4 * a * Math.max(0, drop))) / (2 * a);
      const s = Math.min(t, land);
      const x = p.x + p.vx * s;
      const y = p.y + p.vy * s + a * s * s;
      ctx.save();
      ctx.translate(x + p.w / 2, Math.min(y, floor - p.h) + p.h / 2);
      ctx.rotate(p.spin * s);
      ctx.fillStyle = "#8f8471";
      ctx.fillRect(-p.w / 2, -p.h / 2, p.w, p.h);
      ctx.restore();
    }
    // A cloud of dust at the foot for the first second.
    if (t < 1.2) {
      const fade = 1 - t / 1.2;
      for (let k = 0; k < 14; k++) {
        const angle = Math.PI + (k / 13) * Math.PI;
        const dist = 20 + t * 160 * (0.5 + noise(k, 11));
        ctx.fillStyle = `rgba(200, 190, 170, ${0.35 * fade})`;
        ctx.beginPath();
        ctx.arc(
          this.width / 2 + Math.cos(angle) * dist,
          floor + Math.sin(angle) * dist * 0.35,
          6 + t * 18,
          0,
          Math.PI * 2,
        );
        ctx.fill();
      }
    }
    ctx.fillStyle = "#6d6455";
    ctx.fillRect(this.width / 2 - lay.width / 2 - 10, floor - 4, lay.width + 20, 8);
  }
}
