/**
 * `odb be`: the back end. Serves a directory, deterministic synthetic payloads at `/bytes/<n>`,
 * and chunked synthetic bodies at `/chunked/<n>` (written by an ordinary handler, to exercise the
 * capture path). In odb mode it owns a buffer store and its server.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable, pipeline } from 'node:stream';
import { OdbError } from '../core/errors.js';
import type { HostPort } from '../core/net/address.js';
import type { Keyring } from '../core/keys/keyring.js';
import { OdbBackend, applyHead, streamPayload, type PayloadHead } from '../header-mode/backend.js';
import { parseRequestTarget } from '../http-core/request-target.js';
import { FilePayload } from '../store/payloads/file.js';
import type { FetchLimits } from '../store/fetch-limits.js';
import type { SendRateLimits } from '../core/net/send-rate.js';
import type { PayloadSource } from '../store/payloads/source.js';
import { StoreServer } from '../store/server.js';
import { BufferStore } from '../store/store.js';
import type { Logger } from '../core/log.js';
import type { ListenerLimits } from '../http-core/listener-limits.js';
import { TierMetrics, samplesByLabel } from './metrics.js';
import { planResponse, type ResponsePlan } from './representation.js';
import { SocketByteCounter } from './socket-counter.js';
import { StaticRoot, type SymlinkPolicy } from './static-file.js';
import {
  SyntheticPayload,
  defaultSyntheticSeed,
  isSyntheticSeed,
  syntheticChunks,
} from '../store/payloads/synthetic.js';
import { runTier, type RunningTier, type TierMode } from './tier.js';

/** Configuration of the back end. */
export interface BackendConfig {
  readonly listen: HostPort;
  readonly root: string;
  readonly mode: TierMode;
  readonly storeListen: HostPort;
  /** Endpoint written into descriptors; default: the bound store address. */
  readonly storeAdvertise?: string;
  readonly keyring?: Keyring;
  readonly thresholdBytes: number;
  readonly storeBudgetBytes: number;
  readonly storeTtlMs: number;
  /** The key file's path, if any: it is never served, even when it lies under `root`. */
  readonly keyFile?: string;
  /** Symbolic links under `root`: see {@link SymlinkPolicy}; default `inside`. */
  readonly symlinks?: SymlinkPolicy;
  /**
   * On close, how long at most the store keeps serving payloads registered before it (their
   * descriptors are out; front ends fetch them after the response head). Default 0: close at once.
   */
  readonly drainTimeoutMs?: number;
  /** Concurrent-fetch limits of the store (defaults: see defaultFetchLimits). */
  readonly storeFetchLimits?: Partial<FetchLimits>;
  /** The store's no-progress timeout (StoreServerOptions.sendTimeoutMs). */
  readonly storeSendTimeoutMs?: number;
  /** Minimum send rate of the client listener. */
  readonly sendRate?: SendRateLimits;
  readonly metricsListen?: HostPort;
  /** Limits of the client-facing listener. */
  readonly limits?: Partial<ListenerLimits>;
  readonly logger: Logger;
}

const maxSyntheticBytes = 2 ** 40;
const defaultChunkBytes = 16 * 1024;

