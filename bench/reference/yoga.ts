/**
 * Reference 1: plain GraphQL Yoga, with graphql-ws (`useServer` from `graphql-ws/use/ws`)
 * for WebSockets and `@graphql-yoga/redis-event-target` under `createPubSub`, wired the
 * way Yoga's "Subscriptions → graphql-ws" and "Redis event target" pages show, on
 * Herald's `schema.graphql`. The token checks are the bench's own (`./auth.ts`), shared
 * with the Mercurius reference. bench/run.ts starts it twice on one Redis, as Herald is
 * run: one instance holds the subscriptions, the other takes the mutations.
 *
 *   REDIS_URL=redis://… JWT_SECRET=… PORT=4610 node --import tsx bench/reference/yoga.ts
 *
 * What made the old reference hold ~44 KB per idle connection instead of ~25 KB was not
 * in its wiring but in how it was run: one process held the connections *and* answered
 * the 4,000 warm-up mutations the bench sends to prove every subscription live. Yoga's
 * HTTP path grew the V8 heap by ~80 MB of garbage (after a forced GC, heapUsed fell back
 * to 88 MB while heapTotal stayed at 208 MB) and RSS kept it: 45 KB per connection with
 * the warm-ups sent to the same process, 24–25 KB with them sent to a second instance,
 * the same code otherwise. Herald's subscribe process never serves a mutation, so the
 * reference's connection-holding instance no longer does either.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { GraphQLError } from 'graphql';
import { Redis } from 'ioredis';
import type { ExecutionArgs } from 'graphql';
import type { ExecutionResult } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { createPubSub, createSchema, createYoga } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { canPublish, createReferenceAuth, type Claims } from './auth.js';

interface Notification {
  id: string;
  text: string;
  timestamp: number;
  audience: 'USER';
  sender: string;
}

interface SendResult {
  id: string;
  duplicate: boolean;
  /** The Redis channel it went to, for `receivedUsers`. */
  channel: string;
}

/** What graphql-ws keeps per connection beside the socket: the verified subscriber. */
type ConnectionExtra = { user?: Claims };

/** Yoga's context: `request` on HTTP, graphql-ws' connection context on a WebSocket. */
interface ReferenceContext {
  request?: Request;
  extra?: ConnectionExtra;
}

const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const auth = createReferenceAuth({ secret: process.env['JWT_SECRET'] ?? '' });
const publishClient = new Redis(redisUrl);
const pubSub = createPubSub<{ notification: [userName: string, event: Notification] }>({
  eventTarget: createRedisEventTarget({ publishClient, subscribeClient: new Redis(redisUrl) }),
});

const forbidden = (message: string) => new GraphQLError(message, { extensions: { code: 'FORBIDDEN' } });

const schema = createSchema<ReferenceContext>({
  typeDefs: readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'),
  resolvers: {
    Subscription: {
      onNotificationReceived: {
        subscribe: (_root: unknown, args: { userName: string }, context: ReferenceContext) => {
          if (context.extra?.user?.sub !== args.userName) throw forbidden('userName must be the token subject');
          return pubSub.subscribe('notification', args.userName);
        },
        resolve: (event: Notification) => event,
      },
    },
    Mutation: {
      sendNotification: (_root: unknown, args: { to: string; text: string }, context: ReferenceContext): SendResult => {
        const publisher = auth.verifyBearer(context.request?.headers.get('authorization'));
        if (!canPublish(publisher)) throw forbidden('needs the notifications:publish scope');
        const id = randomUUID();
        pubSub.publish('notification', args.to, { id, text: args.text, timestamp: Math.floor(Date.now() / 1000), audience: 'USER', sender: publisher.sub });
        return { id, duplicate: false, channel: `notification:${args.to}` };
      },
    },
    SendResult: {
      // Yoga's publish answers nothing, and no instance knows another's subscriptions. The
      // honest count Redis offers is PUBSUB NUMSUB: how many *instances* listen on the
      // user's channel (redis-event-target subscribes once per channel per process). Sent
      // on the publish connection, it is answered after the PUBLISH before it. Resolved
      // only when selected, as Herald counts only then.
      receivedUsers: async (result: SendResult) => {
        const reply = (await publishClient.call('PUBSUB', 'NUMSUB', result.channel)) as [string, number];
        return reply[1];
      },
    },
  },
});

const yoga = createYoga({ schema, graphqlEndpoint: '/graphql', logging: false, landingPage: false, graphiql: false });
const server = createServer(yoga);
const wss = new WebSocketServer({ server, path: yoga.graphqlEndpoint });

type Enveloped = ReturnType<typeof yoga.getEnveloped>;
/** What `onSubscribe` hands graphql-ws' execute/subscribe: Yoga's enveloped functions ride in `rootValue`. */
type EnvelopedArgs = ExecutionArgs & { rootValue: { execute: Enveloped['execute']; subscribe: Enveloped['subscribe'] } };

// graphql-ws through Yoga's envelop, as Yoga's graphql-ws page shows; the token is
// checked once, on connection_init, as graphql-ws' docs do it (`onConnect`).
useServer<Record<string, unknown> | undefined, ConnectionExtra>(
  {
    onConnect: (ctx) => {
      try {
        ctx.extra.user = auth.verifyBearer(ctx.connectionParams?.['authorization']);
        return true;
      } catch {
        return false;
      }
    },
    execute: (args) => (args as EnvelopedArgs).rootValue.execute(args) as Promise<ExecutionResult>,
    subscribe: (args) => (args as EnvelopedArgs).rootValue.subscribe(args) as Promise<ExecutionResult>,
    onSubscribe: async (ctx, _id, params) => {
      const { schema: enveloped, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
        ...ctx,
        req: ctx.extra.request,
        socket: ctx.extra.socket,
        params,
      });
      const args = {
        schema: enveloped,
        operationName: params.operationName,
        document: parse(params.query),
        variableValues: params.variables,
        contextValue: await contextFactory(),
        rootValue: { execute, subscribe },
      };
      const errors = validate(args.schema, args.document);
      if (errors.length) return errors;
      return args;
    },
  },
  wss,
);

server.listen(Number(process.env['PORT'] ?? 4610), '127.0.0.1', () => {
  console.info(`reference yoga: listening on ${JSON.stringify(server.address())}`);
});
