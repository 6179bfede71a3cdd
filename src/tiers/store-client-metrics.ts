/** The metrics of a front end's store client. */
import type { StoreClient } from '../store/client.js';
import type { TierMetrics } from './metrics.js';

/** Metrics of a front end's store connections: how full they are and who had to wait. */
export function mirrorStoreClientMetrics(metrics: TierMetrics, client: StoreClient): void {
  metrics.mirror({
    name: 'odb_store_connections_in_use',
    help: 'Fetches holding a store connection (at most --store-connections per store)',
    type: 'gauge',
    read: () => [[{}, client.slotUse.taken]],
  });
  metrics.mirror({
    name: 'odb_store_connection_queue',
    help: 'Fetches waiting for a free store connection',
    type: 'gauge',
    read: () => [[{}, client.slotUse.waiting]],
  });
  metrics.mirror({
    name: 'odb_store_connection_waits_total',
    help: 'Fetches that found every store connection busy, by outcome: queued, or timed_out after --store-queue-timeout',
    type: 'counter',
    labelNames: ['outcome'],
    read: () => [
      [{ outcome: 'queued' }, client.stats.queued],
      [{ outcome: 'timed_out' }, client.stats.queueTimeouts],
    ],
  });
}
