/**
 * One GraphQL operation's way in, whichever transport carries it: WebSocket, SSE, Yoga
 * and graphql-http all call this and nothing else to authenticate a request, prepare
 * its document (the one caller of `DocumentCache.prepare`), check its kind, build its
 * execution arguments and open a subscription. A refusal is a {@link OperationRefusal}
 * (a `Failure` of the table in `common/failures.ts`), returned rather than thrown, so a
 * transport answers it the way its protocol says and never by accident.
 *
 * What a subscription field means — which arguments open what on the core, and which
 * fields also yield read-state changes — is known here only (`SUBSCRIPTION_FIELDS`): a
 * new subscription field is a change to `graphql/` alone.
 */
import { createSourceEventStream, getOperationAST, GraphQLError, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLResolveInfo, type GraphQLSchema } from 'graphql';
import { AuthenticationError, bearerToken, principalFromHeader, type Principal, type TokenVerifier } from '../auth/index.js';
import type { MaskError } from '../common/errors.js';
import { Failure, FAILURES, type FailureCode } from '../common/failures.js';
import type { OpenRequest } from '../core/subscriptions.js';
import { compileDirectMutation, type DirectMutation } from './direct-mutation.js';
import type { DocumentCache } from './documents.js';
import type { Fanout, OperationPlan } from './render.js';
import { requirePrincipal, type HeraldContext, type SubscriptionArguments, type TokenHolder } from './schema.js';

/** What a subscription field opens on the core, besides the principal's notifications. */
interface SubscriptionField {
  /** Whether it also yields the user's read-state changes. */
  readonly readState: boolean;
}

/** Every field of `Subscription`, and what each opens. */
const SUBSCRIPTION_FIELDS: Readonly<Record<string, SubscriptionField>> = {
  onNotificationReceived: { readState: false },
  onInboxEvent: { readState: true },
};

/** Told to a client that sends a subscription where no stream can carry it (a plain HTTP request). */
export const SUBSCRIBE_ELSEWHERE =
  'a subscription needs a stream: subscribe over WebSocket (subprotocol graphql-transport-ws) or over SSE (send "Accept: text/event-stream")';

export type OperationKind = 'query' | 'mutation' | 'subscription';

/** An operation as a client sends it, whatever carried it. */
export interface OperationRequest {
  readonly query: string;
  readonly operationName?: string | null | undefined;
  readonly variables?: Readonly<Record<string, unknown>> | null | undefined;
}

/**
 * An operation refused before it ran. `errors` are what the client is told (each still
 * to go through the mask); `stage` says whether its document was refused (syntax,
 * validation, limits) or the operation in it (its kind, or none could be told).
 */
export class OperationRefusal extends Failure {
  override readonly name = 'OperationRefusal';
  constructor(
    code: FailureCode,
    readonly errors: readonly GraphQLError[],
    readonly stage: 'document' | 'operation',
  ) {
    super(code, errors[0]?.message ?? 'the operation was refused');
  }

  /** The status of an HTTP request refused for it. */
  get httpStatus(): number {
    return FAILURES[this.code].http;
  }
}

/** An operation ready to run. */
export interface PreparedOperation {
  readonly kind: OperationKind;
  readonly document: DocumentNode;
  /** What `execute` (a query or mutation) or `subscribe` takes. */
  readonly args: ExecutionArgs & { readonly contextValue: HeraldContext };
  readonly request: OperationRequest;
}

/** How a transport opens a subscription on the core: into its own sink (`openInto`), or a queue (`open`). */
export type OpenOnCore<S extends AsyncIterable<unknown>> = (request: OpenRequest, plan: OperationPlan) => Promise<S>;

export interface OperationPipelineOptions {
  schema: GraphQLSchema;
  /** Parses, validates and (for authenticated requests) keeps documents. */
  documents: DocumentCache;
  /** The one error mask (`common/errors.ts`), built once per server. */
  maskError: MaskError;
  verifier: TokenVerifier;
  /** Renders each subscription's events once per distinct operation. @default none: the server serves no subscription */
  fanout?: Fanout | undefined;
}

export interface PrepareOptions {
  /** Whether the transport can carry a subscription's stream; a plain HTTP answer cannot. @default true */
  readonly streams?: boolean;
  /** The connection the operation came on, when its token can be refreshed in-band (a WebSocket's). @default none */
  readonly tokenHolder?: TokenHolder | undefined;
}

export interface OperationPipeline {
  readonly schema: GraphQLSchema;
  /** The server's one error mask. */
  readonly maskError: MaskError;
  /**
   * The principal of an `Authorization` value: undefined without one, an
   * `AuthenticationError` (`UNAUTHENTICATED`) for a bad or expired token. A transport
   * whose every operation needs a token (WebSocket) asks for `required`: no token is an
   * `AuthenticationError` too.
   */
  authenticate(authorization: unknown): Principal | undefined | AuthenticationError;
  authenticate(authorization: unknown, options: { required: true }): Principal | AuthenticationError;
  /**
   * `request`'s document prepared (kept in the cache only for a `principal`), its
   * operation found and its execution arguments built; or why not. With
   * `streams: false` (a plain HTTP answer) a subscription is refused, saying where to
   * subscribe.
   */
  prepare(request: OperationRequest, principal: Principal | undefined, options?: PrepareOptions): PreparedOperation | OperationRefusal;
  /**
   * Opens the subscription `operation` asks for through `open`, with the fan-out plan
   * that renders its events. `since` is the cursor to resume from when the operation
   * names none (SSE's `Last-Event-ID`). Resolves with the stream `open` gave, or the
   * refusal (a wrong user, a bad cursor, Redis unavailable) as errors to send.
   */
  subscribe<S extends AsyncIterable<unknown>>(operation: PreparedOperation, open: OpenOnCore<S>, since?: string): Promise<S | OperationRefusal>;
  /**
   * A plain mutation's compiled form (`direct-mutation.ts`), made on first use and kept
   * with its document: what `execute` gives for `operation.args`, without `execute`.
   * Undefined for anything else, and for a document that is not kept (no principal). A
   * transport that asks runs it in place of `execute`, and runs `execute` when it answers
   * undefined.
   */
  compiled(operation: PreparedOperation): DirectMutation | undefined;
  /** `result` as it may leave: every error through the mask. */
  masked<R extends ExecutionResult>(result: R): R;
}