/** Starts the back end; resolves once every listener is bound. */
export async function startBackend(config: BackendConfig): Promise<RunningTier> {
  const log = config.logger;
  const clientSockets = new SocketByteCounter();
  const storeSockets = new SocketByteCounter();
  const counts = { requests: 0, realBodyBytes: 0 };
  const files = new StaticRoot(
    config.root,
    config.symlinks,
    config.keyFile === undefined ? [] : [config.keyFile],
  );
  let backend: OdbBackend | undefined;
  let storeServer: StoreServer | undefined;
  const addresses: Record<string, string> = {};

  if (config.mode === 'odb') {
    if (!config.keyring) {
      throw new OdbError('ODB_ERR_KEY_FILE', 'odb mode needs --key-file (odb keygen --out FILE)');
    }
    const store = new BufferStore({
      keyring: config.keyring,
      budgetBytes: config.storeBudgetBytes,
      ttlMs: config.storeTtlMs,
    });
    storeServer = new StoreServer({
      store,
      logger: log,
      onSocket: (s) => storeSockets.track(s),
      maxConcurrentFetches: config.storeFetchLimits?.maxFetches,
      maxFetchesPerPayload: config.storeFetchLimits?.maxFetchesPerPayload,
      maxFetchesPerPeer: config.storeFetchLimits?.maxFetchesPerPeer,
      sendTimeoutMs: config.storeSendTimeoutMs,
      // The listener limits of the tier apply to its store too, but for the requests per
      // connection: front ends keep pooled store connections for thousands of fetches.
      limits: { ...config.limits, maxRequestsPerConnection: 0 },
    });
    addresses.store = await storeServer.listen(
      config.storeListen.host,
      config.storeListen.port,
      config.storeAdvertise,
    );
    addresses.storeAdvertised = store.endpoint!;
    backend = new OdbBackend({ store, thresholdBytes: config.thresholdBytes });
  }

  const send = (
    req: IncomingMessage,
    res: ServerResponse,
    source: PayloadSource,
    head: PayloadHead,
  ): void => {
    const done = backend
      ? backend.sendPayload(req, res, source, head)
      : (applyHead(res, head, source),
        streamPayload(req, res, source, (bytes) => (counts.realBodyBytes += bytes)));
    done.catch((err: unknown) => {
      log.warn({ err: String(err), url: req.url }, 'response failed');
      res.destroy();
    });
  };

  const respond = (
    req: IncomingMessage,
    res: ServerResponse,
    plan: ResponsePlan,
    source: () => PayloadSource,
  ): void => {
    if (plan.statusCode === 304 || plan.statusCode === 416) {
      res.writeHead(plan.statusCode, plan.headers).end();
      return;
    }
    send(req, res, source(), { statusCode: plan.statusCode, headers: plan.headers });
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    counts.requests++;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 }).end();
      return;
    }
    const target = parseRequestTarget(req.method, req.url);
    if (target.form !== 'origin') {
      res.writeHead(400, { 'content-length': 0, connection: 'close' }).end();
      return;
    }
    const query = new URLSearchParams(target.query);
    const synthetic = /^\/(bytes|chunked)\/(\d+)$/.exec(target.pathname);
    if (synthetic) {
      const size = Number(synthetic[2]);
      const seed = Number(query.get('seed') ?? defaultSyntheticSeed);
      if (size > maxSyntheticBytes || !isSyntheticSeed(seed)) {
        res.writeHead(400, { 'content-length': 0 }).end();
        return;
      }
      if (synthetic[1] === 'chunked') {
        const chunk = Number(query.get('chunk') ?? defaultChunkBytes);
        backend?.capture(req, res);
        writeChunked(
          req,
          res,
          seed,
          size,
          Number.isSafeInteger(chunk) && chunk > 0 ? chunk : defaultChunkBytes,
        );
        return;
      }
      const plan = planResponse(req, {
        size,
        etag: `"syn-${seed}-${size}"`,
        contentType: 'application/octet-stream',
      });
      respond(req, res, plan, () => new SyntheticPayload(seed, plan.start, plan.length));
      return;
    }
    files.find(target.pathname).then(
      (file) => {
        if (!file) {
          res
            .writeHead(404, { 'content-type': 'text/plain', 'content-length': 10 })
            .end('Not Found\n');
          return;
        }
        const plan = planResponse(req, file.representation);
        respond(
          req,
          res,
          plan,
          () => new FilePayload(file.path, file.identity, plan.start, plan.length),
        );
      },
      (err: unknown) => {
        log.warn({ err: String(err) }, 'static file lookup failed');
        res.writeHead(500, { 'content-length': 0 }).end();
      },
    );
  };

  const metrics = new TierMetrics('be', config.mode);
  if (storeServer) metrics.countLimits('store', storeServer.guard);
  mirrorBackendMetrics(metrics, { counts, clientSockets, storeSockets, backend, storeServer });
  metrics.mirror({
    name: 'odb_files_refused_total',
    help: 'File lookups answered 404 by policy: a symbolic link --symlinks refuses, or the key file',
    type: 'counter',
    labelNames: ['reason'],
    read: () => [
      [{ reason: 'symlink' }, files.stats.refusedSymlinks],
      [{ reason: 'key_file' }, files.stats.refusedNeverServed],
    ],
  });
  return runTier({
    handler: handle,
    listen: config.listen,
    clientSockets,
    metrics,
    metricsListen: config.metricsListen,
    limits: config.limits,
    addresses,
    sendRate: config.sendRate,
    logger: log,
    closeParts: async () => {
      if (storeServer && config.drainTimeoutMs) {
        await untilDrained(storeServer, Date.now() + config.drainTimeoutMs);
      }
      await storeServer?.close();
      storeServer?.store.close();
    },
  });
}

