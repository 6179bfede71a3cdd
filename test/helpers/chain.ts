// One odb-mode chain FE → IS → BE shared by the tests of a file: started in `before` in the
// file's own workspace, stopped (and the workspace removed) in `after`.
import { after, before } from 'node:test';
import { startChain, type Chain, type ChainOptions } from '../../dev/harness/chain.js';
import { workspace, type Workspace } from './fixtures.js';

export interface FileChain {
  readonly ws: Workspace;
  /** The running chain (from `before` on). */
  readonly chain: Chain;
}

/** Registers the file's chain; `options`: what differs from an odb chain in the workspace. */
export function odbChainForFile(options: Partial<ChainOptions> = {}): FileChain {
  const ws = workspace();
  let chain: Chain | undefined;
  before(async () => {
    chain = await startChain({
      mode: 'odb',
      root: ws.dir,
      keyFile: ws.keyFile,
      logLevel: 'warn',
      ...options,
    });
  });
  after(async () => {
    await chain?.stop();
    ws.cleanup();
  });
  return {
    ws,
    get chain(): Chain {
      if (!chain) throw new Error('the chain starts in before()');
      return chain;
    },
  };
}
