/** `createHeraldClient`: the core — position, dedupe, listeners, inbox — over a {@link NotificationSource}. */
import type { HeraldClient, HeraldClientOptions } from './types.js';

export function createHeraldClient(options: HeraldClientOptions): HeraldClient {
  void options;
  throw new Error('not implemented yet');
}
