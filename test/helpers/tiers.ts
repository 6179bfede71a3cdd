import { startOdbProcess, type OdbProcess } from '../../src/demo/tier-process.js';

/** How to start a lone `odb be` on loopback for a test. */
export interface BackendProcessOptions {
  readonly root: string;
  /** odb mode with its store on loopback; absent: vanilla mode. */
  readonly keyFile?: string;
  /** Also serve metrics on loopback. */
  readonly metrics?: boolean;
  /** Default `warn`. */
  readonly logLevel?: string;
  readonly name?: string;
  /** More flags, after the ones above. */
  readonly args?: readonly string[];
}

/** Starts `odb be` on 127.0.0.1 port 0 (its store too, in odb mode) and waits until it is ready. */
export function startBackendProcess(options: BackendProcessOptions): Promise<OdbProcess> {
  const mode = options.keyFile
    ? ['--store-listen', '127.0.0.1:0', '--key-file', options.keyFile]
    : ['--mode', 'vanilla'];
  return startOdbProcess(options.name ?? 'be', [
    'be',
    '--listen',
    '127.0.0.1:0',
    '--root',
    options.root,
    ...mode,
    ...(options.metrics ? ['--metrics-listen', '127.0.0.1:0'] : []),
    '--log-level',
    options.logLevel ?? 'warn',
    ...(options.args ?? []),
  ]);
}
