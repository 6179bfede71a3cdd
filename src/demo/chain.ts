/**
 * A whole FE → IS… → BE chain of real `odb` processes, on loopback or on given hosts. The
 * intermediates are `odb is` unless the caller starts its own (the dev harness puts a stock
 * nginx or HAProxy there: dev/harness/chain.ts).
 */
import { loopback, type Placement } from './placement.js';
import type { TierHandle } from './tier-handle.js';
import { startOdbProcess, type OdbProcess } from './tier-process.js';

/** The roles of a chain, as placement keys. */
export type ChainRole = 'fe' | 'is1' | 'is2' | 'be';

/** What chain to start. */
export interface ChainOptions {
  readonly mode: 'odb' | 'vanilla';
  /** Cluster key file (needed in odb mode). */
  readonly keyFile?: string;
  /** Directory the BE serves. */
  readonly root: string;
  /** Number of intermediate tiers between FE and BE (0 to 2). Default 1. */
  readonly intermediates?: number;
  /** Starts intermediate `name` in front of `upstream` (host:port). Default: `odb is`. */
  readonly startIntermediate?: IntermediateStarter;
  /** Where each role runs. Default: all on loopback. */
  readonly place?: (role: ChainRole) => Placement;
  readonly beArgs?: readonly string[];
  readonly isArgs?: readonly string[];
  readonly feArgs?: readonly string[];
  readonly logLevel?: string;
  /** Environment of every tier process (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
}

/** Starts one intermediate tier of a chain; undefined lets the chain start an `odb is`. */
export type IntermediateStarter = (
  name: string,
  upstream: string,
  where: Placement,
) => Promise<TierHandle> | undefined;

/** A running chain. */
export interface Chain {
  readonly be: OdbProcess;
  /** Intermediates, nearest the FE first. */
  readonly intermediates: readonly TierHandle[];
  readonly fe: OdbProcess;
  /** Every tier, BE first. */
  readonly processes: readonly TierHandle[];
  /** Where each tier runs, by tier name. */
  readonly placements: Readonly<Record<string, Placement>>;
  /** URL of `path` at the FE. */
  url(path: string): string;
  stop(): Promise<void>;
}

/** Starts BE, then the intermediates from the BE side, then the FE. */
export async function startChain(options: ChainOptions): Promise<Chain> {
  const place = options.place ?? (() => loopback);
  // Metrics stay on each host's own loopback: scraping them never crosses a measured link.
  const common = ['--metrics-listen', '127.0.0.1:0', '--log-level', options.logLevel ?? 'info'];
  const key = options.keyFile ? ['--key-file', options.keyFile] : [];
  const started: TierHandle[] = [];
  const placements: Record<string, Placement> = {};
  const odb = (name: string, where: Placement, args: string[]): Promise<OdbProcess> =>
    startOdbProcess(name, [...args, '--listen', `${where.host}:0`, ...common], {
      prefix: where.prefix,
      env: options.env,
    });
  try {
    const bePlace = place('be');
    const be = await odb('be', bePlace, [
      'be',
      '--store-listen',
      `${bePlace.host}:0`,
      '--root',
      options.root,
      '--mode',
      options.mode,
      ...key,
      ...(options.beArgs ?? []),
    ]);
    started.push(be);
    placements.be = bePlace;
    let upstream = be.addresses.http!;
    const intermediates: TierHandle[] = [];
    for (let i = options.intermediates ?? 1; i > 0; i--) {
      const name = `is${i}`;
      const where = place(name as ChainRole);
      const is =
        (await options.startIntermediate?.(name, upstream, where)) ??
        (await odb(name, where, [
          'is',
          '--upstream',
          `http://${upstream}`,
          ...(options.isArgs ?? []),
        ]));
      started.push(is);
      placements[name] = where;
      intermediates.unshift(is);
      upstream = is.addresses.http!;
    }
    const fePlace = place('fe');
    const stores = options.mode === 'odb' ? ['--store-allow', be.addresses.storeAdvertised!] : [];
    const fe = await odb('fe', fePlace, [
      'fe',
      '--upstream',
      `http://${upstream}`,
      '--mode',
      options.mode,
      ...key,
      ...stores,
      ...(options.feArgs ?? []),
    ]);
    started.push(fe);
    placements.fe = fePlace;
    return {
      be,
      intermediates,
      fe,
      processes: started,
      placements,
      url: (path) => `http://${fe.addresses.http}${path}`,
      stop: () => stopAll(started),
    };
  } catch (err) {
    await stopAll(started);
    throw err;
  }
}

async function stopAll(processes: readonly TierHandle[]): Promise<void> {
  await Promise.all(processes.map((p) => p.stop()));
}
