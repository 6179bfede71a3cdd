/** What the harness needs of any tier process, ours or a third-party one (nginx, HAProxy). */
export interface TierHandle {
  readonly name: string;
  /** Addresses by listener name; `http` at least. */
  readonly addresses: Readonly<Record<string, string>>;
  /** Every process of the tier (e.g. nginx master and workers), for CPU accounting. */
  pids(): number[];
  stop(): Promise<void>;
}
