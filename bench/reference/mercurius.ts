/**
 * Reference 2: Mercurius on Fastify, subscriptions as Mercurius' "Subscriptions" page
 * wires them (`subscription: { emitter, onConnect }`, `pubsub.subscribe(topic)` in the
 * resolver, `pubsub.publish({ topic, payload })` in the mutation) with `mqemitter-redis`
 * as the emitter ("Subscription support (with redis)"), on Herald's `schema.graphql`.
 * The token checks are the bench's own (`./auth.ts`), shared with the Yoga reference.
 * bench/run.ts starts it twice on one Redis, as Herald is run: one instance holds the
 * subscriptions, the other takes the mutations.
 *
 *   REDIS_URL=redis://… JWT_SECRET=… PORT=4620 node --import tsx bench/reference/mercurius.ts
 */
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import { GraphQLError } from 'graphql';
import { Redis } from 'ioredis';
import mercurius, { type MercuriusContext } from 'mercurius';
import mqemitterRedis from 'mqemitter-redis';
import { canPublish, createReferenceAuth, type Claims } from './auth.js';

interface SendResult {
  id: string;
  duplicate: boolean;
  /** The Redis channel it went to, for `receivedUsers`. */
  channel: string;
}

/** Mercurius' context, extended on a WebSocket with what `onConnect` returned. */
type ReferenceContext = MercuriusContext & { user?: Claims };

const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const auth = createReferenceAuth({ secret: process.env['JWT_SECRET'] ?? '' });
// The emitter's publish connection is passed in, so `receivedUsers` can ask on it.
const publishClient = new Redis(redisUrl);
const emitter = mqemitterRedis({ connectionString: redisUrl, pubConn: publishClient });
const topicFor = (userName: string) => `NOTIFICATION_${userName}`;
const forbidden = (message: string) => new GraphQLError(message, { extensions: { code: 'FORBIDDEN' } });

const app = Fastify({ logger: false });

app.register(mercurius, {
  schema: readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'),
  resolvers: {
    Subscription: {
      onNotificationReceived: {
        subscribe: async (_root: unknown, args: { userName: string }, context: ReferenceContext) => {
          if (context.user?.sub !== args.userName) throw forbidden('userName must be the token subject');
          return await context.pubsub.subscribe(topicFor(args.userName));
        },
      },
    },
    Mutation: {
      sendNotification: async (_root: unknown, args: { to: string; text: string }, context: ReferenceContext): Promise<SendResult> => {
        const publisher = auth.verifyBearer(context.reply.request.headers.authorization);
        if (!canPublish(publisher)) throw forbidden('needs the notifications:publish scope');
        const id = randomUUID();
        const notification = { id, text: args.text, timestamp: Math.floor(Date.now() / 1000), audience: 'USER', sender: publisher.sub };
        await context.pubsub.publish({ topic: topicFor(args.to), payload: { onNotificationReceived: notification } });
        return { id, duplicate: false, channel: topicFor(args.to) };
      },
    },
    SendResult: {
      // Mercurius' publish answers nothing, and no instance knows another's subscriptions.
      // The honest count Redis offers is PUBSUB NUMSUB: how many *instances* listen on the
      // user's channel (mqemitter-redis subscribes once per topic per process). Resolved
      // only when selected, as Herald counts only then.
      receivedUsers: async (result: SendResult) => {
        const reply = (await publishClient.call('PUBSUB', 'NUMSUB', result.channel)) as [string, number];
        return reply[1];
      },
    },
  },
  subscription: {
    emitter,
    // Mercurius' documented place for a connection_init token: a falsy answer refuses
    // the connection, an object extends every subscription's context.
    onConnect: (data: { payload: unknown }) => {
      const payload = data.payload as { authorization?: unknown } | undefined;
      try {
        return { user: auth.verifyBearer(payload?.authorization) };
      } catch {
        return false;
      }
    },
  },
});

app.listen({ port: Number(process.env['PORT'] ?? 4620), host: '127.0.0.1' }).then(
  (address) => console.info(`reference mercurius: listening on ${address}`),
  (error: unknown) => {
    console.error('reference mercurius:', error);
    process.exit(1);
  },
);
