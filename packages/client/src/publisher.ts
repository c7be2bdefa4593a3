/** `createHeraldPublisher`: sends with one idempotency key per call, retried until a deadline. */
import type { HeraldPublisher, HeraldPublisherOptions } from './types.js';

export function createHeraldPublisher(options: HeraldPublisherOptions): HeraldPublisher {
  void options;
  throw new Error('not implemented yet');
}
