/**
 * The stream-mode chain of plain programs (test/fixtures/stream): a Node `http` file server as
 * BE, an IS program, and an `http-proxy` script as the client-facing FE, each run with
 * `--import odb/register` when `odb`. The e2e tests and the stream benchmark both start it here.
 */
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.js';
import { startNodeProgram, type NodeProgram } from './node-program.js';

/** The path of a program in test/fixtures/stream. */
export function streamFixture(file: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/stream/${file}`, import.meta.url));
}

/** How to start a {@link StreamPrograms} chain. */
export interface StreamChainOptions {
  /** Every tier under `--import odb/register`; else the same programs as they are. */
  readonly odb: boolean;
  readonly keyFile: string;
  /** Served by the BE (`/<name>`). */
  readonly filesDir: string;
  /** The IS program's file name in test/fixtures/stream. */
  readonly isProgram: string;
  /** More environment for the IS (ODB variables only apply with `odb`). */
  readonly isEnv?: Readonly<Record<string, string>>;
  /** More ODB environment for every tier (with `odb`). */
  readonly env?: Readonly<Record<string, string>>;
  /** ODB_LOG_LEVEL of every tier. Default warn. */
  readonly logLevel?: string;
}

/** A running chain. */
export interface StreamPrograms {
  readonly be: NodeProgram;
  readonly is: NodeProgram;
  readonly fe: NodeProgram;
  /** Store endpoints (`host:port`) of the BE's, the IS's and the FE's agents. */
  readonly beStore: string;
  readonly isStore: string;
  readonly feStore: string;
  /** The client-facing URL of `path`. */
  url(path: string): string;
  stop(): Promise<void>;
}

/** Starts BE ← IS ← FE, each on a fresh port; stops what it started if one fails. */
export async function startStreamPrograms(options: StreamChainOptions): Promise<StreamPrograms> {
  const [bePort, beStorePort, isPort, isStorePort, feStorePort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const beStore = `127.0.0.1:${beStorePort}`;
  const isStore = `127.0.0.1:${isStorePort}`;
  const feStore = `127.0.0.1:${feStorePort}`;
  const odb = (env: Record<string, string>): Record<string, string> =>
    options.odb
      ? {
          ODB_KEY_FILE: options.keyFile,
          ODB_LOG_LEVEL: options.logLevel ?? 'warn',
          ...options.env,
          ...env,
        }
      : {};
  const started: NodeProgram[] = [];
  const start = async (name: string, file: string, env: Record<string, string>) => {
    const program = await startNodeProgram(name, streamFixture(file), { odb: options.odb, env });
    started.push(program);
    return program;
  };
  const stop = async (): Promise<void> => {
    await Promise.all(started.map((p) => p.stop()));
  };
  try {
    const be = await start('be', 'be-files.mjs', {
      PORT: String(bePort),
      FILES_DIR: options.filesDir,
      ...odb({ ODB_LISTEN: String(bePort), ODB_STORE_LISTEN: beStore }),
    });
    const is = await start('is1', options.isProgram, {
      PORT: String(isPort),
      UPSTREAM: `http://127.0.0.1:${bePort}`,
      ...odb({
        ODB_LISTEN: String(isPort),
        ODB_CONNECT: `127.0.0.1:${bePort}`,
        ODB_STORE_LISTEN: isStore,
        ...options.isEnv,
      }),
    });
    const fe = await start('fe', 'is-proxy.mjs', {
      PORT: '0',
      UPSTREAM: `http://127.0.0.1:${isPort}`,
      ...odb({ ODB_CONNECT: `127.0.0.1:${isPort}`, ODB_STORE_LISTEN: feStore }),
    });
    return {
      be,
      is,
      fe,
      beStore,
      isStore,
      feStore,
      url: (path) => `http://127.0.0.1:${fe.port}${path}`,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
