/**
 * The internal metrics endpoint: `GET /metrics` in Prometheus' text format on its own
 * port (`METRICS_PORT`), never on the public ones. Anything else is a 404.
 */
import { createServer } from 'node:http';
import type { Registry } from 'prom-client';
import type { HeraldServer } from '../common/server.js';
import { listen, shutdown } from './http/lifecycle.js';

export function createMetricsServer(registry: Registry): HeraldServer {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('metrics are at GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'Content-Type': registry.contentType }).end(request.method === 'HEAD' ? undefined : text),
      (error: unknown) => response.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${String(error)}\n`),
    );
  });
  return {
    start: (port, host) => listen(server, port, host),
    stop: () => shutdown(server, 1000),
  };
}
