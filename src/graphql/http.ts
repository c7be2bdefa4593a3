/**
 * GraphQL over HTTP (and SSE) for both servers, on GraphQL Yoga. Authenticates each
 * request from its `Authorization` header; a missing header leaves the principal unset
 * (resolvers that need one say so), a bad one is refused before execution.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GraphQLSchema, ValidationRule } from 'graphql';
import { createYoga, type Plugin, type YogaServerOptions } from 'graphql-yoga';
import { AuthenticationError, principalFromHeader, type TokenVerifier } from '../auth/index.js';
import { ErrorCode } from '../common/errors.js';
import { GraphQLError } from 'graphql';
import type { Logger } from '../common/logger.js';
import { GRAPHQL_PATH } from '../http/edge.js';
import type { HeraldContext } from './schema.js';

export interface GraphQLHttpOptions {
  schema: GraphQLSchema;
  verifier: TokenVerifier;
  /** Rules added to GraphQL's own validation. */
  validationRules: readonly ValidationRule[];
  /** GraphiQL on `GET /graphql` from a browser; false to turn it off. */
  graphiql: YogaServerOptions<object, HeraldContext>['graphiql'];
  /** Hides internal error messages from clients. */
  production: boolean;
  logger: Logger;
}

export type NodeHandler = (request: IncomingMessage, response: ServerResponse) => void;

export function createGraphQLHttpHandler(options: GraphQLHttpOptions): NodeHandler {
  const { verifier } = options;
  const rules: Plugin = {
    onValidate({ addValidationRule }) {
      for (const rule of options.validationRules) addValidationRule(rule);
    },
  };
  const yoga = createYoga<object, HeraldContext>({
    schema: options.schema,
    graphqlEndpoint: GRAPHQL_PATH,
    cors: false, // the HTTP edge owns CORS
    landingPage: false,
    graphiql: options.graphiql,
    maskedErrors: { isDev: !options.production },
    logging: { debug: () => undefined, info: () => undefined, warn: options.logger.warn, error: options.logger.error },
    plugins: [rules],
    context: ({ request }) => {
      try {
        return { principal: principalFromHeader(verifier, request.headers.get('authorization') ?? undefined) };
      } catch (error) {
        if (!(error instanceof AuthenticationError)) throw error;
        throw new GraphQLError(error.message, {
          extensions: { code: ErrorCode.Unauthenticated, http: { status: 401 } },
        });
      }
    },
  });
  return (request, response) => {
    void yoga(request, response);
  };
}
