// The game's sounds, made with WebAudio (nothing is fetched): a soft tick as
// the pillar climbs, rising in pitch, a chime when one of the player's bets
// cashes out, and a rumble when the pillar falls. Off until the player turns
// it on with the header's button; the choice is kept in localStorage.
//
// A browser starts an AudioContext only after a click or a key: the context is
// made on the toggle's click, or on the first click or key of a page that
// loads with the sound already on.

const KEY = "pillarpayout.sound";
// The climb ticks once per 5 % of growth: about once a second all round long
// (the curve grows 6 % a second), never faster however high it goes.
const TICK_GROWTH = Math.log(1.05);
const VOLUME = 0.12;

export class Sound {
  constructor(button) {
    this.button = button;
    this.on = localStorage.getItem(KEY) === "on";
    this.audio = null;
    this.lastStep = null; // the climb's last tick, in steps of TICK_GROWTH
    button.addEventListener("click", () => this.toggle());
    const wake = () => {
      if (this.on) this.context();
    };
    window.addEventListener("pointerdown", wake, { once: true, capture: true });
    window.addEventListener("keydown", wake, { once: true, capture: true });
    this.render();
  }

  toggle() {
    this.on = !this.on;
    localStorage.setItem(KEY, this.on ? "on" : "off");
    if (this.on) this.context();
    this.render();
  }

  render() {
    this.button.setAttribute("aria-pressed", String(this.on));
    this.button.title = this.on ? "Sound on: click to mute" : "Sound off: click to turn it on";
  }

  context() {
    if (this.audio === null) this.audio = new AudioContext();
    if (this.audio.state === "suspended") this.audio.resume();
    return this.audio;
  }

  // A tone from `from` to `to` Hz over `seconds`, with a quick attack and decay.
  tone(type, from, to, seconds, volume = VOLUME, delay = 0) {
    const audio = this.context();
    const at = audio.currentTime + delay;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = type;
    osc.frequency.setValueAtTime(from, at);
    osc.frequency.exponentialRampToValueAtTime(to, at + seconds);
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(volume, at + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + seconds);
    osc.connect(gain).connect(audio.destination);
    osc.start(at);
    osc.stop(at + seconds + 0.02);
  }

  /** Each frame of a running round, with the multiplier in hundredths. */
  climb(hundredths) {
    const step = Math.floor(Math.log(hundredths / 100) / TICK_GROWTH);
    if (this.lastStep !== null && step > this.lastStep && this.on) {
      // Up a semitone a tick, wrapping every two octaves so it never gets shrill.
      const pitch = 330 * 2 ** ((step % 24) / 12);
      this.tone("sine", pitch, pitch * 1.02, 0.07, VOLUME * 0.6);
    }
    this.lastStep = step;
  }

  /** The round is over (or not running): the next climb starts from silence. */
  reset() {
    this.lastStep = null;
  }

  cashout() {
    if (!this.on) return;
    this.tone("triangle", 660, 660, 0.12);
    this.tone("triangle", 990, 990, 0.22, VOLUME, 0.09);
  }

  crash() {
    this.reset();
    if (!this.on) return;
    const audio = this.context();
    this.tone("sawtooth", 220, 45, 0.6, VOLUME * 0.7);
    // A short burst of falling rubble: noise, darkened by a low-pass filter.
    const length = Math.floor(audio.sampleRate * 0.5);
    const buffer = audio.createBuffer(1, length, audio.sampleRate);
    const data = buffer.getChannelData(0);
    for (let i = 0; i < length; i++) data[i] = (Math.random() * 2 - 1) * (1 - i / length) ** 2;
    const noise = audio.createBufferSource();
    const filter = audio.createBiquadFilter();
    const gain = audio.createGain();
    noise.buffer = buffer;
    filter.type = "lowpass";
    filter.frequency.value = 700;
    gain.gain.value = VOLUME * 1.5;
    noise.connect(filter).connect(gain).connect(audio.destination);
    noise.start();
  }
}
