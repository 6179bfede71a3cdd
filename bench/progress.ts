/** A progress line on stderr: step k of n, elapsed time and an estimate of what remains. */
export class Progress {
  readonly #total: number;
  readonly #estimateS: number;
  readonly #start = Date.now();
  #done = 0;

  constructor(totalSteps: number, estimatedSeconds: number) {
    this.#total = totalSteps;
    this.#estimateS = estimatedSeconds;
  }

  /** Announces the next step. */
  step(label: string): void {
    this.#done++;
    const elapsed = (Date.now() - this.#start) / 1000;
    // Before any step finished, trust the plan; then extrapolate from the pace so far.
    const pace =
      this.#done > 1 ? elapsed / (this.#done - 1) : this.#estimateS / Math.max(1, this.#total);
    const remaining = Math.max(0, (this.#total - this.#done + 1) * pace);
    process.stderr.write(
      `[${this.#done}/${this.#total}] ${clock(elapsed)} elapsed, ~${clock(remaining)} left · ${label}\n`,
    );
  }

  done(message: string): void {
    process.stderr.write(`done in ${clock((Date.now() - this.#start) / 1000)}: ${message}\n`);
  }
}

function clock(seconds: number): string {
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}
