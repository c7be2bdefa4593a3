/**
 * `@herald/client`: `createHeraldClient` for browsers and Node (exactly once, in order,
 * resumed, tokens refreshed in-band) and `createHeraldPublisher` for services.
 */
export { createHeraldClient } from './client.js';
export { createHeraldPublisher } from './publisher.js';
export { HeraldSendError, HeraldSessionError } from './types.js';
export type {
  HeraldAudience,
  HeraldClient,
  HeraldClientOptions,
  HeraldGap,
  HeraldInbox,
  HeraldNotification,
  HeraldPublisher,
  HeraldPublisherOptions,
  HeraldStatus,
  KeyValueStorage,
  SendInput,
  SendResult,
  TokenSource,
  WebSocketConstructor,
} from './types.js';
