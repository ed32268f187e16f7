// The pillar on a canvas. Each 0.10x above 1.00x is a block (the blocks a
// round adds to the community goal); blocks are laid in courses of running-
// bond bricks, and the view's vertical scale follows the pillar's height as a
// crash game's curve does, so the climb reads the same at 2x and at 200x:
//
// - the scale's top is a continuous function of the height (SCALE_HEADROOM),
//   so it rescales smoothly; its labels take the smallest "nice" step that
//   leaves at most MAX_LABELS of them, and stay under the HTML overlay;
// - a course holds 1, 2, 5, 10, 20 ... blocks, the fewest that keep it at
//   least MIN_COURSE px tall, so the bricks never shrink to sticks;
// - the stone changes with the height (TIERS): 10x, 30x and 100x look apart;
// - at the crash the pillar topples about its foot as one body, breaks into
//   its courses and they fall to the ground, at any height, 1.00x included
//   (a pillar at 1.00x is its footing and its capital: they fall too).
//
// Drawing is a pure function of the state handed to draw() and the time, so a
// page that joins after a crash draws the rubble, and a test can draw any height.

const GROUND = 28; // px of ground under the pillar
const PLINTH = 8; // the foundation stone on the ground
const FOOTING = 20; // the footing courses under 1.00x, always standing
const CAPITAL = 9; // the slab on the pillar's top
const HEADROOM = 16; // px between the scale's top and the overlay above it
const MIN_TOP = 2; // the scale shows at least 1x..2x
const SCALE_HEADROOM = 1.25; // the scale's top is 1 + 1.25 × (height − 1)
const MAX_LABELS = 6;
const MIN_COURSE = 10; // px
const LABEL_STEPS = [1, 2, 2.5, 5]; // × 10^k: the nice steps of the labels ...
const COURSE_STEPS = [1, 2, 5]; // ... and of the blocks in a course
const GRAVITY = 2600; // px/s²
const BREAK_ANGLE = 0.75; // rad: the toppling pillar breaks into its courses here
const SETTLE_S = 0.16; // a landed piece slides and lies flat in this long
const FALL_MIN = 140; // px

// Colours. The labels are opaque and meet WCAG AA (4.5:1) against every
// colour of the sky gradient (checked by tests/browser/test_pillar_view.py).
export const SKY = ["#0b1020", "#1b2440"];
export const LABEL_COLOUR = "#b9c4e2";
const GRID = "rgba(160, 176, 214, 0.16)";
const MORTAR = "#4a4336";
// The stone of the courses: [from multiplier, r, g, b].
const TIERS = [
  [1, 150, 142, 128], // grey stone
  [2, 201, 164, 106], // sandstone
  [5, 184, 110, 78], // terracotta
  [10, 214, 220, 232], // marble
  [50, 227, 185, 74], // gold
];

// A fixed pseudo-random number in [0, 1) for index i and purpose k: the same
// course keeps its shades and cracks from frame to frame.
function noise(i, k) {
  const x = Math.sin(i * 127.1 + k * 311.7) * 43758.5453;
  return x - Math.floor(x);
}

/** The smallest nice step (one of `steps` × 10^k, k ≥ kMin) at least `atLeast`. */
function niceStep(atLeast, steps, kMin) {
  for (let k = kMin; ; k++) {
    for (const s of steps) {
      const step = s * 10 ** k;
      if (step >= atLeast - 1e-9) return step;
    }
  }
}

function tier(m) {
  let found = TIERS[0];
  for (const t of TIERS) if (m >= t[0]) found = t;
  return found;
}

const labelText = (m) => `${Number(m.toFixed(2))}x`;

export class PillarView {
  /** `overlay`: the HTML over the canvas's top; the scale stays under it. */
  constructor(canvas, overlay = null) {
    this.canvas = canvas;
    this.overlay = overlay;
    this.ctx = canvas.getContext("2d");
    this.width = 0;
    this.height = 0;
    this.clearTop = 0; // px from the canvas's top that the overlay covers
    this.rubble = null; // the pieces of the last collapse
    this.labels = []; // the scale labels of the last frame, {text, x, y, w, h} (for tests)
    this.last = null; // the last frame's arguments, redrawn at once after a resize
  }

