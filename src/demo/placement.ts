/** Where a process of a chain runs: a command prefix (e.g. `ip netns exec odb-fe`) and the address it listens on. */
export interface Placement {
  readonly prefix: readonly string[];
  /** Address to listen on and to reach the process at. */
  readonly host: string;
  /** A fixed port for programs that cannot report the port they bound (nginx, HAProxy). */
  readonly fixedPort?: number;
}

/** Everything on this host's loopback, ports chosen by the kernel. */
export const loopback: Placement = { prefix: [], host: '127.0.0.1' };
