/**
 * `odb fe`: the front end (gateway) facing clients. In odb mode it offers the shortcut upstream,
 * verifies descriptor responses and delivers their payloads from the owners' buffer stores. In
 * both modes client-supplied `odb-*` headers never go upstream and none reaches a client.
 */
import { networkInterfaces } from 'node:os';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OdbError, isOdbError, type OdbErrorCode } from '../core/errors.js';
import {
  OdbGateway,
  answerBadGateway,
  stripOdbHeaders,
  type Shortcut,
  type StoreKeyCheck,
} from '../header-mode/frontend.js';
import { parseRequestTarget } from '../http-core/request-target.js';
import type { ResponseHeaders } from '../http-core/response-sink.js';
import type { Keyring } from '../core/keys/keyring.js';
import type { Logger } from '../core/log.js';
import type { ListenerLimits } from '../http-core/listener-limits.js';
import { parseHostPort, type HostPort } from '../core/net/address.js';
import { descriptorResponseHeaders, isOdbHeader } from '../protocol/http-headers.js';
import { isStoreProtocolPath } from '../protocol/store-rpc.js';
import {
  HttpRelay,
  relayAsUsual,
  type RelayAttempt,
  type RelayHooks,
  type UpstreamQueueLimits,
} from './http-relay.js';
import type { SendRateLimits } from '../core/net/send-rate.js';
import type { TlsCredentials } from '../core/net/tls-credentials.js';
import { TierMetrics, samplesByLabel } from './metrics.js';
import { mirrorRelayMetrics } from './relay-metrics.js';
import { SocketByteCounter } from './socket-counter.js';
import { mirrorStoreClientMetrics } from './store-client-metrics.js';
import { runTier, type RunningTier, type TierMode } from './tier.js';

/** Configuration of the front end. */
export interface FrontendConfig {
  readonly listen: HostPort;
  readonly upstream: string;
  readonly mode: TierMode;
  readonly keyring?: Keyring;
  /** Store endpoints descriptors may name; at least one in odb mode. */
  readonly allowedStores: readonly string[];
  readonly fetchTimeoutMs: number;
  /** Fetches at once per store, and how long one waits for a free one (StoreClientOptions). */
  readonly storeConnections?: number;
  readonly storeQueueTimeoutMs?: number;
  /** Minimum send rate of the client listener. */
  readonly sendRate?: SendRateLimits;
  readonly connectionsPerUpstream: number;
  /**
   * Re-send a GET/HEAD/OPTIONS without a body once, without the offer, when its descriptor was
   * refused or its store failed before the client's response started (default true).
   */
  readonly retryWithoutOffer?: boolean;
  /** How often the stores' keys are checked against this front end's (default 30 s). */
  readonly keyCheckIntervalMs?: number;
  readonly metricsListen?: HostPort;
  /** Limits of the client-facing listener. */
  readonly limits?: Partial<ListenerLimits>;
  /**
   * Terminate TLS: the client listener is HTTPS with this certificate (reloaded as it changes).
   * Bodies to TLS clients are encrypted in user space, so they take the JavaScript path.
   */
  readonly tls?: TlsCredentials;
  /** Waiting for a free upstream connection: most requests queued, and longest wait. */
  readonly upstreamQueue?: UpstreamQueueLimits;
  readonly logger: Logger;
}

/** Refusals after which the payload is still worth releasing in its (allowed) store. */
const releasedOnRefusal: ReadonlySet<OdbErrorCode> = new Set<OdbErrorCode>([
  'ODB_ERR_UNKNOWN_KEY',
  'ODB_ERR_BAD_MAC',
  'ODB_ERR_BAD_HEAD',
  'ODB_ERR_PROTOCOL',
]);

/** Per-tier counters of the front end's own decisions. */
interface FrontendCounts {
  /** Requests re-sent without the offer, by the code that made the shortcut unusable. */
  readonly retries: Partial<Record<OdbErrorCode, number>>;
  /** The last key check of each allowed store. */
  readonly keyChecks: Record<string, StoreKeyCheck>;
}