  resize(width, height) {
    const ratio = window.devicePixelRatio || 1;
    this.width = width;
    this.height = height;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    this.ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    this.clearTop = 0;
    if (this.overlay !== null) {
      const top = this.canvas.getBoundingClientRect().top;
      this.clearTop = Math.max(0, this.overlay.getBoundingClientRect().bottom - top);
    }
    // Resizing cleared the canvas, after this frame's draw (a ResizeObserver
    // runs after the animation frames): without a redraw it would show blank.
    if (this.last !== null) this.draw(...this.last);
  }

  /** Where everything sits for a pillar `height` (1.0 = no blocks). */
  layout(height) {
    const floor = this.height - GROUND;
    const base = floor - PLINTH - FOOTING; // the 1.00x line
    // Never squeeze the scale below a third of the canvas, whatever the overlay.
    const high = Math.min(this.clearTop + HEADROOM + CAPITAL, base - this.height / 3);
    const top = Math.max(MIN_TOP, 1 + (height - 1) * SCALE_HEADROOM);
    const perX = (base - high) / (top - 1); // px per 1.00x
    const per = niceStep(MIN_COURSE / (perX / 10), COURSE_STEPS, 0); // blocks per course
    const width = Math.min(120, Math.max(48, this.width * 0.22));
    return { floor, base, top, perX, per, width, cx: this.width / 2, height };
  }

  y(lay, m) {
    return lay.base - (m - 1) * lay.perX;
  }

  /**
   * view: {phase, height: unrounded multiplier (1.0 up), integrity: 0..1,
   *        crashHeight, crashedAt: performance.now() of the crash or null}
   */
  draw(view, now) {
    const { ctx, width: w, height: h } = this;
    this.last = [view, now];
    if (w === 0 || h === 0) return;
    const sky = ctx.createLinearGradient(0, 0, 0, h);
    sky.addColorStop(0, SKY[0]);
    sky.addColorStop(1, SKY[1]);
    ctx.fillStyle = sky;
    ctx.fillRect(0, 0, w, h);

    const crashed = view.phase === "crashed" && view.crashedAt !== null;
    const shown = crashed ? view.crashHeight : view.phase === "running" ? view.height : 1;
    const lay = this.layout(Math.max(1, shown));
    this.drawScale(lay);
    ctx.fillStyle = "#2a2f3d";
    ctx.fillRect(0, lay.floor, w, GROUND);
    ctx.fillStyle = "#3b4255";
    ctx.fillRect(0, lay.floor, w, 3);
    ctx.fillStyle = "#6d6455";
    ctx.fillRect(lay.cx - lay.width / 2 - 12, lay.floor - PLINTH, lay.width + 24, PLINTH);
    if (crashed) {
      if (this.rubble === null || this.rubble.at !== view.crashedAt) {
        this.rubble = { at: view.crashedAt, ...this.collapse(lay) };
      }
      this.drawCollapse(Math.max(0, (now - view.crashedAt) / 1000));
    } else {
      this.rubble = null;
      this.drawPillar(lay, view.integrity, now);
    }
  }

  drawScale(lay) {
    const { ctx, width: w } = this;
    const step = niceStep((lay.top - 1) / MAX_LABELS, LABEL_STEPS, -1);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    this.labels = [];
    for (let k = Math.floor(1 / step) + 1; k * step <= lay.top + 1e-9; k++) {
      const m = k * step;
      const y = Math.round(this.y(lay, m));
      ctx.fillStyle = GRID;
      ctx.fillRect(0, y, w, 1);
      const text = labelText(m);
      const label = { text, x: 8, y: y - 15, w: ctx.measureText(text).width, h: 13 };
      ctx.fillStyle = LABEL_COLOUR;
      ctx.fillText(text, label.x, label.y + label.h / 2);
      this.labels.push(label);
    }
  }

  // The courses of a pillar standing `height` high, bottom up, in the
  // pillar's own frame (x from its centre, y up from its foot at 1.00x):
  // {x, y, w, h, n (the course's index), m (its multiplier), alpha}.
  courses(lay) {
    const list = [];
    const half = lay.width / 2;
    for (let j = 0; j < FOOTING / 10; j++) {
      list.push({ x: -half, y: -(j + 1) * 10, w: lay.width, h: 10, n: -1 - j, m: 1, alpha: 1 });
    }
    const blocks = (lay.height - 1) * 10;
    const span = lay.per * (lay.perX / 10); // px per course
    for (let n = 0; n * lay.per < blocks; n++) {
      const filled = Math.min(1, (blocks - n * lay.per) / lay.per);
      const m = 1 + ((n + 0.5) * lay.per) / 10;
      const y = FOOTING + n * span;
      const h = span * filled;
      list.push({ x: -half, y: -(y + h), w: lay.width, h, n, m, alpha: filled === 1 ? 1 : 0.6 });
    }
    return list;
  }

