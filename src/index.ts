/**
 * ODB — On-Demand Buffers. The package's only entry point; everything else is internal.
 *
 * Back end:  {@link OdbBackend} answers offered requests with descriptors of bodies kept in a
 *            {@link BufferStore}, served by a {@link StoreServer}.
 * Front end: {@link OdbGateway} offers the shortcut, verifies descriptors and delivers the bytes.
 */
export { OdbError, errorCodes, isOdbError, type OdbErrorCode } from './core/errors.js';
export {
  Keyring,
  formatKeyFile,
  generateClusterKey,
  loadKeyring,
  parseKeyFile,
  type ClusterKey,
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
export {
  BufferStore,
  defaultBudgetBytes,
  defaultTtlMs,
  type BufferStoreOptions,
  type StoreStats,
} from './store/store.js';
export { StoreServer, type StoreServerOptions } from './store/server.js';
export {
  StoreClient,
  type FetchOptions,
  type FetchTarget,
  type StoreClientOptions,
} from './store/client.js';
export type { PayloadSource } from './store/payloads/source.js';
export { MemoryPayload } from './store/payloads/memory.js';
export { FilePayload } from './store/payloads/file.js';
export {
  OdbBackend,
  defaultThresholdBytes,
  type OdbBackendOptions,
  type PayloadHead,
} from './header-mode/backend.js';
export {
  OdbGateway,
  answerBadGateway,
  stripOdbHeaders,
  type DeliveryFailure,
  type OdbGatewayOptions,
  type Shortcut,
} from './header-mode/frontend.js';
export {
  SyntheticPayload,
  syntheticBytes,
  syntheticChunks,
  syntheticSha256,
} from './store/payloads/synthetic.js';
