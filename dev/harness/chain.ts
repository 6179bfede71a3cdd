/**
 * The chain of src/demo/chain.ts with a choice of intermediate: `odb is`, or a stock nginx or
 * HAProxy, as the benchmarks and the interoperability tests compare them.
 */
import {
  startChain as startOdbChain,
  type Chain,
  type ChainOptions as OdbChainOptions,
} from '../../src/demo/chain.js';
import { startHaproxy, type HaproxyOptions } from './haproxy.js';
import { startNginx } from './nginx.js';

export type { Chain, ChainRole } from '../../src/demo/chain.js';

/** What runs as the intermediate tiers. */
export type IntermediateKind = 'odb' | 'nginx' | 'haproxy';

/** What chain to start. */
export interface ChainOptions extends Omit<OdbChainOptions, 'startIntermediate'> {
  /** `odb is` (default), a stock nginx, or a stock HAProxy. */
  readonly intermediateKind?: IntermediateKind;
  /** nginx only: veto the shortcut by removing `odb-accept`. */
  readonly nginxVeto?: boolean;
  /** HAProxy only: kernel splicing of bodies (see {@link HaproxyOptions.splice}). */
  readonly haproxySplice?: HaproxyOptions['splice'];
}

/** Starts BE, then the intermediates from the BE side, then the FE. */
export function startChain(options: ChainOptions): Promise<Chain> {
  const { intermediateKind, nginxVeto, haproxySplice, ...rest } = options;
  return startOdbChain({
    ...rest,
    startIntermediate: (name, upstream, where) =>
      intermediateKind === 'nginx'
        ? startNginx({ name, upstreams: [upstream], placement: where, veto: nginxVeto })
        : intermediateKind === 'haproxy'
          ? startHaproxy({ name, upstreams: [upstream], placement: where, splice: haproxySplice })
          : undefined,
  });
}
