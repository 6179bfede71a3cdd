/**
 * A chain of stock programs only, FE → IS → BE, as the anchors ODB's chains are measured against:
 * an nginx static-file back end (sendfile), a HAProxy intermediate splicing bodies, and an nginx
 * (its stock proxy defaults) or a splicing HAProxy as the front end.
 */
import { startHaproxy } from './haproxy.js';
import { startNginx, startNginxStatic } from './nginx.js';
import { loopback, type Placement } from '../../src/demo/placement.js';
import type { TierHandle } from '../../src/demo/tier-handle.js';
import type { ChainRole } from '../../src/demo/chain.js';

/** What runs as a stock front end. */
export type StockFrontEnd = 'nginx' | 'haproxy';

/** Options of {@link startStockChain}. */
export interface StockChainOptions {
  /** Directory the nginx back end serves (readable by its unprivileged workers). */
  readonly root: string;
  readonly frontEnd: StockFrontEnd;
  /** Where each role runs. Default: all on loopback. */
  readonly place?: (role: ChainRole) => Placement;
}

/** A running stock chain: tiers named `be`, `is1`, `fe` like an `odb` chain's. */
export interface StockChain {
  /** Every tier, BE first. */
  readonly processes: readonly TierHandle[];
  /** URL of `path` at the FE. */
  url(path: string): string;
  stop(): Promise<void>;
}

/**
 * Starts an nginx back end serving `root`, a HAProxy intermediate with forced splicing, and the
 * front end: HAProxy with forced splicing, or nginx as a plain reverse proxy (HTTP/1.0 upstream,
 * buffering on, large bodies spooled to its temp files). No tier writes an access log.
 */
export async function startStockChain(options: StockChainOptions): Promise<StockChain> {
  const place = options.place ?? (() => loopback);
  const started: TierHandle[] = [];
  const stop = (): Promise<void> => Promise.all(started.map((p) => p.stop())).then(() => {});
  try {
    const be = await startNginxStatic({ name: 'be', root: options.root, placement: place('be') });
    started.push(be);
    const is = await startHaproxy({
      name: 'is1',
      upstreams: [be.addresses.http!],
      placement: place('is1'),
      splice: 'forced',
    });
    started.push(is);
    const feOptions = { name: 'fe', upstreams: [is.addresses.http!], placement: place('fe') };
    const fe =
      options.frontEnd === 'haproxy'
        ? await startHaproxy({ ...feOptions, splice: 'forced' })
        : await startNginx({ ...feOptions, accessLog: false });
    started.push(fe);
    return { processes: started, url: (path) => `http://${fe.addresses.http}${path}`, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
