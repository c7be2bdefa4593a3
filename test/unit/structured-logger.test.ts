import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createStructuredLogger } from '../../src/common/structured-logger.js';

function lines(): { stream: Writable & { write(chunk: string): boolean }; read(): Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return {
    stream,
    read: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('the structured logger', () => {
  it('writes one JSON object per line with level, time, role and message', () => {
    const out = lines();
    const logger = createStructuredLogger({ role: 'subscribe', destination: out.stream });
    logger.info('herald: listening');
    logger.warn('herald: websocket client peer-reset:', 'read ECONNRESET');
    const [info, warn] = out.read();
    expect(info).toMatchObject({ level: 30, role: 'subscribe', msg: 'herald: listening' });
    expect(typeof info?.['time']).toBe('string');
    expect(warn).toMatchObject({ level: 40, msg: 'herald: websocket client peer-reset: read ECONNRESET' });
  });

  it('binds a connection id to every line of a child, and serialises errors', () => {
    const out = lines();
    const logger = createStructuredLogger({ role: 'publish', destination: out.stream }).child({ connection: 'c-17' });
    logger.error('herald: unexpected', new Error('boom'));
    const [line] = out.read();
    expect(line).toMatchObject({ level: 50, connection: 'c-17', msg: 'herald: unexpected', err: { message: 'boom', type: 'Error' } });
  });

  it('drops what is below LOG_LEVEL', () => {
    const out = lines();
    const logger = createStructuredLogger({ role: 'all', level: 'warn', destination: out.stream });
    logger.info('quiet');
    logger.warn('loud');
    expect(out.read().map((line) => line['msg'])).toEqual(['loud']);
  });

  it('has no debug below LOG_LEVEL=debug, so callers build no line per request', () => {
    const out = lines();
    expect(createStructuredLogger({ role: 'publish', destination: out.stream }).debug).toBeUndefined();
    const debugging = createStructuredLogger({ role: 'publish', level: 'debug', destination: out.stream });
    debugging.child({ request: 'req-1' }).debug?.('herald: POST /graphql answered 200');
    expect(out.read()).toEqual([expect.objectContaining({ level: 20, request: 'req-1', msg: 'herald: POST /graphql answered 200' })]);
  });
});
