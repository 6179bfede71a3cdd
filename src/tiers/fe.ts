/**
 * `odb fe`: the front end (gateway) facing clients. In odb mode it offers the shortcut upstream,
 * verifies descriptor responses and delivers their payloads from the owners' buffer stores. In
 * both modes client-supplied `odb-*` headers never go upstream and none reaches a client.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OdbError } from '../errors.js';
import { OdbGateway, answerBadGateway, stripOdbHeaders } from '../http/frontend.js';
import type { ResponseHeaders } from '../http/response-sink.js';
import type { Keyring } from '../keys/keyring.js';
import type { Logger } from '../log.js';
import type { HostPort } from '../net/address.js';
import type { SendRateLimits } from '../net/send-rate.js';
import { isOdbHeader, odbPayloadHeader } from '../protocol/http-headers.js';
import { HttpRelay, relayAsUsual, type RelayHooks } from './http-relay.js';
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
  /** Store endpoints descriptors may name; empty: any that verifies. */
  readonly allowedStores: readonly string[];
  readonly fetchTimeoutMs: number;
  /** Fetches at once per store, and how long one waits for a free one (StoreClientOptions). */
  readonly storeConnections?: number;
  readonly storeQueueTimeoutMs?: number;
  /** Minimum send rate of the client listener. */
  readonly sendRate?: SendRateLimits;
  readonly connectionsPerUpstream: number;
  readonly metricsListen?: HostPort;
  readonly logger: Logger;
}

/** Starts the front end. */
export async function startFrontend(config: FrontendConfig): Promise<RunningTier> {
  const log = config.logger;
  const clientSockets = new SocketByteCounter();
  const upstreamSockets = new SocketByteCounter();
  const storeSockets = new SocketByteCounter();
  let gateway: OdbGateway | undefined;
  if (config.mode === 'odb') {
    if (!config.keyring) throw new Error('odb mode needs a cluster key');
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
  }
  const hooks: RelayHooks = {
    requestHeaders: gateway
      ? (headers) => gateway.offer(headers)
      : (headers) => stripOdbHeaders(headers),
    dropResponseHeader: isOdbHeader,
    responseHead: gateway
      ? shortcutHead(gateway, log)
      : (req, res, _status, headers) => {
          if (headers[odbPayloadHeader] === undefined) return relayAsUsual;
          // A vanilla front end never offers, so a descriptor here means a misconfigured chain.
          refuse(
            log,
            req,
            res,
            new OdbError('ODB_ERR_PROTOCOL', 'descriptor response to a vanilla front end'),
          );
          return undefined;
        },
  };
  const relay = new HttpRelay({
    upstreams: [config.upstream],
    connectionsPerUpstream: config.connectionsPerUpstream,
    hooks,
    onUpstreamSocket: (s) => upstreamSockets.track(s),
    logger: log,
  });
  const metrics = new TierMetrics('fe', config.mode);
  mirrorRelayMetrics(metrics, relay, clientSockets, upstreamSockets, storeSockets);
  if (gateway) {
    mirrorStoreClientMetrics(metrics, gateway.client);
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
      name: 'odb_errors_total',
      help: 'Descriptor responses refused or failed, by stable code',
      type: 'counter',
      labelNames: ['code'],
      read: () => samplesByLabel('code', stats.failures),
    });
  }
  return runTier({
    handler: relay.handle,
    listen: config.listen,
    clientSockets,
    metrics,
    metricsListen: config.metricsListen,
    sendRate: config.sendRate,
    logger: log,
    closeParts: () => Promise.all([relay.close(), gateway?.close()]),
  });
}

/** The response-head hook of an odb front end: deliver shortcuts, relay everything else. */
function shortcutHead(gateway: OdbGateway, log: Logger): NonNullable<RelayHooks['responseHead']> {
  return (req, res, statusCode, headers: ResponseHeaders, statusMessage) => {
    let shortcut;
    try {
      shortcut = gateway.inspect(req.method, statusCode, headers, statusMessage);
    } catch (err) {
      refuse(log, req, res, err as OdbError);
      return undefined;
    }
    if (!shortcut) return relayAsUsual;
    const { descriptor } = shortcut;
    void gateway.deliver(shortcut, res).then((failure) => {
      if (!failure) return;
      const { error, answered502 } = failure;
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
          : 'shortcut failed mid-body: client connection cut',
      );
      if (error.code !== 'ODB_ERR_STORE_UNREACHABLE')
        gateway.client.release(descriptor).catch(() => {});
    });
    return undefined;
  };
}

function refuse(log: Logger, req: IncomingMessage, res: ServerResponse, err: OdbError): void {
  log.warn(
    { code: err.code, reason: err.message, url: req.url },
    'descriptor refused: answered 502',
  );
  answerBadGateway(res);
}
