/**
 * The WebSocket close codes: graphql-transport-ws' own are graphql-ws' numbers, Herald's
 * own collide with none of them, and a reason always fits a close frame.
 */
import { CloseCode as ProtocolCloseCode } from 'graphql-ws';
import { describe, expect, it } from 'vitest';
import { CloseCode, closeReason } from '../../src/transports/websocket/close-codes.js';

describe('CloseCode', () => {
  it('has graphql-ws’ number for every code a server sends', () => {
    for (const name of ['BadRequest', 'Unauthorized', 'Forbidden', 'SubprotocolNotAcceptable', 'ConnectionInitialisationTimeout', 'SubscriberAlreadyExists', 'TooManyInitialisationRequests', 'InternalServerError'] as const) {
      expect(CloseCode[name], name).toBe(ProtocolCloseCode[name]);
    }
  });

  it('gives each failure its own code', () => {
    const codes = Object.values(CloseCode);
    expect(new Set(codes).size).toBe(codes.length);
    expect(Object.values(ProtocolCloseCode)).not.toContain(CloseCode.SlowConsumer);
  });
});

describe('closeReason', () => {
  it('keeps a reason that fits, and cuts one that does not to 123 bytes at most, on a character', () => {
    expect(closeReason('Forbidden: token expired')).toBe('Forbidden: token expired');
    const cut = closeReason(`Forbidden: ${'é'.repeat(100)}`);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(123);
    expect(cut.endsWith('…')).toBe(true);
    expect(cut).not.toContain('\uFFFD');
  });
});
