/**
 * The ping flood (pings sent, answers never read: one anonymous client exhausted a 2 GB
 * heap in seconds) as a process of its own, so that its sending costs the
 * measuring test nothing: `node --import tsx test/support/ping-flooder.ts` with
 * `FLOOD_URL` (the subscribe server's WebSocket URL), `FLOOD_TOKEN` (a user token for
 * the authenticated flooders) and `FLOOD_MS`.
 *
 * Every second it opens an anonymous flooder, every two seconds an authenticated one
 * (`connection_init` first). Each pauses its socket at once — it never reads — and sends
 * 20 `ping` messages of 60 KB every 5 ms, as the reproduction does; after three
 * seconds it drops its connection without a close handshake (a reset: it has unread
 * data). Prints `flooder` once per connection opened, and exits after `FLOOD_MS`.
 */
import WebSocket from 'ws';

const url = process.env['FLOOD_URL'] ?? '';
const token = process.env['FLOOD_TOKEN'] ?? '';
const floodMs = Number(process.env['FLOOD_MS'] ?? 8000);

const PING = JSON.stringify({ type: 'ping', payload: { p: 'x'.repeat(60_000) } });
/**
 * What a flooder lets wait in its own process. It still sends as fast as the server
 * reads; past this its pings would pile up here, not in the server.
 */
const OWN_BUFFER = 1024 * 1024;
const LIFETIME_MS = 3000;

const sockets = new Set<WebSocket>();

function startFlooder(authorization?: string): void {
  const socket = new WebSocket(url, 'graphql-transport-ws');
  sockets.add(socket);
  console.log('flooder');
  socket.on('error', () => undefined);
  socket.on('close', () => sockets.delete(socket));
  setTimeout(() => socket.terminate(), LIFETIME_MS);
  socket.on('open', () => {
    if (authorization) socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization } }));
    (socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const timer = setInterval(() => {
      if (socket.readyState !== WebSocket.OPEN) return clearInterval(timer);
      for (let n = 0; n < 20 && socket.bufferedAmount < OWN_BUFFER; n++) socket.send(PING);
    }, 5);
  });
}

const anonymous = (): void => startFlooder();
const authenticated = (): void => startFlooder(`Bearer ${token}`);
anonymous();
authenticated();
const timers = [setInterval(anonymous, 1000), setInterval(authenticated, 2000)];
setTimeout(() => {
  timers.forEach(clearInterval);
  for (const socket of sockets) socket.terminate();
  process.exit(0);
}, floodMs);
