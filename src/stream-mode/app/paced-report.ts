/**
 * Counters the application thread sends its agent (for the store's ping): changes come in bursts
 * (one per write), so a report goes at most once per interval, with the counters as they are
 * then.
 */
/** How often counters go to the agent, at most. */
const defaultEveryMs = 250;

export class PacedReport {
  readonly #everyMs: number;
  readonly #send: () => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(send: () => void, everyMs = defaultEveryMs) {
    this.#everyMs = everyMs;
    this.#send = send;
  }

  /** The counters changed: they are sent within the interval (never keeping the process alive). */
  changed(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#send();
    }, this.#everyMs).unref();
  }
}
