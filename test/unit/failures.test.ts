/**
 * The failure table: each kind once, and every transport's answer read from it — the
 * GraphQL code through the one mask, the gRPC status, the HTTP status of a refusal.
 */
import { status } from '@grpc/grpc-js';
import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { AuthenticationError, ForbiddenError } from '../../src/auth/index.js';
import { InvalidNameError } from '../../src/names/index.js';
import { createErrorMask } from '../../src/common/errors.js';
import { BrokerUnavailableError, Failure, FAILURES, InvalidInputError, isExpectedFailure, OutcomeUnknownError, type FailureCode } from '../../src/common/failures.js';
import { BadRequestError } from '../../src/graphql/params.js';
import { DeviceLimitError, InvalidDeviceError } from '../../src/push/devices.js';
import { TopicLimitError } from '../../src/push/topics.js';
import { toServiceError } from '../../src/transports/grpc/status.js';
import { refusal } from '../../src/transports/http/refusal.js';

function maskWithLog(production: boolean) {
  const logged: string[] = [];
  const logger = { info: () => undefined, warn: () => undefined, error: (...args: unknown[]) => logged.push(args.join(' ')) };
  return { mask: createErrorMask({ production, logger }), logged };
}

describe('FAILURES', () => {
  it('names a real gRPC status for every kind, and only a fault is unexpected', () => {
    for (const [code, kind] of Object.entries(FAILURES)) {
      expect(status[kind.grpc], code).toBeTypeOf('number');
      expect(kind.http, code).toBeGreaterThanOrEqual(400);
      expect(kind.expected, code).toBe(code !== 'INTERNAL_SERVER_ERROR');
    }
  });

  it('gives the core’s typed errors their kinds', () => {
    const kinds: Array<[Failure, FailureCode]> = [
      [new AuthenticationError('token expired'), 'UNAUTHENTICATED'],
      [new ForbiddenError('not yours'), 'FORBIDDEN'],
      [new InvalidNameError('user name must be a string'), 'BAD_USER_INPUT'],
      [new InvalidInputError('text must not be empty'), 'BAD_USER_INPUT'],
      [new BadRequestError('body is not JSON'), 'BAD_REQUEST'],
      [new BrokerUnavailableError('Redis is unavailable'), 'SERVICE_UNAVAILABLE'],
      [new OutcomeUnknownError('Redis did not confirm the PUBLISH'), 'OUTCOME_UNKNOWN'],
      [new InvalidDeviceError('device.url', 'is not a URL'), 'BAD_USER_INPUT'],
      [new DeviceLimitError(10), 'LIMIT_EXCEEDED'],
      [new TopicLimitError(1000), 'LIMIT_EXCEEDED'],
    ];
    for (const [error, code] of kinds) {
      expect(error.code).toBe(code);
      expect(isExpectedFailure(error)).toBe(true);
    }
    expect(new DeviceLimitError(10).message).toContain('PUSH_MAX_DEVICES_PER_USER');
    expect(new TopicLimitError(1000).message).toContain('PUSH_MAX_TOPICS_PER_USER');
    expect(isExpectedFailure(new Failure('INTERNAL_SERVER_ERROR', 'a fault'))).toBe(false);
    expect(isExpectedFailure(new Error('plain'))).toBe(false);
  });
});

describe.each(Object.keys(FAILURES).filter((code) => code !== 'INTERNAL_SERVER_ERROR') as FailureCode[])('an expected %s failure', (code) => {
  const failure = new Failure(code, `what went wrong (${code})`);

  it('reaches a GraphQL client with its code and message, thrown or wrapped by graphql-js, unlogged', () => {
    const { mask, logged } = maskWithLog(true);
    expect(mask(failure).toJSON()).toEqual({ message: failure.message, extensions: { code } });
    const wrapped = new GraphQLError(failure.message, { originalError: failure, path: ['sendNotification'] });
    expect(mask(wrapped).toJSON()).toEqual({ message: failure.message, path: ['sendNotification'], extensions: { code } });
    expect(logged).toEqual([]);
  });

  it('ends a gRPC call with the table’s status and its message', () => {
    const { mask } = maskWithLog(true);
    expect(toServiceError(failure, mask)).toMatchObject({ code: status[FAILURES[code].grpc], details: failure.message });
  });

  it('refuses an HTTP request with the table’s status', () => {
    const { mask } = maskWithLog(true);
    const refused = refusal(failure, mask);
    expect(refused.status).toBe(FAILURES[code].http);
    expect(JSON.parse(refused.body)).toEqual({ errors: [{ message: failure.message, extensions: { code } }] });
  });
});

describe('an unexpected error', () => {
  it('is INTERNAL on gRPC and 500 over HTTP, masked in production and logged once each', () => {
    const { mask, logged } = maskWithLog(true);
    const fault = new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
    expect(toServiceError(fault, mask)).toMatchObject({ code: status.INTERNAL, details: 'Unexpected error.' });
    const refused = refusal(fault, mask);
    expect(refused.status).toBe(500);
    expect(JSON.parse(refused.body)).toEqual({ errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
    expect(logged).toHaveLength(2);
  });

  it('an unexpected kind of Failure is masked like any fault', () => {
    const { mask, logged } = maskWithLog(true);
    expect(mask(new Failure('INTERNAL_SERVER_ERROR', 'secret detail')).toJSON()).toEqual({
      message: 'Unexpected error.',
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    expect(logged).toHaveLength(1);
  });
});
