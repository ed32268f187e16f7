// The chat list keeps its place while the player reads back: a line that comes
// meanwhile shows a "New messages" button over the list's foot instead of
// scrolling, and the button goes back to the newest line.

const NEAR_BOTTOM_PX = 8;

export class ChatCue {
  constructor(list) {
    this.list = list;
    const box = document.createElement("div");
    box.className = "chat-box";
    list.before(box);
    this.button = document.createElement("button");
    this.button.type = "button";
    this.button.id = "chat-new";
    this.button.className = "chat-new";
    this.button.textContent = "New messages ↓";
    this.button.hidden = true;
    box.append(list, this.button);
    this.button.addEventListener("click", () => this.toBottom());
    list.addEventListener("scroll", () => {
      if (this.atBottom()) this.button.hidden = true;
    });
  }

  atBottom() {
    const list = this.list;
    return list.scrollTop + list.clientHeight >= list.scrollHeight - NEAR_BOTTOM_PX;
  }

  toBottom() {
    this.list.scrollTop = this.list.scrollHeight;
    this.button.hidden = true;
  }

  /** A line was added; `wasAtBottom`: the list showed its newest line before it. */
  added(wasAtBottom) {
    if (wasAtBottom) this.toBottom();
    else this.button.hidden = false;
  }
}
