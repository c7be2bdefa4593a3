/**
 * A lean load client, run as its own process (forked with IPC by bench/run.ts): it speaks
 * graphql-transport-ws directly over `ws` — no GraphQL client library — so it costs less
 * than the servers it measures. Each message's latency is its arrival time minus the
 * send time the publisher wrote into the notification's text.
 */
import WebSocket from 'ws';

export type ClientCommand =
  | { cmd: 'open'; url: string; connections: Array<{ user: string; token: string | undefined }>; query: string }
  | { cmd: 'reset' }
  | { cmd: 'count' }
  | { cmd: 'stats' }
  | { cmd: 'close' };

export interface ClientStats {
  received: number;
  /** Per-connection received counts: min and how many connections got nothing. */
  minPerConnection: number;
  latenciesMs: number[];
  closedUnexpectedly: number;
}

const now = (): number => performance.timeOrigin + performance.now();

const sockets: WebSocket[] = [];
let received = 0;
let latencies: number[] = [];
let perConnection: number[] = [];
let closedUnexpectedly = 0;
let closing = false;

function open(url: string, user: string, token: string | undefined, query: string, index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, 'graphql-transport-ws', { perMessageDeflate: false });
    sockets.push(socket);
    socket.once('error', reject);
    socket.on('close', () => {
      if (!closing) closedUnexpectedly += 1;
    });
    socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: token ? { authorization: `Bearer ${token}` } : {} })));
    socket.on('message', (data: Buffer) => {
      const text = data.toString();
      if (text.charCodeAt(9) === 99 /* {"type":"c… connection_ack */ && text.startsWith('{"type":"connection_ack"')) {
        socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: { userName: user } } }));
        resolve();
        return;
      }
      // The text is the send time in ms; find it without parsing the whole message.
      const at = text.indexOf('"text":"');
      if (at < 0) return;
      const sent = Number.parseFloat(text.slice(at + 8, text.indexOf('"', at + 8)));
      received += 1;
      perConnection[index] = (perConnection[index] ?? 0) + 1;
      if (Number.isFinite(sent)) latencies.push(now() - sent);
    });
  });
}

process.on('message', (message: ClientCommand) => {
  void (async () => {
    switch (message.cmd) {
      case 'open': {
        const base = sockets.length;
        perConnection = perConnection.concat(new Array<number>(message.connections.length).fill(0));
        // A few hundred at a time, so the server's accept queue never overflows.
        for (let n = 0; n < message.connections.length; n += 250) {
          await Promise.all(
            message.connections.slice(n, n + 250).map(({ user, token }, offset) => open(message.url, user, token, message.query, base + n + offset)),
          );
        }
        process.send?.({ opened: message.connections.length });
        return;
      }
      case 'reset':
        received = 0;
        latencies = [];
        perConnection = perConnection.map(() => 0);
        process.send?.({ reset: true });
        return;
      case 'count': {
        // Cheap enough to poll: no latency list crosses the process boundary.
        const count: ClientStats = {
          received,
          minPerConnection: perConnection.length ? Math.min(...perConnection) : 0,
          latenciesMs: [],
          closedUnexpectedly,
        };
        process.send?.({ count });
        return;
      }
      case 'stats': {
        const stats: ClientStats = {
          received,
          minPerConnection: perConnection.length ? Math.min(...perConnection) : 0,
          latenciesMs: latencies,
          closedUnexpectedly,
        };
        process.send?.({ stats });
        return;
      }
      case 'close':
        closing = true;
        for (const socket of sockets) socket.terminate();
        process.send?.({ closed: true }, undefined, {}, () => process.exit(0));
        return;
    }
  })().catch((error: unknown) => {
    process.send?.({ error: String(error) });
  });
});