/** Starts the front end. */
export async function startFrontend(config: FrontendConfig): Promise<RunningTier> {
  const log = config.logger;
  const clientSockets = new SocketByteCounter();
  const upstreamSockets = new SocketByteCounter();
  const storeSockets = new SocketByteCounter();
  const counts: FrontendCounts = { retries: {}, keyChecks: {} };
  let gateway: OdbGateway | undefined;
  if (config.mode === 'odb') {
    if (!config.keyring) {
      throw new OdbError('ODB_ERR_KEY_FILE', 'odb mode needs --key-file (odb keygen --out FILE)');
    }
    if (config.allowedStores.length === 0) {
      throw new OdbError(
        'ODB_ERR_INVALID_OPTION',
        '--store-allow is required in odb mode: name the buffer stores of your back ends ' +
          '(the --store-listen or --store-advertise address of each odb be), e.g. --store-allow 10.0.0.5:8081',
      );
    }
    gateway = new OdbGateway({
      keyring: config.keyring,
      allowedStores: config.allowedStores,
      fetch: {
        fetchTimeoutMs: config.fetchTimeoutMs,
        connectionsPerStore: config.storeConnections,
        queueTimeoutMs: config.storeQueueTimeoutMs,
        onSocket: (s) => storeSockets.track(s),
      },
    });
    gateway.onJavaScriptPath((reason, why) =>
      log.info({ reason, why }, 'descriptor bodies delivered by JavaScript, not splice'),
    );
  }
  // The hooks re-send through the relay, which is created right after them (and before any call).
  const retry = (req: IncomingMessage, res: ServerResponse, error: OdbError): boolean => {
    if (config.retryWithoutOffer === false || !relay.canRelayAgain(req)) return false;
    counts.retries[error.code] = (counts.retries[error.code] ?? 0) + 1;
    log.warn(
      { code: error.code, reason: error.message, url: req.url },
      'shortcut unusable: request sent again without the offer',
    );
    relay.relayAgain(req, res);
    return true;
  };
  const hooks: RelayHooks = {
    requestHeaders: (headers, req, attempt) => {
      if (gateway && offers(req, attempt)) gateway.offer(headers);
      else stripOdbHeaders(headers);
    },
    dropResponseHeader: isOdbHeader,
    responseHead: (req, res, statusCode, headers, statusMessage, attempt) => {
      if (!gateway || !offers(req, attempt)) {
        if (!descriptorResponseHeaders.some((name) => headers[name] !== undefined)) {
          return relayAsUsual;
        }
        // Nothing offered the shortcut, so a descriptor here means a misconfigured chain (or a
        // store-protocol request looping back through this front end): never relayed.
        refuse(
          log,
          req,
          res,
          new OdbError('ODB_ERR_PROTOCOL', 'descriptor response to a request without the offer'),
        );
        return undefined;
      }
      let shortcut: Shortcut | undefined;
      try {
        shortcut = gateway.inspect(req.method, statusCode, headers, statusMessage);
      } catch (err) {
        const error = isOdbError(err) ? err : new OdbError('ODB_ERR_PROTOCOL', String(err));
        releaseRefused(gateway, headers, error);
        if (!retry(req, res, error)) refuse(log, req, res, error);
        return undefined;
      }
      if (!shortcut) return relayAsUsual;
      deliver(gateway, shortcut, req, res, log, (error) => retry(req, res, error));
      return undefined;
    },
  };
  const relay: HttpRelay = new HttpRelay({
    upstreams: [config.upstream],
    connectionsPerUpstream: config.connectionsPerUpstream,
    queue: config.upstreamQueue,
    hooks,
    onUpstreamSocket: (s) => upstreamSockets.track(s),
    logger: log,
  });
  const metrics = new TierMetrics('fe', config.mode);
  mirrorRelayMetrics(metrics, relay, clientSockets, upstreamSockets, storeSockets, () =>
    gateway ? gateway.stats.clientAborts : 0,
  );
  let keyCheckTimer: NodeJS.Timeout | undefined;
  if (gateway) {
    mirrorStoreClientMetrics(metrics, gateway.client);
    mirrorGatewayMetrics(metrics, gateway, counts);
    keyCheckTimer = watchStoreKeys(gateway, counts, log, config.keyCheckIntervalMs ?? 30_000);
  }
  const tier = await runTier({
    handler: relay.handle,
    listen: config.listen,
    clientSockets,
    metrics,
    metricsListen: config.metricsListen,
    limits: config.limits,
    sendRate: config.sendRate,
    tls: config.tls,
    logger: log,
    closeParts: () => {
      clearInterval(keyCheckTimer);
      return Promise.all([relay.close(), gateway?.close()]);
    },
  });
  const own = ownStoreEndpoint(config.allowedStores, tier.addresses);
  if (own) {
    await tier.close();
    throw new OdbError(
      'ODB_ERR_INVALID_OPTION',
      `--store-allow ${own} is this front end's own listener: a descriptor naming it would make ` +
        'the front end fetch from itself; name the back ends’ stores instead',
    );
  }
  return tier;
}

