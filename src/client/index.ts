// `bastion/client`: the typed client of the Bastion API for programs (the `bastion` command uses it).
//
//   import { connect, unwrap } from 'bastion/client';
//   const bastion = connect({ url: 'https://127.0.0.1:8443', token, ca: './var/tls/server-cert.pem' });
//   const { items } = unwrap(await bastion.GET('/v1/datasets'));
//
// Every route of openapi.yaml is typed (openapi-fetch); uploads, downloads and training events have
// helpers that stream.
export type { components, operations, paths } from '../generated/openapi.js';
export { ApiError, connect, createBastionClient, unwrap, type BastionClient, type Problem, type Schemas } from './client.js';
export {
  connectionOptions,
  ConnectionError,
  displayPath,
  explainConnectionFailure,
  resolveConnection,
  type Connection,
  type ConnectionFlags,
} from './connection.js';
export {
  isTerminalEvent,
  trainingEvents,
  TRAINING_EVENT_TYPES,
  type Training,
  type TrainingEvent,
  type TrainingEventType,
} from './events.js';
export { readSse, SseParser, type SseEvent } from './sse.js';
export {
  downloadDataset,
  downloadModel,
  multipartBody,
  uploadDataset,
  uploadModel,
  type DatasetUploadFields,
  type ModelUploadFields,
  type OnBytes,
} from './transfer.js';
