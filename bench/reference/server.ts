/**
 * The reference: a plain GraphQL Yoga server with graphql-ws and
 * @graphql-yoga/redis-event-target, as their docs wire them, on the same schema and the
 * same Redis as Herald. No auth, no tenants, no history: only what a plain server does.
 *   REDIS_URL=redis://… PORT=4100 tsx bench/reference/server.ts
 */
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { Redis } from 'ioredis';
import type { OperationResult } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { createPubSub, createSchema, createYoga } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { typeDefs } from '../../src/graphql/schema.js';

interface Event {
  id: string;
  text: string;
  timestamp: number;
  audience: 'USER';
  sender: string;
}

const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const pubSub = createPubSub<{ notification: [userName: string, event: Event] }>({
  eventTarget: createRedisEventTarget({ publishClient: new Redis(redisUrl), subscribeClient: new Redis(redisUrl) }),
});

const schema = createSchema({
  typeDefs,
  resolvers: {
    Subscription: {
      onNotificationReceived: {
        subscribe: (_root: unknown, args: { userName: string }) => pubSub.subscribe('notification', args.userName),
        resolve: (event: Event) => event,
      },
    },
    Mutation: {
      sendNotification: (_root: unknown, args: { to: string; text: string }) => {
        const id = randomUUID();
        pubSub.publish('notification', args.to, { id, text: args.text, timestamp: Math.floor(Date.now() / 1000), audience: 'USER', sender: 'reference' });
        return { id, receivedUsers: 0, duplicate: false };
      },
    },
  },
});

const yoga = createYoga({ schema, graphqlEndpoint: '/graphql', logging: false, landingPage: false, graphiql: false });
const server = createServer(yoga);
const wss = new WebSocketServer({ server, path: '/graphql' });

// graphql-ws through Yoga's envelop, as Yoga's graphql-ws example does.
useServer(
  {
    execute: (args) => (args.rootValue as { execute: (a: unknown) => OperationResult }).execute(args),
    subscribe: (args) => (args.rootValue as { subscribe: (a: unknown) => OperationResult }).subscribe(args),
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

server.listen(Number(process.env['PORT'] ?? 4100), '127.0.0.1', () => {
  console.info(`reference: listening on ${JSON.stringify(server.address())}`);
});
