/**
 * A lean load client, run as its own process (forked with IPC by bench/run.ts): it speaks
 * graphql-transport-ws over raw TCP sockets — its own HTTP upgrade and a WebSocket frame
 * reader that handles just what a server sends (unfragmented text frames, ping, close) —
 * so a delivery costs the client much less than it costs the servers it measures. Each
 * message's latency is its arrival time minus the send time the publisher wrote into the
 * notification's text.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

export type ClientCommand =
  | {
      cmd: 'open';
      url: string;
      connections: Array<{ user: string; token: string | undefined }>;
      query: string;
      /**
       * The address every connection is made from (`127.0.0.2`, …: all of 127/8 is
       * loopback on Linux). One source address has only the ephemeral ports
       * (`net.ipv4.ip_local_port_range`, about 28,000) toward one server port, so more
       * connections than that need several. Unset: the kernel picks (127.0.0.1).
       */
      localAddress?: string;
      /**
       * Connections opened at once, each batch waited for before the next: what the
       * server's listen backlog sees from this client. @default 250
       */
      inFlight?: number;
    }
  | { cmd: 'reset' }
  | { cmd: 'count' }
  | { cmd: 'stats' }
  | { cmd: 'close' };

export interface ClientStats {
  received: number;
  /** The fewest messages any one connection received. */
  minPerConnection: number;
  /** The most messages any one connection received. */
  maxPerConnection: number;
  /** Connections that received at least one message. */
  reached: number;
  latenciesMs: number[];
  /** When the last notification arrived, in ms since the epoch (0 before any did). */
  lastAt: number;
  closedUnexpectedly: number;
}

const now = (): number => performance.timeOrigin + performance.now();

const sockets: Socket[] = [];
/**
 * One read buffer for every socket (`onread`): Node reads into it and calls back, with no
 * Buffer and no stream event per read. Safe to share, as each callback runs to its end
 * and copies out what it must keep.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);
let received = 0;
let latencies: number[] = [];
/**
 * `BENCH_LATENCY_DIR` (see bench/publisher.ts): each delivery's send time beside its
 * latency, `<sent ms> <latency ms>`, written to `deliveries-<pid>.txt` when the stats are
 * asked for; unset, nothing is kept.
 */
const LATENCY_DIR = process.env['BENCH_LATENCY_DIR'];
let deliveries: string[] = [];
/** When the last notification arrived (ms, the publisher's clock: `performance.timeOrigin` based). */
let lastAt = 0;
let perConnection: number[] = [];
let closedUnexpectedly = 0;
let closing = false;

const OPCODE_TEXT = 0x1;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;
const TEXT_FIELD = Buffer.from('"text":"');
const ACK = Buffer.from('{"type":"connection_ack"');

/** A client frame: FIN, `opcode`, masked (RFC 6455 §5.3), with `payload`. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const headerSize = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerSize + 4 + length);
  frame[0] = 0x80 | opcode;
  if (length < 126) {
    frame[1] = 0x80 | length;
  } else if (length < 65_536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  const mask = randomBytes(4);
  mask.copy(frame, headerSize);
  for (let n = 0; n < length; n++) frame[headerSize + 4 + n] = (payload[n] as number) ^ (mask[n & 3] as number);
  return frame;
}

const sendText = (socket: Socket, text: string): boolean => socket.write(clientFrame(OPCODE_TEXT, Buffer.from(text)));

/**
 * The send time written into a notification's text: undefined for a message that holds
 * no notification, NaN for one whose text is not a time (a warm-up). Read from the bytes
 * (digits, one point), so a delivery allocates nothing here.
 */
function sentAt(message: Buffer): number | undefined {
  const at = message.indexOf(TEXT_FIELD);
  if (at < 0) return undefined;
  let whole = 0;
  let fraction = 0;
  let scale = 0; // 10^(digits after the point), once past it
  let digits = 0;
  for (let n = at + TEXT_FIELD.length; n < message.length; n++) {
    const byte = message[n] as number;
    if (byte >= 0x30 && byte <= 0x39) {
      if (scale) {
        fraction = fraction * 10 + (byte - 0x30);
        scale *= 10;
      } else {
        whole = whole * 10 + (byte - 0x30);
      }
      digits += 1;
    } else if (byte === 0x2e /* . */ && !scale) {
      scale = 1;
    } else {
      break;
    }
  }
  return digits ? whole + (scale ? fraction / scale : 0) : Number.NaN;
}

