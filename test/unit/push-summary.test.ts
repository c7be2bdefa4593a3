/**
 * The push worker's observability parts without a worker: each failed attempt's reason
 * label (one of a fixed set, from the senders' outcomes), the per-kind rows, and the
 * summary at info — written only when something happened, with the counts since the last.
 */
import { describe, expect, it } from 'vitest';
import { countsOf, createPushCounters, failureReasonOf, FAILURE_REASONS, type CountsByKind } from '../../src/push/counters.js';
import { createSummary } from '../../src/push/summary.js';

describe('failureReasonOf', () => {
  it.each([
    [{ outcome: 'gone', reason: 'webhook answered 410 Gone' }, 'unregistered'],
    [{ outcome: 'failed', reason: 'FCM answered 400 INVALID_ARGUMENT' }, 'invalid'],
    [{ outcome: 'refused', reason: 'webhook: 10.0.0.1 is internal' }, 'refused'],
    [{ outcome: 'retry', reason: 'not sent: the circuit is open', circuitOpen: true }, 'circuit_open'],
    [{ outcome: 'retry', reason: 'webhook: timed out', endpointDown: true }, 'timeout'],
    [{ outcome: 'retry', reason: 'FCM answered 503', endpointDown: true }, 'provider_error'],
    [{ outcome: 'retry', reason: 'webhook: connect ECONNREFUSED 203.0.113.1:443', endpointDown: true }, 'provider_error'],
    [{ outcome: 'retry', reason: 'APNs answered 429 TooManyRequests (apns-id x)' }, 'rate_limited'],
    [{ outcome: 'retry', reason: 'FCM answered 401' }, 'provider_error'],
  ] as const)('%j is %s', (outcome, reason) => {
    expect(failureReasonOf(outcome)).toBe(reason);
    expect(FAILURE_REASONS).toContain(reason);
  });
});

describe('countsOf', () => {
  it('makes a kind row at its first use, every reason at 0, and returns the same row after', () => {
    const byKind: CountsByKind = {};
    const row = countsOf(byKind, 'WEBHOOK');
    expect(row).toEqual({ sent: 0, retried: 0, deadLettered: 0, devicesRemoved: 0, failed: Object.fromEntries(FAILURE_REASONS.map((reason) => [reason, 0])) });
    row.failed.timeout += 1;
    expect(countsOf(byKind, 'WEBHOOK').failed.timeout).toBe(1);
    expect(Object.keys(byKind)).toEqual(['WEBHOOK']);
  });
});

describe('createSummary', () => {
  const recording = () => {
    const lines: Array<{ bindings: Record<string, string | number>; message: string }> = [];
    const at = (bindings: Record<string, string | number>) => ({
      info: (message: string) => lines.push({ bindings, message }),
      warn: () => undefined,
      error: () => undefined,
    });
    return { lines, logger: { ...at({}), child: at } };
  };

  it('writes nothing while nothing happened, then the counts since the last summary and the lag', async () => {
    const counters = createPushCounters();
    const { lines, logger } = recording();
    const summarize = createSummary({ counters, logger, lag: async () => ({ unread: 4, pending: 2 }) });
    await summarize();
    expect(lines).toEqual([]);
    counters.sent += 3;
    counters.failed += 2;
    counters.retried += 1;
    counters.devicesRemoved += 1;
    await summarize();
    expect(lines).toHaveLength(1);
    expect(lines[0]?.bindings).toMatchObject({ sent: 3, failed: 2, retried: 1, deadLettered: 0, devicesRemoved: 1, unread: 4, pending: 2 });
    expect(lines[0]?.message).toMatch(/^push: in the last \d+ s: 3 sent, 2 failed, 1 retried, 0 dead-lettered, 1 devices removed; stream: 4 unread, 2 pending$/);
    await summarize();
    expect(lines).toHaveLength(1);
    counters.deadLettered += 1;
    await summarize();
    expect(lines[1]?.bindings).toMatchObject({ sent: 0, deadLettered: 1 });
  });

  it('says how many retries are pending in the retry sets', async () => {
    const counters = createPushCounters();
    const { lines, logger } = recording();
    const summarize = createSummary({ counters, logger, lag: async () => ({ unread: 0, pending: 0 }), retriesPending: async () => 7 });
    counters.retried += 7;
    await summarize();
    expect(lines[0]?.bindings).toMatchObject({ retried: 7, retriesPending: 7 });
    expect(lines[0]?.message).toMatch(/; stream: 0 unread, 0 pending; 7 retries pending$/);
  });

  it('still writes the counts when Redis cannot tell the lag', async () => {
    const counters = createPushCounters();
    const { lines, logger } = recording();
    const summarize = createSummary({ counters, logger, lag: () => Promise.reject(new Error('Connection is closed.')) });
    counters.dryRun += 5;
    await summarize();
    expect(lines[0]?.message).toMatch(/: 0 sent \(and 5 dry-run\), 0 failed, .*devices removed$/);
    expect(lines[0]?.bindings).not.toHaveProperty('pending');
  });
});
