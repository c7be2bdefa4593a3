/**
 * The floor: not a GraphQL server and not a reference, but the least any gateway of this
 * shape does per notification on this stack — `node:http` takes the mutation, `ioredis`
 * PUBLISHes it to the user's channel, `ws` writes it to the user's socket. No GraphQL
 * engine, no schema, no history, no count beyond PUBLISH's own reply (the instances
 * listening, as the references' `receivedUsers`), no error handling past what keeps the
 * run going. Token checks are the references' (`./auth.ts`), so a token costs it what it
 * costs every system.
 *
 * It speaks just enough graphql-transport-ws for bench/load-client.ts
 * (`connection_init` → `connection_ack`, `subscribe` → `next` frames) and answers the
 * mutation with a fixed-shape JSON body. `BENCH_SYSTEMS=herald,mercurius,floor npm run
 * bench` runs it beside the systems: what it costs is what no implementation on Node,
 * `ws` and `ioredis` can go below, so a target can be checked against it.
 *
 *   REDIS_URL=redis://… JWT_SECRET=… PORT=4630 node dist-bench/reference/floor.js
 */
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { WebSocketServer, type WebSocket } from 'ws';
import { canPublish, createReferenceAuth } from './auth.js';

const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const auth = createReferenceAuth({ secret: process.env['JWT_SECRET'] ?? '' });
const publisher = new Redis(redisUrl);
const subscriber = new Redis(redisUrl);
const channelOf = (userName: string) => `floor:${userName}`;

/** Per channel, the sockets and subscription ids listening on it. */
const listeners = new Map<string, Map<WebSocket, string>>();

subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
  const sockets = listeners.get(channel.toString());
  if (sockets === undefined) return;
  const data = `{"onNotificationReceived":${message.toString()}}`;
  for (const [socket, id] of sockets) socket.send(`{"id":${JSON.stringify(id)},"type":"next","payload":{"data":${data}}}`);
});

const server = createServer((request, response) => {
  if (request.method === 'GET') {
    // Readiness, as bench/run.ts asks a reference (`{ __typename }`).
    response.writeHead(200, { 'Content-Type': 'application/json' }).end('{"data":{"__typename":"Query"}}');
    return;
  }
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const fail = (message: string) => response.writeHead(400, { 'Content-Type': 'application/json' }).end(JSON.stringify({ errors: [{ message }] }));
    let variables: { to?: unknown; text?: unknown } = {};
    try {
      if (!canPublish(auth.verifyBearer(request.headers.authorization))) throw new Error('needs the notifications:publish scope');
      variables = (JSON.parse(Buffer.concat(chunks).toString()) as { variables?: typeof variables }).variables ?? {};
    } catch (error) {
      fail(String(error));
      return;
    }
    if (typeof variables.to !== 'string' || typeof variables.text !== 'string') {
      fail('to and text must be strings');
      return;
    }
    const notification = JSON.stringify({ id: randomUUID(), text: variables.text, timestamp: Math.floor(Date.now() / 1000), audience: 'USER' });
    publisher.publish(channelOf(variables.to), notification).then(
      (receivedUsers) => response.writeHead(200, { 'Content-Type': 'application/json' }).end(`{"data":{"sendNotification":{"receivedUsers":${receivedUsers}}}}`),
      (error: unknown) => fail(String(error)),
    );
  });
});

const sockets = new WebSocketServer({ server, path: '/graphql' });
sockets.on('connection', (socket) => {
  let user: string | undefined;
  const channels: string[] = [];
  socket.on('message', (data) => {
    let message: { type?: string; id?: string; payload?: { authorization?: unknown; variables?: { userName?: unknown } } };
    try {
      message = JSON.parse(data.toString()) as typeof message;
    } catch {
      return socket.close(4400, 'not JSON');
    }
    if (message.type === 'connection_init') {
      try {
        user = auth.verifyBearer(message.payload?.authorization).sub;
      } catch {
        return socket.close(4403, 'Forbidden');
      }
      socket.send('{"type":"connection_ack"}');
    } else if (message.type === 'subscribe' && user !== undefined && typeof message.id === 'string') {
      const userName = message.payload?.variables?.userName;
      if (userName !== user) return socket.close(4403, 'userName must be the token subject');
      const channel = channelOf(user);
      let listening = listeners.get(channel);
      if (listening === undefined) {
        listening = new Map();
        listeners.set(channel, listening);
        void subscriber.subscribe(channel);
      }
      listening.set(socket, message.id);
      channels.push(channel);
    } else if (message.type === 'ping') {
      socket.send('{"type":"pong"}');
    }
  });
  socket.on('close', () => {
    for (const channel of channels) {
      const listening = listeners.get(channel);
      listening?.delete(socket);
      if (listening?.size === 0) {
        listeners.delete(channel);
        void subscriber.unsubscribe(channel);
      }
    }
  });
});

server.listen(Number(process.env['PORT'] ?? 4630), '127.0.0.1', () => console.info(`floor: listening on ${process.env['PORT'] ?? 4630}`));
