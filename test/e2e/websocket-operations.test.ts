/**
 * Herald's own graphql-transport-ws state machine, where graphql-ws' rules are subtle:
 * an id completed while its subscription opens is free again at once, a query is
 * answered with `next` then `complete`, a `ping` is answered with its payload — all on
 * a real socket, with the in-process broker.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { channels, createTestBroker, startSubscribeServer, stopAll, waitFor, type RunningSubscribeServer } from '../support/herald.js';
import { userToken } from '../support/tokens.js';
import { closeAllClients, ON_NOTIFICATION, rawSocket } from '../support/ws.js';

let server: RunningSubscribeServer;

beforeAll(async () => {
  server = await startSubscribeServer((await createTestBroker()).broker);
});
afterEach(closeAllClients);
afterAll(async () => {
  await closeAllClients();
  await stopAll();
});

async function acknowledged(name: string) {
  const socket = await rawSocket(server.wsUrl);
  socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${userToken(name)}` } });
  expect(await socket.nextMessage()).toEqual({ type: 'connection_ack' });
  return socket;
}

const subscribe = (id: string, userName: string) => ({ id, type: 'subscribe', payload: { query: ON_NOTIFICATION, variables: { userName } } });

describe('graphql-transport-ws, as Herald speaks it', () => {
  it('answers a ping with a pong carrying its payload, and one without with one without', async () => {
    const socket = await acknowledged('alice');
    socket.send({ type: 'ping', payload: { at: 1 } });
    expect(await socket.nextMessage()).toEqual({ type: 'pong', payload: { at: 1 } });
    socket.send({ type: 'ping' });
    expect(await socket.nextMessage()).toEqual({ type: 'pong' });
  });

  it('answers a query with `next`, then `complete`', async () => {
    const socket = await acknowledged('alice');
    socket.send({ id: 'q', type: 'subscribe', payload: { query: '{ viewer { name } }' } });
    expect(await socket.nextMessage()).toEqual({ id: 'q', type: 'next', payload: { data: { viewer: { name: 'alice' } } } });
    expect(await socket.nextMessage()).toEqual({ id: 'q', type: 'complete' });
  });

  it('frees an id completed while its subscription opens: used again at once, it holds one observer, and its `complete` releases it', async () => {
    const channel = channels.audienceChannel('acme', 'USER', 'olga');
    const socket = await acknowledged('olga');
    socket.send(subscribe('1', 'olga'));
    socket.send({ id: '1', type: 'complete' });
    socket.send(subscribe('1', 'olga'));
    await waitFor(() => server.server.observers.observerCount(channel) === 1, 'one observer');
    socket.send({ id: '1', type: 'complete' });
    await waitFor(() => server.server.observers.channelCount === 0, 'the channel released');
    // The socket stayed open through it all: no 4409 for the id reused.
    socket.send({ type: 'ping' });
    expect(await socket.nextMessage()).toEqual({ type: 'pong' });
  });
});
