/**
 * The certificate and private key of a TLS listener (`odb fe --tls-cert/--tls-key`), loaded from
 * PEM files and checked (readable, PEM, an unencrypted key that belongs to the certificate)
 * before a listener uses them, and reloaded on request (SIGHUP) or when the files change: a pair
 * that fails the checks is refused and the one loaded before stays in use, so a listener never
 * loses its certificate. Listeners learn of a new pair through {@link TlsCredentials.onChange}.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import { OdbError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';

/** Where the pair is. */
export interface TlsFiles {
  /** PEM: the server certificate, then any intermediates (the chain sent to clients). */
  readonly certFile: string;
  /** PEM: the certificate's private key, unencrypted. */
  readonly keyFile: string;
}

/** What is logged and measured of a certificate. */
export interface CertificateSummary {
  readonly subject: string;
  readonly issuer: string;
  readonly serialNumber: string;
  readonly fingerprint256: string;
  readonly validFrom: string;
  readonly validTo: string;
  /** `validTo` in ms since the epoch. */
  readonly notAfterMs: number;
}

/** A checked pair, as a listener takes it (`tls.createServer`, `server.setSecureContext`). */
export interface TlsPair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly certificate: CertificateSummary;
}

/** What started a reload. */
export type TlsReloadTrigger = 'SIGHUP' | 'file-change';

/** Counters of a {@link TlsCredentials}; exposed as metrics. */
export interface TlsReloadStats {
  ok: number;
  failed: number;
}

/** How long file events are let settle before the files are read (a writer does several). */
export const defaultTlsWatchDebounceMs = 300;

function tlsFileError(flag: string, path: string, problem: string): OdbError {
  return new OdbError('ODB_ERR_TLS_FILE', `${flag} ${path}: ${problem}`);
}

function readPem(flag: string, path: string, what: string): Buffer {
  let bytes: Buffer;
  try {
    if (!statSync(path).isFile()) throw tlsFileError(flag, path, 'not a regular file');
    bytes = readFileSync(path);
  } catch (err) {
    if (err instanceof OdbError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw tlsFileError(
      flag,
      path,
      code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? String(err)})`,
    );
  }
  if (!bytes.includes('-----BEGIN ')) {
    throw tlsFileError(flag, path, `not PEM; give ${what} in PEM form (-----BEGIN …)`);
  }
  return bytes;
}

/** Reads and checks a pair; throws ODB_ERR_TLS_FILE naming the flag and file at fault. */
export function loadTlsPair(files: TlsFiles): TlsPair {
  const cert = readPem('--tls-cert', files.certFile, 'the certificate chain');
  const key = readPem('--tls-key', files.keyFile, 'the private key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw tlsFileError(
      '--tls-cert',
      files.certFile,
      `holds no certificate (${(err as Error).message})`,
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    // PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`) or traditional (`Proc-Type: 4,ENCRYPTED`).
    const encrypted =
      key.includes('ENCRYPTED') || (err as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE';
    throw tlsFileError(
      '--tls-key',
      files.keyFile,
      encrypted
        ? 'the key is encrypted; give it unencrypted (openssl pkey -in KEY -out KEY.plain)'
        : `holds no private key (${(err as Error).message})`,
    );
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw tlsFileError(
      '--tls-key',
      files.keyFile,
      `is not the key of the certificate in --tls-cert ${files.certFile}; give the matching pair`,
    );
  }
  try {
    // What the listener will do with them: the whole chain must load too.
    createSecureContext({ cert, key });
  } catch (err) {
    throw tlsFileError('--tls-cert', files.certFile, `cannot be used (${(err as Error).message})`);
  }
  return {
    cert,
    key,
    certificate: {
      subject: x509.subject.replace(/\n/g, ', '),
      issuer: x509.issuer.replace(/\n/g, ', '),
      serialNumber: x509.serialNumber,
      fingerprint256: x509.fingerprint256,
      validFrom: x509.validFrom,
      validTo: x509.validTo,
      notAfterMs: Date.parse(x509.validTo),
    },
  };
}

/**
 * The pair a listener serves, reloadable. Create it with {@link TlsCredentials.load} (throws at
 * start, when a bad pair must stop the process); later reloads never throw.
 */
export class TlsCredentials {
  readonly files: TlsFiles;
  readonly stats: TlsReloadStats = { ok: 0, failed: 0 };
  #pair: TlsPair;
  readonly #logger: Logger;
  readonly #listeners = new Set<(pair: TlsPair) => void>();
  readonly #watchers: FSWatcher[] = [];
  #debounce: NodeJS.Timeout | undefined;
  /** The file bytes of the last refused reload, not tried again until they change. */
  #refused: { cert: Buffer; key: Buffer } | undefined;

