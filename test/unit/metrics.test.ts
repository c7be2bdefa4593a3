import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/common/metrics.js';
import { createMetricsServer } from '../../src/transports/metrics.js';

describe('metrics', () => {
  it('reads the hot-path integers and the gauge sources when scraped', async () => {
    const metrics = createMetrics({ role: 'subscribe', processMetrics: false });
    metrics.counts.delivered += 41;
    metrics.counts.delivered += 1;
    metrics.counts.slowConsumerCloses = 3;
    let open = 7;
    metrics.connections('websocket', () => open);
    metrics.subscriptions('grpc', () => 2);
    metrics.channels(() => 5);
    metrics.authRefused('expired');
    metrics.authRefused('expired');
    metrics.mutation('sendNotification', 'OK', 0.004);
    metrics.reportWait(0.02);
    const text = await metrics.registry.metrics();
    expect(text).toContain('herald_notifications_delivered_total{role="subscribe"} 42');
    expect(text).toContain('herald_slow_consumer_closes_total{role="subscribe"} 3');
    expect(text).toContain('herald_connections{transport="websocket",role="subscribe"} 7');
    expect(text).toContain('herald_subscriptions{transport="grpc",role="subscribe"} 2');
    expect(text).toContain('herald_redis_channels{role="subscribe"} 5');
    expect(text).toContain('herald_auth_refusals_total{reason="expired",role="subscribe"} 2');
    expect(text).toContain('herald_mutation_duration_seconds_bucket{le="0.005",role="subscribe",field="sendNotification",outcome="OK"} 1');
    expect(text).toContain('herald_delivery_report_wait_seconds_count{role="subscribe"} 1');
    // A later scrape reads the integers again: counters follow them, not what was read before.
    open = 9;
    metrics.counts.delivered += 8;
    const later = await metrics.registry.metrics();
    expect(later).toContain('herald_notifications_delivered_total{role="subscribe"} 50');
    expect(later).toContain('herald_connections{transport="websocket",role="subscribe"} 9');
  });

  it('has the default process metrics and the event-loop delay', async () => {
    const text = await createMetrics({ role: 'publish' }).registry.metrics();
    expect(text).toContain('process_cpu_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_p99_seconds');
  });

  it('serves GET /metrics on its own server, and nothing else', async () => {
    const metrics = createMetrics({ role: 'all', processMetrics: false });
    metrics.counts.published = 12;
    const server = createMetricsServer(metrics.registry);
    const port = await server.start(0, '127.0.0.1');
    try {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await response.text()).toContain('herald_notifications_published_total{role="all"} 12');
      expect((await fetch(`http://127.0.0.1:${port}/graphql`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status).toBe(404);
    } finally {
      await server.stop();
    }
  });
});