/**
 * Whether this request carries the offer: odb mode, first attempt, and not a store-protocol
 * request. A front end is never a store, so a store request reaching it (a descriptor that named
 * it, or a client probing) is relayed plainly and its answer is never taken for a shortcut: no
 * fetch can lead back here.
 */
function offers(req: IncomingMessage, attempt: RelayAttempt): boolean {
  if (attempt === 'retry') return false;
  const target = parseRequestTarget(req.method, req.url);
  return target.form !== 'origin' || !isStoreProtocolPath(target.pathname);
}

/** Delivers a shortcut; on failure logs, and releases the payload where the store can take it. */
function deliver(
  gateway: OdbGateway,
  shortcut: Shortcut,
  req: IncomingMessage,
  res: ServerResponse,
  log: Logger,
  beforeHead: (error: OdbError) => boolean,
): void {
  const { descriptor } = shortcut;
  void gateway.deliver(shortcut, res, { beforeHead }).then((failure) => {
    if (!failure) return;
    const { error, answered502, clientGone, storeAnswered } = failure;
    if (clientGone) {
      log.debug({ url: req.url, store: descriptor.endpoint }, 'client went away mid-delivery');
    } else {
      log.warn(
        {
          code: error.code,
          reason: error.message,
          url: req.url,
          store: descriptor.endpoint,
          answered502,
        },
        answered502
          ? 'shortcut failed: answered 502'
          : res.headersSent
            ? 'shortcut failed mid-body: client connection cut'
            : 'shortcut failed before the head',
      );
    }
    // Nothing more goes to an endpoint that failed: a release would only wait for it again.
    if (storeAnswered) gateway.client.release(descriptor).catch(() => {});
  });
}

/** Releases the payload of a refused descriptor response when its store is allowed. */
function releaseRefused(gateway: OdbGateway, headers: ResponseHeaders, error: OdbError): void {
  if (!releasedOnRefusal.has(error.code)) return;
  const descriptor = gateway.refusedDescriptor(headers);
  if (descriptor) gateway.client.release(descriptor).catch(() => {});
}

function refuse(log: Logger, req: IncomingMessage, res: ServerResponse, err: OdbError): void {
  log.warn(
    { code: err.code, reason: err.message, url: req.url },
    'descriptor refused: answered 502',
  );
  answerBadGateway(res);
}

/**
 * Checks the stores' keys now and every `intervalMs`; logs each store's result when it changes
 * (an error for a mismatch: every large response from that store would be refused).
 */
