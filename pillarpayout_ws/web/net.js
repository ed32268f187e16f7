// The WebSocket to the server: JSON frames in and out, and reconnection with
// backoff when it drops. Every new socket is a spectator again: the page sends
// `resume` itself when the new connection's `hello` arrives.

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;

export class GameSocket {
  /**
   * @param {string} url ws://host:port/ws
   * @param {(frame: object) => void} onFrame every frame from the server
   * @param {(status: string, detail: object) => void} onStatus
   *   "connecting", "live", or "down" with {retryInMs, code}
   */
  constructor(url, onFrame, onStatus) {
    this.url = url;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.ws = null;
    this.failures = 0;
    this.timer = null;
  }

  connect() {
    clearTimeout(this.timer);
    this.onStatus("connecting", {});
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON; nothing to do with anything else
      }
      if (frame.type === "hello") {
        this.failures = 0;
        this.onStatus("live", {});
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      // 0.5 s, 1 s, 2 s, ... up to 10 s, with jitter so that a restarted
      // server is not met by every page at the same instant.
      const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.failures);
      const retryInMs = Math.round(base * (0.75 + Math.random() * 0.5));
      this.failures += 1;
      this.onStatus("down", { retryInMs, code: event.code });
      this.timer = setTimeout(() => this.connect(), retryInMs);
    };
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send one frame; false when there is no open socket to send it on. */
  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
