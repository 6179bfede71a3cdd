/**
 * ODB — On-Demand Buffers. The package's only entry point; everything else is internal.
 *
 * Back end:  {@link OdbBackend} answers offered requests with descriptors of bodies kept in a
 *            {@link BufferStore}, served by a {@link StoreServer}.
 * Front end: {@link OdbGateway} offers the shortcut, verifies descriptors and delivers the bytes.
 */
export { OdbError, errorCodes, isOdbError, type OdbErrorCode } from './errors.js';
export {
  Keyring,
  formatKeyFile,
  generateClusterKey,
  loadKeyring,
  parseKeyFile,
  type ClusterKey,
} from './keys/keyring.js';
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
} from './rab/store.js';
export { StoreServer, type StoreServerOptions } from './rab/server.js';
export {
  StoreClient,
  type FetchOptions,
  type FetchTarget,
  type StoreClientOptions,
} from './rab/client.js';
export type { PayloadSource } from './rab/payload-source.js';
export { MemoryPayload } from './rab/memory-payload.js';
export { FilePayload } from './rab/file-payload.js';
export {
  OdbBackend,
  defaultThresholdBytes,
  type OdbBackendOptions,
  type PayloadHead,
} from './http/backend.js';
export {
  OdbGateway,
  answerBadGateway,
  stripOdbHeaders,
  type DeliveryFailure,
  type OdbGatewayOptions,
  type Shortcut,
} from './http/frontend.js';
export {
  SyntheticPayload,
  syntheticBytes,
  syntheticChunks,
  syntheticSha256,
} from './tiers/synthetic.js';
