/**
 * The operation pipeline, without a transport: what it refuses and how (a `Failure`
 * with the errors to send), the arguments it builds, and what each subscription field
 * opens on the core — the knowledge no transport holds.
 */
import { OperationTypeNode, type GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { AuthenticationError, createTokenVerifier } from '../../src/auth/index.js';
import { createInProcessBroker } from '../../src/broker/in-process.js';
import { Failure } from '../../src/common/failures.js';
import type { OpenRequest } from '../../src/core/subscriptions.js';
import { createDocumentCache } from '../../src/graphql/documents.js';
import { createOperationPipeline, OperationRefusal, SUBSCRIBE_ELSEWHERE, type PreparedOperation } from '../../src/graphql/operation.js';
import type { OperationPlan } from '../../src/graphql/render.js';
import { createValidationRules } from '../../src/graphql/rules.js';
import { buildSchema } from '../../src/graphql/schema.js';
import { createNamer } from '../../src/names/index.js';
import { TEST_SECRET, userToken } from '../support/tokens.js';

const namer = createNamer('herald');
const broker = createInProcessBroker({ retention: { maxLength: 100, maxAgeMs: 60_000 } });
const schema = buildSchema({ broker, namer });
const documents = createDocumentCache({
  schema,
  maxTokens: 1000,
  validationRules: createValidationRules({
    maxDepth: 8,
    maxAliases: 10,
    introspection: false,
    operations: [OperationTypeNode.QUERY, OperationTypeNode.SUBSCRIPTION],
    elsewhere: 'send mutations to the publish server',
  }),
});
const verifier = createTokenVerifier({ secret: TEST_SECRET });
const plan: OperationPlan = { render: () => Buffer.from('{}') };
const pipeline = createOperationPipeline({
  schema,
  documents,
  verifier,
  maskError: (error) => error as GraphQLError,
  fanout: { plan: () => plan },
});
const alice = verifier.verify(userToken('alice'));

/** An async iterable that yields nothing: what a transport's `open` gives back. */
const stream = (): AsyncIterable<never> => ({ [Symbol.asyncIterator]: () => ({ next: async () => ({ value: undefined as never, done: true }) }) });

function prepared(query: string, variables?: Record<string, unknown>): PreparedOperation {
  const operation = pipeline.prepare({ query, variables }, alice);
  if (operation instanceof OperationRefusal) throw operation;
  return operation;
}

describe('the operation pipeline', () => {
  it('prepares an operation: its kind, and execution arguments with the principal as context', () => {
    const operation = prepared('query Me { viewer { name } }');
    expect(operation.kind).toBe('query');
    expect(operation.args.contextValue).toEqual({ principal: alice });
    expect(operation.args.operationName).toBeUndefined();
    expect(prepared('subscription { onNotificationReceived(userName: "alice") { id } }').kind).toBe('subscription');
  });

  it('refuses a document it cannot run with the errors to send, as a Failure', () => {
    const refused = pipeline.prepare({ query: 'subscription {' }, alice);
    expect(refused).toBeInstanceOf(OperationRefusal);
    expect(refused).toBeInstanceOf(Failure);
    expect(refused).toMatchObject({ code: 'BAD_REQUEST', stage: 'document', errors: [{ message: expect.stringContaining('Syntax Error') }] });
  });

  it('refuses a document that does not say which operation to run', () => {
    const refused = pipeline.prepare({ query: 'query A { viewer { name } } query B { viewer { name } }' }, alice);
    expect(refused).toMatchObject({ code: 'BAD_REQUEST', stage: 'operation', errors: [{ message: expect.stringContaining('give operationName') }] });
    expect(pipeline.prepare({ query: 'query A { viewer { name } } query B { viewer { name } }', operationName: 'B' }, alice)).not.toBeInstanceOf(OperationRefusal);
  });

  it('refuses a subscription where no stream carries it, saying where to subscribe', () => {
    const refused = pipeline.prepare({ query: 'subscription { onNotificationReceived(userName: "alice") { id } }' }, alice, { streams: false });
    expect(refused).toMatchObject({ code: 'BAD_REQUEST', stage: 'operation', errors: [{ message: SUBSCRIBE_ELSEWHERE }] });
  });

  it('authenticates: no token is no principal, unless one is required; a bad token is an AuthenticationError', () => {
    expect(pipeline.authenticate(undefined)).toBeUndefined();
    expect(pipeline.authenticate(`Bearer ${userToken('alice')}`)).toMatchObject({ name: 'alice' });
    expect(pipeline.authenticate('Bearer not.a.jwt')).toBeInstanceOf(AuthenticationError);
    expect(pipeline.authenticate(undefined, { required: true })).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('missing token') });
  });

  it.each([
    ['onNotificationReceived', false],
    ['onInboxEvent', true],
  ])('opens %s with its arguments, the fan-out plan and readState %s', async (field, readState) => {
    const opened: Array<[OpenRequest, OperationPlan]> = [];
    const result = await pipeline.subscribe(
      prepared(`subscription On($since: ID) { ${field}(userName: "alice", since: $since) { __typename } }`, { since: 'e1_1000-0' }),
      async (request, given) => {
        opened.push([request, given]);
        return stream();
      },
      'e1_9-0',
    );
    expect(result).not.toBeInstanceOf(OperationRefusal);
    expect(opened).toEqual([[{ principal: alice, userName: 'alice', since: 'e1_1000-0', readState }, plan]]);
  });

  it('resumes from the transport’s cursor when the operation names none', async () => {
    const opened: OpenRequest[] = [];
    await pipeline.subscribe(prepared('subscription { onNotificationReceived(userName: "alice") { id } }'), async (request) => {
      opened.push(request);
      return stream();
    }, 'e1_9-0');
    expect(opened[0]?.since).toBe('e1_9-0');
  });

  it('returns a refused subscription as a Failure holding the resolver’s errors', async () => {
    const refused = await pipeline.subscribe(prepared('subscription { onNotificationReceived(userName: "bob") { id } }'), async () => {
      throw new Failure('FORBIDDEN', 'alice may not read bob’s notifications');
    });
    expect(refused).toBeInstanceOf(OperationRefusal);
    expect(refused).toMatchObject({ code: 'FORBIDDEN', stage: 'operation', errors: [{ message: 'alice may not read bob’s notifications' }] });
  });
});

