/** A whole FE → IS… → BE chain of real processes on loopback: ours, with nginx as IS if asked. */
import { startNginx } from './nginx.js';
import type { TierHandle } from './tier-handle.js';
import { startOdbProcess, type OdbProcess } from './tier-process.js';

/** What runs as the intermediate tiers. */
export type IntermediateKind = 'odb' | 'nginx';

/** What chain to start. */
export interface ChainOptions {
  readonly mode: 'odb' | 'vanilla';
  /** Cluster key file (needed in odb mode). */
  readonly keyFile?: string;
  /** Directory the BE serves. */
  readonly root: string;
  /** Number of intermediate tiers between FE and BE. Default 1. */
  readonly intermediates?: number;
  /** `odb is` (default) or a stock nginx. */
  readonly intermediateKind?: IntermediateKind;
  /** nginx only: veto the shortcut by removing `odb-accept`. */
  readonly nginxVeto?: boolean;
  /** Host to listen on. Default 127.0.0.1. */
  readonly host?: string;
  readonly beArgs?: readonly string[];
  readonly isArgs?: readonly string[];
  readonly feArgs?: readonly string[];
  readonly logLevel?: string;
}

/** A running chain. */
export interface Chain {
  readonly be: OdbProcess;
  /** Intermediates, nearest the FE first. */
  readonly intermediates: readonly TierHandle[];
  readonly fe: OdbProcess;
  /** Every tier, BE first. */
  readonly processes: readonly TierHandle[];
  /** URL of `path` at the FE. */
  url(path: string): string;
  stop(): Promise<void>;
}

/** Starts BE, then the intermediates from the BE side, then the FE. */
export async function startChain(options: ChainOptions): Promise<Chain> {
  const host = options.host ?? '127.0.0.1';
  const any = `${host}:0`;
  const common = ['--metrics-listen', any, '--log-level', options.logLevel ?? 'info'];
  const key = options.keyFile ? ['--key-file', options.keyFile] : [];
  const started: TierHandle[] = [];
  try {
    const be = await startOdbProcess('be', [
      'be',
      '--listen',
      any,
      '--store-listen',
      any,
      '--root',
      options.root,
      '--mode',
      options.mode,
      ...key,
      ...common,
      ...(options.beArgs ?? []),
    ]);
    started.push(be);
    let upstream = `http://${be.addresses.http}`;
    const intermediates: TierHandle[] = [];
    for (let i = options.intermediates ?? 1; i > 0; i--) {
      const is =
        options.intermediateKind === 'nginx'
          ? await startNginx({
              name: `is${i}`,
              upstreams: [upstream.slice('http://'.length)],
              host,
              veto: options.nginxVeto,
            })
          : await startOdbProcess(`is${i}`, [
              'is',
              '--listen',
              any,
              '--upstream',
              upstream,
              ...common,
              ...(options.isArgs ?? []),
            ]);
      started.push(is);
      intermediates.unshift(is);
      upstream = `http://${is.addresses.http}`;
    }
    const fe = await startOdbProcess('fe', [
      'fe',
      '--listen',
      any,
      '--upstream',
      upstream,
      '--mode',
      options.mode,
      ...key,
      ...common,
      ...(options.feArgs ?? []),
    ]);
    started.push(fe);
    return {
      be,
      intermediates,
      fe,
      processes: started,
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