function watchStoreKeys(
  gateway: OdbGateway,
  counts: FrontendCounts,
  log: Logger,
  intervalMs: number,
): NodeJS.Timeout {
  const check = async (): Promise<void> => {
    const results = await gateway.checkStoreKeys();
    for (const [store, result] of Object.entries(results)) {
      if (counts.keyChecks[store] === result) continue;
      counts.keyChecks[store] = result;
      if (result === 'ok')
        log.info({ store }, 'store key check: the store signs with a key held here');
      else if (result === 'unreachable')
        log.warn({ store }, 'store key check: store not reachable (checked again later)');
      else
        log.error(
          {
            store,
            result,
            code: result === 'unknown-key' ? 'ODB_ERR_UNKNOWN_KEY' : 'ODB_ERR_BAD_MAC',
          },
          'store key check failed: this front end cannot verify descriptors from that store, ' +
            'so its large responses are refused; give every tier the same key file (docs/security.md)',
        );
    }
  };
  void check();
  const timer = setInterval(() => void check(), intervalMs);
  timer.unref();
  return timer;
}

/** The first allowed store that is one of this process's own listeners, if any. */
function ownStoreEndpoint(
  allowed: readonly string[],
  addresses: Readonly<Record<string, string>>,
): string | undefined {
  const local = new Set(['localhost', '0.0.0.0', '::']);
  for (const list of Object.values(networkInterfaces()))
    for (const info of list ?? []) local.add(info.address);
  const ownPorts = new Map<number, string>();
  for (const address of Object.values(addresses)) {
    const { host, port } = parseHostPort(address);
    ownPorts.set(port, host);
  }
  return allowed.find((endpoint) => {
    const { host, port } = parseHostPort(endpoint);
    const ownHost = ownPorts.get(port);
    if (ownHost === undefined) return false;
    const bare = host.replace(/^\[|\]$/g, '');
    const wildcard = ownHost === '0.0.0.0' || ownHost === '::';
    return bare === ownHost || (local.has(bare) && (wildcard || local.has(ownHost)));
  });
}

function mirrorGatewayMetrics(
  metrics: TierMetrics,
  gateway: OdbGateway,
  counts: FrontendCounts,
): void {
  const stats = gateway.stats;
  metrics.mirror({
    name: 'odb_descriptor_responses_total',
    help: 'Descriptor responses delivered from buffer stores',
    type: 'counter',
    read: () => [[{}, stats.shortcuts]],
  });
  metrics.mirror({
    name: 'odb_bypassed_bytes_total',
    help: 'Payload bytes fetched from buffer stores instead of relayed through the chain',
    type: 'counter',
    read: () => [[{}, stats.deliveredBytes]],
  });
  metrics.mirror({
    name: 'odb_deliveries_total',
    help: 'Descriptor responses by who moved the body: the kernel (splice), or JavaScript and why',
    type: 'counter',
    labelNames: ['path', 'reason'],
    read: () => [
      [{ path: 'kernel', reason: 'splice' }, stats.deliveries.kernel],
      ...Object.entries(stats.deliveries.javascript).map(
        ([reason, n]) => [{ path: 'javascript', reason }, n ?? 0] as const,
      ),
    ],
  });
  metrics.mirror({
    name: 'odb_errors_total',
    help: 'Descriptor responses refused or failed, by stable code',
    type: 'counter',
    labelNames: ['code'],
    read: () => samplesByLabel('code', stats.failures),
  });
  metrics.mirror({
    name: 'odb_retries_total',
    help: 'Requests sent again without the offer after their shortcut was unusable, by code',
    type: 'counter',
    labelNames: ['code'],
    read: () => samplesByLabel('code', counts.retries),
  });
  metrics.mirror({
    name: 'odb_store_key_check',
    help: "1 for each allowed store's last key check result (ok, unknown-key, mismatch, unreachable)",
    type: 'gauge',
    labelNames: ['store', 'result'],
    read: () =>
      Object.entries(counts.keyChecks).flatMap(([store, current]) =>
        (['ok', 'unknown-key', 'mismatch', 'unreachable'] as const).map(
          (result) => [{ store, result }, result === current ? 1 : 0] as const,
        ),
      ),
  });
}