/**
 * The failure kind of a refusal's errors, by its first: a `Failure`'s own, a code Herald
 * set, `BAD_REQUEST` for graphql-js' own (syntax, validation, coercion), and
 * `INTERNAL_SERVER_ERROR` for an exception of another kind.
 */
function codeOf(errors: readonly GraphQLError[]): FailureCode {
  const first = errors[0];
  const original = first?.originalError;
  if (original instanceof Failure) return original.code;
  if (original !== undefined && !(original instanceof GraphQLError)) return 'INTERNAL_SERVER_ERROR';
  const code = first?.extensions['code'];
  return typeof code === 'string' && code in FAILURES ? (code as FailureCode) : 'BAD_REQUEST';
}

export function createOperationPipeline(options: OperationPipelineOptions): OperationPipeline {
  const { schema, documents, maskError, verifier, fanout } = options;

  /**
   * Each kept document's compiled mutations, by operation name ('' for none; only names
   * the document holds get here); null where it does not qualify. Held while the document
   * is: the document cache bounds both.
   */
  const directMutations = new WeakMap<DocumentNode, Map<string, DirectMutation | null>>();
  const compiled: OperationPipeline['compiled'] = ({ kind, document, args }) => {
    // Only a kept document (an authenticated request's) is compiled: another is parsed anew for each request.
    if (kind !== 'mutation' || args.contextValue.principal === undefined) return undefined;
    const name = args.operationName ?? '';
    let byName = directMutations.get(document);
    if (byName === undefined) directMutations.set(document, (byName = new Map()));
    let direct = byName.get(name);
    if (direct === undefined) byName.set(name, (direct = compileDirectMutation(schema, document, args.operationName ?? undefined) ?? null));
    return direct ?? undefined;
  };

  const prepare: OperationPipeline['prepare'] = (request, principal, { streams = true, tokenHolder } = {}) => {
    const prepared = documents.prepare(request.query, { keep: principal !== undefined });
    if (prepared.errors) return new OperationRefusal(codeOf(prepared.errors), prepared.errors, 'document');
    const { document } = prepared;
    const operationName = request.operationName ?? undefined;
    const kind = getOperationAST(document, operationName)?.operation;
    if (kind === undefined) return refusal('BAD_REQUEST', 'cannot tell which operation to run: give operationName');
    if (kind === 'subscription' && (!streams || fanout === undefined)) return refusal('BAD_REQUEST', SUBSCRIBE_ELSEWHERE);
    // Every field graphql-js reads, from the start: one added later costs the object a property array.
    const args: PreparedOperation['args'] = {
      schema,
      document,
      contextValue: { principal, tokenHolder } satisfies HeraldContext,
      rootValue: undefined,
      operationName,
      variableValues: request.variables ?? undefined,
    };
    return { kind, document, args, request };
  };

  function authenticate(authorization: unknown): Principal | undefined | AuthenticationError;
  function authenticate(authorization: unknown, options: { required: true }): Principal | AuthenticationError;
  function authenticate(authorization: unknown, { required = false }: { required?: boolean } = {}): Principal | undefined | AuthenticationError {
    try {
      return required ? verifier.verify(bearerToken(authorization)) : principalFromHeader(verifier, authorization);
    } catch (error) {
      if (error instanceof AuthenticationError) return error;
      throw error;
    }
  }

  return {
    schema,
    maskError,
    authenticate,
    prepare,
    compiled,
    async subscribe<S extends AsyncIterable<unknown>>(operation: PreparedOperation, open: OpenOnCore<S>, since?: string): Promise<S | OperationRefusal> {
      if (fanout === undefined) throw new Error('this server serves no subscription');
      const { document, request, args } = operation;
      const plan = fanout.plan({ document, query: request.query, operationName: args.operationName ?? undefined, variables: args.variableValues ?? undefined });
      let opened: S | undefined;
      // graphql-js coerces the field's arguments and hands them here; a throw comes back as errors.
      const result = await createSourceEventStream({
        ...args,
        subscribeFieldResolver: async (_root: unknown, fieldArgs: SubscriptionArguments, _context: unknown, info: GraphQLResolveInfo) => {
          opened = await open(
            {
              principal: requirePrincipal(args.contextValue),
              userName: fieldArgs.userName,
              since: fieldArgs.since ?? since,
              readState: SUBSCRIPTION_FIELDS[info.fieldName]?.readState ?? false,
            },
            plan,
          );
          return opened;
        },
      });
      if (opened !== undefined) return opened;
      const errors = 'errors' in result ? (result.errors ?? []) : [];
      return new OperationRefusal(codeOf(errors), errors, 'operation');
    },
    masked(result) {
      return result.errors ? { ...result, errors: result.errors.map(maskError) } : result;
    },
  };
}

/** A refusal of the operation, with its one error. */
function refusal(code: FailureCode, message: string): OperationRefusal {
  return new OperationRefusal(code, [new GraphQLError(message, { extensions: { code } })], 'operation');
}
