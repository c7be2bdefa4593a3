/**
 * Says, once per origin, that a browser's `Origin` was refused and which variable
 * allows it: an operator who forgot `CORS_ORIGINS` sees it in the first request, and
 * a client sending made-up origins cannot fill the log or the memory.
 */
import type { Logger } from '../../common/logger.js';

/**
 * Characters of refused origins remembered (so each is logged once): 64 KiB, some
 * thousands of real origins. Past it, one line says so and no more origins are logged.
 */
const REFUSED_ORIGINS_MAX_BYTES = 64 * 1024;

/** Returns the function to call with each refused origin. */
export function createRefusedOriginLog(logger: Pick<Logger, 'warn'>, maxBytes = REFUSED_ORIGINS_MAX_BYTES): (origin: string) => void {
  const logged = new Set<string>();
  let bytes = 0;
  let full = false;
  return (origin) => {
    if (full || logged.has(origin)) return;
    // A string's characters take up to two bytes each in V8; a Set entry some more.
    const cost = 2 * origin.length + 64;
    if (bytes + cost > maxBytes) {
      full = true;
      logger.warn(`herald: refused origins are no longer logged one by one (${logged.size} logged); allowed origins are set with CORS_ORIGINS`);
      return;
    }
    logged.add(origin);
    bytes += cost;
    logger.warn(`herald: refused a browser request from origin ${JSON.stringify(origin)}: add it to CORS_ORIGINS (comma-separated) to allow it`);
  };
}
