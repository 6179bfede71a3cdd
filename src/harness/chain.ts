/** A whole FE → IS… → BE chain of real `odb` processes on loopback. */
import { startOdbProcess, type OdbProcess } from './tier-process.js';

/** What chain to start. */
export interface ChainOptions {
  readonly mode: 'odb' | 'vanilla';
  /** Cluster key file (needed in odb mode). */
  readonly keyFile?: string;
  /** Directory the BE serves. */
  readonly root: string;
  /** Number of `odb is` tiers between FE and BE. Default 1. */
  readonly intermediates?: number;
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
  readonly intermediates: readonly OdbProcess[];
  readonly fe: OdbProcess;
  /** Every process, BE first. */
  readonly processes: readonly OdbProcess[];
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
  const started: OdbProcess[] = [];
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
    const intermediates: OdbProcess[] = [];
    for (let i = options.intermediates ?? 1; i > 0; i--) {
      const is = await startOdbProcess(`is${i}`, [
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

async function stopAll(processes: readonly OdbProcess[]): Promise<void> {
  await Promise.all(processes.map((p) => p.stop()));
}
