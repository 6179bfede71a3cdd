/**
 * ODB — On-Demand Buffers. The package's only entry point; everything else is internal.
 *
 * Back end:  {@link OdbBackend} answers offered requests with descriptors of bodies kept in a
 *            {@link BufferStore}, served by a {@link StoreServer}.
 * Front end: {@link OdbGateway} offers the shortcut, verifies descriptors and delivers the bytes.
 */
export {
  OdbError,
  errorCodes,
  httpStatusOf,
  isOdbError,
  type OdbErrorCode,
} from './core/errors.js';
export {
  Keyring,
  formatKeyFile,
  generateClusterKey,
  loadKeyring,
  parseKeyFile,
  type ClusterKey,
  type ReadKeyFileOptions,
} from './core/keys/keyring.js';
export {
  decodeDescriptor,
  deriveDescriptor,
  descriptorFromText,
  descriptorToText,
  signDescriptor,
  verifyDescriptor,
  type Descriptor,
  type DescriptorFields,
} from './protocol/descriptor.js';
export {
  odbAcceptHeader,
  odbCacheControlHeader,
  odbContentLengthHeader,
  odbPayloadHeader,
} from './protocol/http-headers.js';
export type { StorePing } from './protocol/store-rpc.js';
export type { KeyCheck } from './protocol/key-proof.js';
export type { ResponseHeaders } from './http-core/response-sink.js';
export type { ListenerGuard, ListenerLimits, LimitHit } from './http-core/listener-limits.js';
export {
  BufferStore,
  defaultBudgetBytes,
  defaultTtlMs,
  type BufferStoreOptions,
  type StoreEntry,
  type StoreStats,
} from './store/store.js';
export { StoreServer, type StoreServerOptions, type StoreServerStats } from './store/server.js';
export type { JavaScriptSendReason, StoreSendStats } from './store/kernel-send.js';
export type { SpliceTarget } from './store/spliced-fetch.js';
export type { FlushScope } from './core/net/socket-handoff.js';
export type { Transfer, TransferEnd, TransferEngine } from './native/transfer.js';
export type { FetchLimitKind, FetchLimits } from './store/fetch-limits.js';
export {
  StoreClient,
  type FetchOptions,
  type FetchTarget,
  type StoreClientOptions,
  type StoreClientStats,
} from './store/client.js';
export type { SlotStats } from './store/connection-slots.js';
export type { PayloadSource, ReadOptions } from './store/payloads/source.js';
export { MemoryPayload } from './store/payloads/memory.js';
export { FilePayload, type FileIdentity } from './store/payloads/file.js';
export {
  OdbBackend,
  defaultThresholdBytes,
  type OdbBackendOptions,
  type OdbBackendStats,
  type PayloadHead,
} from './header-mode/backend.js';
export {
  OdbGateway,
  answerBadGateway,
  stripOdbHeaders,
  type DeliverOptions,
  type JavaScriptDeliveryReason,
  type DeliveryFailure,
  type OdbGatewayOptions,
  type OdbGatewayStats,
  type Shortcut,
  type StoreKeyCheck,
} from './header-mode/frontend.js';
export {
  SyntheticPayload,
  syntheticBytes,
  syntheticChunks,
  syntheticSha256,
} from './store/payloads/synthetic.js';