describe('a mutation on the publish server’s pipeline', () => {
  // The publish server's mutation, with a sender that is never called here.
  const publishSchema = buildSchema({ broker, namer, resolvers: { Mutation: { sendNotification: () => ({ id: 'e1_1-0', duplicate: false, receivedUsers: 0 }) } } });
  const publishDocuments = createDocumentCache({
    schema: publishSchema,
    maxTokens: 1000,
    validationRules: createValidationRules({
      maxDepth: 8,
      maxAliases: 10,
      introspection: false,
      operations: [OperationTypeNode.QUERY, OperationTypeNode.MUTATION],
      elsewhere: 'subscribe on the subscribe server',
    }),
  });
  const publishPipeline = createOperationPipeline({ schema: publishSchema, documents: publishDocuments, verifier, maskError: (error) => error as GraphQLError });
  const SEND = 'mutation Send($to: String!) { sendNotification(to: $to, text: "hi") { id receivedUsers } }';
  const prepare = (query: string, principal = alice) => {
    const operation = publishPipeline.prepare({ query, variables: { to: 'bob' } }, principal);
    if (operation instanceof OperationRefusal) throw operation;
    return operation;
  };

  it('comes compiled when it is plain and its document is kept, once per document', () => {
    const first = prepare(SEND);
    expect(first.kind).toBe('mutation');
    expect(publishPipeline.compiled(first)).toBeTypeOf('function');
    expect(publishPipeline.compiled(prepare(SEND))).toBe(publishPipeline.compiled(first));
  });

  it('comes without a compiled form when it is not plain, or its document is not kept (no principal)', () => {
    expect(publishPipeline.compiled(prepare('mutation { sendNotification(to: "bob", text: "hi") { ... on SendResult { id } } }'))).toBeUndefined();
    expect(publishPipeline.compiled(prepare('{ viewer { name } }'))).toBeUndefined();
    const anonymous = publishPipeline.prepare({ query: SEND, variables: { to: 'bob' } }, undefined);
    expect(anonymous).not.toBeInstanceOf(OperationRefusal);
    expect(publishPipeline.compiled(anonymous as PreparedOperation)).toBeUndefined();
  });
});