function open(url: string, user: string, token: string | undefined, query: string, index: number, localAddress: string | undefined): Promise<void> {
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: hostname,
      port: Number(port),
      ...(localAddress === undefined ? {} : { localAddress }),
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback: (size) => {
          onBytes(READ_BUFFER.subarray(0, size));
          return true; // keep reading
        },
      },
    });
    sockets.push(socket);
    let upgraded = false;
    let subscribed = false;
    /** The server's close frame, if one came: its code and reason. */
    let closedWith = '';
    let pending: Buffer | undefined;
    socket.on('error', reject); // after the subscription is open, a failure shows as an unexpected close
    socket.on('close', () => {
      if (!closing) closedUnexpectedly += 1;
      // Closed before it subscribed (e.g. 4408, no `connection_init` in time): the open fails, loudly.
      if (!subscribed) reject(new Error(`connection closed before connection_ack${closedWith}`));
    });
    socket.once('connect', () => {
      socket.write(
        `GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
          'Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n',
      );
    });

    const onMessage = (message: Buffer): void => {
      const sent = sentAt(message);
      if (sent !== undefined) {
        received += 1;
        perConnection[index] = (perConnection[index] ?? 0) + 1;
        const at = now();
        lastAt = at;
        if (!Number.isNaN(sent)) {
          latencies.push(at - sent);
          if (LATENCY_DIR !== undefined) deliveries.push(`${sent.toFixed(2)} ${(at - sent).toFixed(2)}`);
        }
        return;
      }
      if (message.subarray(0, ACK.length).equals(ACK)) {
        sendText(socket, JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: { userName: user } } }));
        subscribed = true;
        resolve();
      }
    };

    const onBytes = (chunk: Buffer): void => {
      let data = pending ? Buffer.concat([pending, chunk]) : chunk;
      pending = undefined;
      if (!upgraded) {
        const end = data.indexOf('\r\n\r\n');
        if (end < 0) {
          pending = Buffer.from(data);
          return;
        }
        const head = data.toString('latin1', 0, end);
        if (!head.startsWith('HTTP/1.1 101')) {
          reject(new Error(`upgrade refused: ${head.split('\r\n')[0] ?? ''}`));
          socket.destroy();
          return;
        }
        upgraded = true;
        sendText(socket, JSON.stringify({ type: 'connection_init', payload: token ? { authorization: `Bearer ${token}` } : {} }));
        data = data.subarray(end + 4);
      }
      // Server frames are unmasked and, from these servers, never fragmented.
      let offset = 0;
      while (data.length - offset >= 2) {
        const opcode = (data[offset] as number) & 0x0f;
        let length = (data[offset + 1] as number) & 0x7f;
        let headerSize = 2;
        if (length === 126) {
          if (data.length - offset < 4) break;
          length = data.readUInt16BE(offset + 2);
          headerSize = 4;
        } else if (length === 127) {
          if (data.length - offset < 10) break;
          length = Number(data.readBigUInt64BE(offset + 2));
          headerSize = 10;
        }
        if (data.length - offset < headerSize + length) break;
        const payload = data.subarray(offset + headerSize, offset + headerSize + length);
        offset += headerSize + length;
        if (opcode === OPCODE_TEXT) onMessage(payload);
        else if (opcode === OPCODE_PING) socket.write(clientFrame(OPCODE_PONG, payload));
        else if (opcode === OPCODE_CLOSE) {
          if (payload.length >= 2) closedWith = ` (close ${payload.readUInt16BE(0)} ${payload.toString('utf8', 2)})`;
          socket.end();
        }
      }
      // Copied: `chunk` lies in the shared read buffer, which the next read overwrites.
      if (offset < data.length) pending = Buffer.from(data.subarray(offset));
    };
  });
}

/**
 * The fewest and the most messages any one connection received, and how many connections
 * received any: a loop, as a spread of
 * tens of thousands of arguments into `Math.min` can exceed the call stack.
 */
function perConnectionRange(): { minPerConnection: number; maxPerConnection: number; reached: number } {
  if (perConnection.length === 0) return { minPerConnection: 0, maxPerConnection: 0, reached: 0 };
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  let reached = 0;
  for (const count of perConnection) {
    if (count < min) min = count;
    if (count > max) max = count;
    if (count > 0) reached += 1;
  }
  return { minPerConnection: min, maxPerConnection: max, reached };
}

process.on('message', (message: ClientCommand) => {
  void (async () => {
    switch (message.cmd) {
      case 'open': {
        const base = perConnection.length;
        perConnection = perConnection.concat(new Array<number>(message.connections.length).fill(0));
        // A few hundred at a time, so the server's accept queue never overflows.
        const inFlight = message.inFlight ?? 250;
        for (let n = 0; n < message.connections.length; n += inFlight) {
          await Promise.all(
            message.connections.slice(n, n + inFlight).map(({ user, token }, offset) => open(message.url, user, token, message.query, base + n + offset, message.localAddress)),
          );
        }
        process.send?.({ opened: message.connections.length });
        return;
      }
      case 'reset':
        received = 0;
        latencies = [];
        deliveries = [];
        lastAt = 0;
        perConnection = perConnection.map(() => 0);
        process.send?.({ reset: true });
        return;
      case 'count': {
        // Cheap enough to poll: no latency list crosses the process boundary.
        const count: ClientStats = {
          received,
          ...perConnectionRange(),
          latenciesMs: [],
          lastAt,
          closedUnexpectedly,
        };
        process.send?.({ count });
        return;
      }
      case 'stats': {
        const stats: ClientStats = {
          received,
          ...perConnectionRange(),
          latenciesMs: latencies,
          lastAt,
          closedUnexpectedly,
        };
        if (LATENCY_DIR !== undefined && deliveries.length > 0) {
          appendFileSync(`${LATENCY_DIR}/deliveries-${process.pid}.txt`, `${deliveries.join('\n')}\n`);
          deliveries = [];
        }
        process.send?.({ stats });
        return;
      }
      case 'close':
        closing = true;
        for (const socket of sockets) socket.destroy();
        process.send?.({ closed: true }, undefined, {}, () => process.exit(0));
        return;
    }
  })().catch((error: unknown) => {
    process.send?.({ error: String(error) });
  });
});
