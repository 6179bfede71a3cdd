/**
 * Loaded after the layer (`NODE_OPTIONS=--import=register.js --import=this`) into every Node
 * process of a suite: at exit, writes the layer's counters (descriptors sent and received, real
 * frames, fetches) to a file of its own under $TRANSPARENCY_STATS_DIR. A suite that passes
 * under the layer says something only if the layer was engaged; these counters show it was.
 * A file, not stderr: tests read their children's stderr. Costs the process one 'exit' listener.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

const dir = process.env.TRANSPARENCY_STATS_DIR;

/** register.ts keeps its installation under a versioned global symbol, odb.register.N. */
function layerStats(): Record<string, unknown> | undefined {
  const global = globalThis as unknown as Record<symbol, unknown>;
  for (const symbol of Object.getOwnPropertySymbols(globalThis)) {
    if (!symbol.description?.startsWith('odb.register.')) continue;
    const installation = global[symbol] as { runtime?: { stats?: Record<string, unknown> } };
    if (typeof installation === 'object') return installation.runtime?.stats;
  }
  return undefined;
}

if (dir && isMainThread) {
  process.on('exit', () => {
    const stats = layerStats();
    if (!stats) return;
    try {
      writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify(stats));
    } catch {
      // The run's directory is gone (the runner stopped): nothing to report to.
    }
  });
}
