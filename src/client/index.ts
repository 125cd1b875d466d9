// `bastion/client`: the typed client of the Bastion API for programs (the `bastion` command uses it).
//
//   import { connect, unwrap } from 'bastion/client';
//   const bastion = connect({ url: 'https://127.0.0.1:8443', token, ca: './var/tls/server-cert.pem' });
//   const { items } = unwrap(await bastion.GET('/v1/datasets'));
//
// Every route of openapi.yaml is typed (openapi-fetch); uploads, downloads and training events have
// helpers that stream.
export type { components, operations, paths } from '../generated/openapi.js';
export { ApiError, type BastionClient, connect, createBastionClient, type Problem, type Schemas, unwrap } from './client.js';
export {
  type Connection,
  ConnectionError,
  type ConnectionFlags,
  connectionOptions,
  displayPath,
  explainConnectionFailure,
  resolveConnection,
} from './connection.js';
export {
  isTerminalEvent,
  TRAINING_EVENT_TYPES,
  type Training,
  type TrainingEvent,
  type TrainingEventType,
  trainingEvents,
} from './events.js';
export { readSse, type SseEvent, SseParser } from './sse.js';
export {
  type DatasetUploadFields,
  downloadDataset,
  downloadModel,
  type ModelUploadFields,
  multipartBody,
  type OnBytes,
  uploadDataset,
  uploadModel,
} from './transfer.js';