/** How long a draining store waits for a fetch to start before it calls what it holds orphaned. */
const drainQuietMs = 1000;

/**
 * Resolves once the store holds nothing (every payload fetched and released), or when no fetch
 * has streamed or started for {@link drainQuietMs} (what is left has no fetcher coming: its
 * client went away or its descriptor was refused; it would only expire), or at `deadline`.
 */
async function untilDrained(server: StoreServer, deadline: number): Promise<void> {
  let fetches = server.stats.fetches;
  let activeAt = Date.now();
  for (;;) {
    const now = Date.now();
    if (server.store.stats.entries === 0 || now >= deadline || now - activeAt >= drainQuietMs) {
      return;
    }
    if (server.stats.inFlight > 0 || server.stats.fetches !== fetches) activeAt = now;
    fetches = server.stats.fetches;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** An ordinary streaming handler: synthetic bytes in `chunk`-sized writes, no Content-Length. */
function writeChunked(
  req: IncomingMessage,
  res: ServerResponse,
  seed: number,
  size: number,
  chunk: number,
): void {
  res.setHeader('content-type', 'application/octet-stream');
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  function* pieces(): Generator<Buffer> {
    for (const part of syntheticChunks(seed, 0, size)) {
      for (let at = 0; at < part.length; at += chunk) yield part.subarray(at, at + chunk);
    }
  }
  pipeline(Readable.from(pieces(), { objectMode: false }), res, () => {});
}

interface BackendParts {
  readonly counts: { requests: number; realBodyBytes: number };
  readonly clientSockets: SocketByteCounter;
  readonly storeSockets: SocketByteCounter;
  readonly backend: OdbBackend | undefined;
  readonly storeServer: StoreServer | undefined;
}

function mirrorBackendMetrics(metrics: TierMetrics, parts: BackendParts): void {
  const { counts, clientSockets, storeSockets, backend, storeServer } = parts;
  metrics.mirror({
    name: 'odb_requests_total',
    help: 'HTTP requests received',
    type: 'counter',
    read: () => [[{}, counts.requests]],
  });
  metrics.mirror({
    name: 'odb_socket_bytes_total',
    help: 'Bytes received and sent on sockets, by peer (headers and framing included)',
    type: 'counter',
    labelNames: ['peer', 'direction'],
    read: () => [
      [{ peer: 'client', direction: 'received' }, clientSockets.bytesRead],
      [{ peer: 'client', direction: 'sent' }, clientSockets.bytesWritten],
      [{ peer: 'store-client', direction: 'received' }, storeSockets.bytesRead],
      [{ peer: 'store-client', direction: 'sent' }, storeSockets.bytesWritten],
    ],
  });
  metrics.mirror({
    name: 'odb_body_bytes_total',
    help: 'Response body bytes, by how they left: real bytes or as a descriptor',
    type: 'counter',
    labelNames: ['kind'],
    read: () => [
      [{ kind: 'real' }, backend ? backend.stats.realBytes : counts.realBodyBytes],
      [{ kind: 'virtual' }, backend?.stats.virtualBytes ?? 0],
    ],
  });
  metrics.mirror({
    name: 'odb_descriptor_responses_total',
    help: 'Responses answered with a descriptor',
    type: 'counter',
    read: () => [[{}, backend?.stats.virtualResponses ?? 0]],
  });
  if (!storeServer) return;
  const store = storeServer.store;
  metrics.mirror({
    name: 'odb_store_entries',
    help: 'Payloads held by the buffer store',
    type: 'gauge',
    read: () => [[{}, store.stats.entries]],
  });
  metrics.mirror({
    name: 'odb_store_charged_bytes',
    help: 'Budget bytes charged by held payloads',
    type: 'gauge',
    read: () => [[{}, store.stats.chargedBytes]],
  });
  metrics.mirror({
    name: 'odb_store_payloads_total',
    help: 'Payloads by fate: registered, released, expired, or rejected because the store was full',
    type: 'counter',
    labelNames: ['event'],
    read: () => [
      [{ event: 'registered' }, store.stats.registered],
      [{ event: 'released' }, store.stats.released],
      [{ event: 'expired' }, store.stats.expired],
      [{ event: 'rejected_full' }, store.stats.rejectedFull],
    ],
  });
  metrics.mirror({
    name: 'odb_store_transit_bytes',
    help: 'Budget bytes held by fetches: read into memory, not yet flushed to their sockets',
    type: 'gauge',
    read: () => [[{}, store.stats.transitBytes]],
  });
  metrics.mirror({
    name: 'odb_store_transit_squeezed_total',
    help: 'Fetch reads given less memory than they asked for because the budget was spent',
    type: 'counter',
    read: () => [[{}, store.stats.transitSqueezed]],
  });
  metrics.mirror({
    name: 'odb_store_fetches_in_flight',
    help: 'Fetches the buffer store is streaming',
    type: 'gauge',
    read: () => [[{}, storeServer.stats.inFlight]],
  });
  metrics.mirror({
    name: 'odb_store_fetches_refused_total',
    help: 'Fetches refused with ODB_ERR_BUSY, by the limit reached (total, payload, peer)',
    type: 'counter',
    labelNames: ['limit'],
    read: () => samplesByLabel('limit', storeServer.stats.refused),
  });
  metrics.mirror({
    name: 'odb_store_send_timeouts_total',
    help: 'Store connections cut because their peer took nothing for --store-send-timeout',
    type: 'counter',
    read: () => [[{}, storeServer.stats.sendTimeouts]],
  });
  metrics.mirror({
    name: 'odb_store_fetches_total',
    help: 'Fetches served by the buffer store',
    type: 'counter',
    read: () => [[{}, storeServer.stats.fetches]],
  });
  metrics.mirror({
    name: 'odb_store_fetched_bytes_total',
    help: 'Payload bytes served by the buffer store',
    type: 'counter',
    read: () => [[{}, storeServer.stats.fetchedBytes]],
  });
  metrics.mirror({
    name: 'odb_errors_total',
    help: 'Errors by stable code',
    type: 'counter',
    labelNames: ['code'],
    read: () => samplesByLabel('code', storeServer.stats.errors),
  });
  metrics.mirror({
    name: 'odb_store_sends_total',
    help: 'Store fetches by who moved the bytes: the kernel (sendfile), or JavaScript and why',
    type: 'counter',
    labelNames: ['path', 'reason'],
    read: () => {
      const sends = storeServer.stats.sends;
      return [
        [{ path: 'kernel', reason: 'sendfile' }, sends.kernel],
        ...Object.entries(sends.javascript).map(
          ([reason, n]) => [{ path: 'javascript', reason }, n ?? 0] as const,
        ),
      ];
    },
  });
}