  // One course as bricks in running bond, drawn at (0, 0) to (c.w, c.h).
  drawCourse(c, damage) {
    const { ctx } = this;
    const [, r, g, b] = tier(c.m);
    ctx.globalAlpha = c.alpha;
    ctx.fillStyle = MORTAR;
    ctx.fillRect(0, 0, c.w, c.h);
    const brick = c.w / 2;
    const offset = c.n % 2 === 0 ? 0 : -brick / 2;
    for (let x = offset, i = 0; x < c.w; x += brick, i++) {
      const left = Math.max(0, x) + 1;
      const right = Math.min(c.w, x + brick) - 1;
      const shade = (noise(c.n * 3 + i, 2) - 0.5) * 28;
      ctx.fillStyle = `rgb(${r + shade}, ${g + shade}, ${b + shade})`;
      ctx.fillRect(left, 1, right - left, Math.max(1, c.h - 2));
    }
    // Cracks: more courses crack, and darker, as the integrity falls.
    if (c.alpha === 1 && noise(c.n, 3) < damage * 0.9) {
      ctx.strokeStyle = `rgba(40, 20, 10, ${0.35 + damage * 0.5})`;
      ctx.lineWidth = 1;
      ctx.beginPath();
      const cx = c.w * (0.2 + noise(c.n, 4) * 0.6);
      ctx.moveTo(cx, 0);
      ctx.lineTo(cx + (noise(c.n, 5) - 0.5) * c.w * 0.3, c.h * 0.5);
      ctx.lineTo(cx + (noise(c.n, 6) - 0.5) * c.w * 0.4, c.h);
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  drawCapital(width) {
    const { ctx } = this;
    ctx.fillStyle = "#e3dccb";
    ctx.fillRect(-width / 2 - 7, -CAPITAL, width + 14, CAPITAL);
    ctx.fillStyle = "rgba(0, 0, 0, 0.25)";
    ctx.fillRect(-width / 2 - 7, -2, width + 14, 2);
  }

  drawPillar(lay, integrity, now) {
    const { ctx } = this;
    const damage = 1 - integrity; // 0 at 100 %, towards 1 as it weakens
    const foot = lay.floor - PLINTH;
    ctx.save();
    // Sway about the foot of the pillar, growing as the integrity falls.
    ctx.translate(lay.cx, foot);
    ctx.rotate(Math.sin(now / 260) * damage * damage * 0.035);
    let top = 0;
    for (const c of this.courses(lay)) {
      ctx.save();
      ctx.translate(c.x + (noise(c.n, 1) - 0.5) * lay.width * 0.03, c.y);
      this.drawCourse(c, damage);
      ctx.restore();
      top = c.y;
    }
    ctx.translate(0, top);
    this.drawCapital(lay.width);
    ctx.restore();
  }

  // The fall, as closed forms of the time since the crash. The pillar turns
  // about its foot's corner on the side it falls to, with the angular
  // acceleration of a rod of its length (α = 3g / 2L), until BREAK_ANGLE;
  // then every course flies on with the speed and spin it had, lands, slides
  // a little and settles flat. Only the landing times are solved here, once.
  collapse(lay) {
    const side = noise(Math.round(lay.height * 100), 7) < 0.5 ? -1 : 1;
    const courses = this.courses(lay);
    const length = -courses[courses.length - 1].y + CAPITAL;
    // (A short pillar falls as one of FALL_MIN px would: slow enough to see.)
    const alpha = (1.5 * GRAVITY) / Math.max(FALL_MIN, length);
    const breakAt = Math.sqrt((2 * BREAK_ANGLE) / alpha);
    const omega = alpha * breakAt;
    const pivot = { x: lay.cx + (side * lay.width) / 2, y: lay.floor - PLINTH };
    const pieces = courses.map((c) => ({ ...c, alpha: 1 }));
    const capital = { x: -lay.width / 2 - 7, y: -length, w: lay.width + 14, h: CAPITAL, n: 99 };
    pieces.push({ ...capital, capital: true });
    const turn = side * BREAK_ANGLE;
    for (const p of pieces) {
      // The piece's centre relative to the pivot, upright, then at the break.
      const rx = p.x + p.w / 2 - (side * lay.width) / 2;
      const ry = p.y + p.h / 2;
      const bx = rx * Math.cos(turn) - ry * Math.sin(turn);
      const by = rx * Math.sin(turn) + ry * Math.cos(turn);
      Object.assign(p, {
        rx,
        ry,
        bx: pivot.x + bx,
        by: pivot.y + by,
        // v = ω × r, plus a little scatter of its own.
        vx: -side * omega * by * (0.85 + noise(p.n, 8) * 0.3),
        vy: Math.max(0, side * omega * bx), // no hop up off the pivot's far side
        spin: side * omega * (0.5 + noise(p.n, 10) * 0.6),
      });
      p.land = 0;
      const aloft = (s) => this.flying(p, s).y < lay.floor - this.extent(p, turn + p.spin * s);
      while (p.land < 4 && aloft(p.land)) p.land += 1 / 240;
    }
    // On a narrow canvas the courses fly less far: the farthest lands (and
    // slides) inside it, not against its edge.
    const room = side > 0 ? this.width - pivot.x : pivot.x;
    let scale = 1;
    for (const p of pieces) {
      const left = room - 8 - side * (p.bx - pivot.x) - p.w / 2;
      const flight = Math.abs(p.vx) * (p.land + SETTLE_S * 0.4);
      if (flight > 0) scale = Math.min(scale, Math.max(0, left) / flight);
    }
    for (const p of pieces) p.vx *= scale;
    return { lay, side, pivot, alpha, breakAt, pieces };
  }

  // Half the height of a piece turned by `angle`: its centre's height over the ground.
  extent(p, angle) {
    return Math.abs((p.w / 2) * Math.sin(angle)) + Math.abs((p.h / 2) * Math.cos(angle));
  }

  flying(p, s) {
    return { x: p.bx + p.vx * s, y: p.by + p.vy * s + (GRAVITY / 2) * s * s };
  }

  drawCollapse(t) {
    const { ctx } = this;
    const { lay, side, pivot, alpha, breakAt, pieces } = this.rubble;
    for (const p of pieces) {
      let x, y, angle;
      if (t < breakAt) {
        angle = side * 0.5 * alpha * t * t;
        x = pivot.x + p.rx * Math.cos(angle) - p.ry * Math.sin(angle);
        y = pivot.y + p.rx * Math.sin(angle) + p.ry * Math.cos(angle);
      } else {
        const s = t - breakAt;
        ({ x, y } = this.flying(p, Math.min(s, p.land)));
        angle = side * BREAK_ANGLE + p.spin * Math.min(s, p.land);
        if (s > p.land) {
          // Landed: slide to a stop and settle on its long face.
          const u = Math.min(1, (s - p.land) / SETTLE_S);
          const ease = 1 - (1 - u) * (1 - u);
          x += p.vx * SETTLE_S * 0.4 * ease;
          angle += (Math.round(angle / Math.PI) * Math.PI - angle) * ease;
          y = lay.floor - this.extent(p, angle);
        }
        const room = Math.abs((p.w / 2) * Math.cos(angle)) + 4;
        x = Math.max(room, Math.min(this.width - room, x));
      }
      ctx.save();
      ctx.translate(x, y);
      ctx.rotate(angle);
      if (p.capital) {
        ctx.translate(0, p.h / 2);
        this.drawCapital(p.w - 14);
      } else {
        ctx.translate(-p.w / 2, -p.h / 2);
        this.drawCourse(p, 0);
      }
      ctx.restore();
    }
    // Dust where the pillar breaks and along the ground where it lands.
    const dust = t - breakAt * 0.5;
    if (dust > 0 && dust < 1.5) {
      const fade = 1 - dust / 1.5;
      const reach = Math.min(this.width * 0.4, (pieces.length + 4) * 12);
      for (let k = 0; k < 14; k++) {
        const x = pivot.x + (noise(k, 12) * reach + dust * 30) * side;
        const y = lay.floor - 6 - dust * 30 * noise(k, 13);
        const puff = 16 + dust * 50 * (0.5 + noise(k, 11));
        const cloud = ctx.createRadialGradient(x, y, 0, x, y, puff);
        cloud.addColorStop(0, `rgba(190, 180, 160, ${0.22 * fade})`);
        cloud.addColorStop(1, "rgba(190, 180, 160, 0)");
        ctx.fillStyle = cloud;
        ctx.fillRect(x - puff, y - puff, puff * 2, puff * 2);
      }
    }
  }
}
