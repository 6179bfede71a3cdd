/**
 * The life of a tier process once its options are valid: start, log `ready`, reload the key
 * file and the TLS certificate on SIGHUP (the certificate also when its files change), drain on
 * SIGTERM/SIGINT.
 *
 * Draining: the listeners stop accepting at once, idle keep-alive connections are closed, every
 * response in flight finishes and then closes its connection; the process exits 0 when all are
 * done or when the drain timeout passes, whichever comes first. A second SIGTERM/SIGINT exits at
 * once with 128 + the signal number, as a shell reports a process killed by it.
 */
import { constants } from 'node:os';
import { loadKeyring, type Keyring } from '../core/keys/keyring.js';
import type { Logger } from '../core/log.js';
import type { HostPort } from '../core/net/address.js';
import type { TlsCredentials } from '../core/net/tls-credentials.js';
import type { RunningTier } from '../tiers/tier.js';
import { describeListenError } from '../core/startup-errors.js';

/** What {@link serve} runs. */
export interface ServeOptions {
  /** Tier name for log lines: `be`, `is`, `fe`. */
  readonly name: string;
  readonly logger: Logger;
  /** How long in-flight responses may take to finish after the first SIGTERM/SIGINT. */
  readonly drainTimeoutMs: number;
  /** Listen flags and the addresses they were given, to name the flag when one cannot bind. */
  readonly listeners: Readonly<Record<string, HostPort | undefined>>;
  /** The key file and the keyring loaded from it: SIGHUP reloads the file into the keyring. */
  readonly keys?: { readonly path: string; readonly keyring: Keyring };
  /** The TLS certificate of the client listener: SIGHUP and changes of its files reload it. */
  readonly tls?: TlsCredentials;
  readonly start: () => Promise<RunningTier>;
}

/** Starts the tier and runs it until a signal stops it (resolves once it is started). */
export async function serve(options: ServeOptions): Promise<void> {
  const { name, logger } = options;
  const reloads = { ok: 0, failed: 0 };
  // Handled before the tier starts: the default action of SIGHUP kills the process. Only the key
  // file and the TLS certificate are reloaded; options and the config file are read once, at
  // start.
  process.on('SIGHUP', () => {
    if (!options.keys && !options.tls) {
      logger.info(
        { signal: 'SIGHUP' },
        `${name}: SIGHUP ignored (no key file or TLS certificate to reload)`,
      );
      return;
    }
    options.tls?.reload('SIGHUP');
    if (!options.keys) return;
    const { path, keyring } = options.keys;
    try {
      keyring.replace(loadKeyring(path, { setting: '--key-file' }));
      reloads.ok++;
      logger.info(
        {
          signal: 'SIGHUP',
          keyIds: keyring.keys.map((k) => k.id),
          signingKeyId: keyring.signing.id,
        },
        `${name}: key file reloaded`,
      );
    } catch (err) {
      reloads.failed++;
      logger.error(
        { signal: 'SIGHUP', err: (err as Error).message },
        `${name}: key file reload failed; keeping the previous keys`,
      );
    }
  });

  let tier: RunningTier;
  try {
    tier = await options.start();
  } catch (err) {
    throw describeListenError(err, options.listeners) ?? err;
  }
  options.tls?.watch();
  // Always logged, whatever the level: scripts and tests wait for this line.
  logger.child({}, { level: 'info' }).info({ addresses: tier.addresses }, 'ready');
  tier.metrics.mirror({
    name: 'odb_key_reloads_total',
    help: 'Key-file reloads on SIGHUP, by result (a failed reload keeps the previous keys)',
    type: 'counter',
    labelNames: ['result'],
    read: () => [
      [{ result: 'ok' }, reloads.ok],
      [{ result: 'failed' }, reloads.failed],
    ],
  });

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, `${name}: second ${signal}, exiting without draining`);
      process.exit(128 + constants.signals[signal]);
    }
    stopping = true;
    options.tls?.close();
    // Listeners close first (synchronously, inside close()), then the line scripts wait for:
    // whoever reads "stopping" and connects must find nothing listening.
    const closed = tier.close();
    logger.info({ signal, drainTimeoutMs: options.drainTimeoutMs }, `${name} stopping`);
    const deadline = setTimeout(() => {
      logger.warn(
        { drainTimeoutMs: options.drainTimeoutMs },
        `${name}: drain timeout passed, exiting with responses still in flight`,
      );
      process.exit(0);
    }, options.drainTimeoutMs);
    closed.then(
      () => {
        clearTimeout(deadline);
        logger.info(`${name} stopped`);
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err: String(err) }, `${name}: closing failed`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