  private constructor(files: TlsFiles, pair: TlsPair, logger: Logger) {
    this.files = files;
    this.#pair = pair;
    this.#logger = logger;
  }

  /** Loads and checks the pair (throws ODB_ERR_TLS_FILE); logs what it loaded. */
  static load(files: TlsFiles, logger: Logger = silentLogger): TlsCredentials {
    const credentials = new TlsCredentials(files, loadTlsPair(files), logger);
    credentials.#warnAbout(credentials.#pair);
    logger.info({ ...credentials.#pair.certificate }, 'TLS certificate loaded');
    return credentials;
  }

  /** The pair in use. */
  get pair(): TlsPair {
    return this.#pair;
  }

  /** Calls `listener` with each new pair, which is in use once every listener took it. */
  onChange(listener: (pair: TlsPair) => void): void {
    this.#listeners.add(listener);
  }

  /**
   * Loads the files again. A good pair replaces the one in use (the listeners are told) and is
   * logged; a bad one is logged as an error and the pair in use stays. True when replaced.
   */
  reload(trigger: TlsReloadTrigger): boolean {
    let pair: TlsPair;
    try {
      pair = loadTlsPair(this.files);
      // The listeners take it before it counts as in use: one refusing it keeps the old one.
      for (const listener of this.#listeners) listener(pair);
    } catch (err) {
      this.stats.failed++;
      // A watcher seeing these same bytes next does not try (and log) them again.
      this.#refused = this.#readRaw();
      this.#logger.error(
        { trigger, code: 'ODB_ERR_TLS_FILE', err: (err as Error).message },
        'TLS certificate reload failed; keeping the certificate in use',
      );
      return false;
    }
    this.#refused = undefined;
    this.#pair = pair;
    this.stats.ok++;
    this.#warnAbout(pair);
    this.#logger.info(
      { trigger, ...pair.certificate },
      'TLS certificate reloaded: new connections get it',
    );
    return true;
  }

  /**
   * Reloads when either file changes. The files' directories are watched, not the files: a
   * file replaced by a rename (an editor, certbot's links, a Kubernetes secret's `..data`) is a
   * new inode a watch on the old one never sees. Events are let settle for `debounceMs`; files
   * whose bytes are those in use (or those of the last refused reload) are left alone.
   */
  watch(debounceMs = defaultTlsWatchDebounceMs): void {
    if (this.#watchers.length > 0) return;
    const dirs = new Set([dirname(this.files.certFile), dirname(this.files.keyFile)]);
    for (const dir of dirs) {
      try {
        const watcher = watch(dir, { persistent: false }, () => this.#changed(debounceMs));
        watcher.on('error', (err) =>
          this.#logger.warn(
            { dir, err: err.message },
            'TLS files: watching stopped; reload with SIGHUP',
          ),
        );
        this.#watchers.push(watcher);
      } catch (err) {
        this.#logger.warn(
          { dir, err: (err as Error).message },
          'TLS files cannot be watched; reload with SIGHUP',
        );
      }
    }
  }

  /** Stops watching the files. */
  close(): void {
    clearTimeout(this.#debounce);
    this.#debounce = undefined;
    for (const watcher of this.#watchers.splice(0)) watcher.close();
  }

  #changed(debounceMs: number): void {
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      const now = this.#readRaw();
      if (!now) return; // a file missing for now (mid-replacement): its arrival is another event
      const same = (a: { cert: Buffer; key: Buffer } | undefined): boolean =>
        a !== undefined && a.cert.equals(now.cert) && a.key.equals(now.key);
      if (same(this.#pair) || same(this.#refused)) return;
      this.reload('file-change');
    }, debounceMs);
    this.#debounce.unref();
  }

  #readRaw(): { cert: Buffer; key: Buffer } | undefined {
    try {
      return { cert: readFileSync(this.files.certFile), key: readFileSync(this.files.keyFile) };
    } catch {
      return undefined;
    }
  }

  #warnAbout(pair: TlsPair): void {
    const { notAfterMs, validTo } = pair.certificate;
    if (notAfterMs <= Date.now()) {
      this.#logger.warn(
        { validTo, certFile: this.files.certFile },
        'the TLS certificate has expired: clients will refuse it',
      );
    }
    try {
      if (statSync(this.files.keyFile).mode & 0o004) {
        this.#logger.warn(
          { keyFile: this.files.keyFile },
          'the TLS private key file is readable by every user: chmod 600 (or 640 for a group)',
        );
      }
    } catch {
      // Read a moment ago; gone again is the next reload's business.
    }
  }
}
