/**
 * The fan-out path's frames: encoded as `ws` itself reads them, held per connection until
 * the end of the turn and written in one call, in order; written early when `ws` is about
 * to send a message of its own; dropped once the WebSocket is closing.
 */
import { Duplex, type Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { createTurnEnd } from '../../src/common/timers.js';
import { createFrameWriter, textFrame } from '../../src/transports/websocket/frames.js';

/** A socket that records each `write` call's bytes. */
function recordingSocket(): { socket: Duplex; writes: Buffer[] } {
  const writes: Buffer[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      writes.push(chunk);
      callback();
    },
  });
  return { socket, writes };
}

/** The text messages in `bytes`, parsed by `ws`' own frame reader (as a client would). */
function messages(bytes: Buffer): Promise<string[]> {
  const receiver = new Receiver({ isServer: false });
  const texts: string[] = [];
  receiver.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) texts.push(data.toString());
  });
  return new Promise((resolve, reject) => {
    receiver.on('error', reject);
    receiver.end(bytes, () => resolve(texts));
  });
}

/** `ws`' frame reader: exported at run time, absent from @types/ws. */
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean }) => Writable };

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
const frame = (text: string) => textFrame(Buffer.from(`{"id":"1","type":"next","payload":`), Buffer.from(JSON.stringify({ data: text })));

describe('textFrame', () => {
  it.each([0, 60, 125 - 40, 126, 65_535 - 40, 65_536, 200_000])('encodes a %i-byte payload as a frame ws reads back whole', async (size) => {
    const payload = { data: { text: 'x'.repeat(size) } };
    const bytes = textFrame(Buffer.from('{"id":"a-1","type":"next","payload":'), Buffer.from(JSON.stringify(payload)));
    const [message, ...rest] = await messages(bytes);
    expect(rest).toEqual([]);
    expect(JSON.parse(message!)).toEqual({ id: 'a-1', type: 'next', payload });
  });
});

describe('frame writer', () => {
  it('writes a turn’s frames for one socket in one call, in order, once the turn ends', async () => {
    const writer = createFrameWriter(createTurnEnd());
    const { socket, writes } = recordingSocket();
    const outbox = writer.outbox(socket, { isOpen: () => true });
    expect(outbox.holding).toBe(false);
    outbox.add(frame('a'));
    expect(outbox.holding).toBe(true);
    outbox.add(frame('b'));
    outbox.add(frame('c'));
    expect(writes).toHaveLength(0);
    await nextTurn();
    expect(writes).toHaveLength(1);
    expect((await messages(writes[0]!)).map((text) => JSON.parse(text).payload.data)).toEqual(['a', 'b', 'c']);
    expect(outbox.holding).toBe(false);
  });

  it('keeps each socket’s frames to that socket', async () => {
    const writer = createFrameWriter(createTurnEnd());
    const first = recordingSocket();
    const second = recordingSocket();
    writer.outbox(first.socket, { isOpen: () => true }).add(frame('to first'));
    writer.outbox(second.socket, { isOpen: () => true }).add(frame('to second'));
    await nextTurn();
    expect(await messages(Buffer.concat(first.writes))).toEqual([expect.stringContaining('to first')]);
    expect(await messages(Buffer.concat(second.writes))).toEqual([expect.stringContaining('to second')]);
  });

  it('flush writes what is held at once, so a message written after it comes after it', async () => {
    const writer = createFrameWriter(createTurnEnd());
    const { socket, writes } = recordingSocket();
    const outbox = writer.outbox(socket, { isOpen: () => true });
    outbox.add(frame('held'));
    outbox.flush();
    socket.write(textFrame(Buffer.from('{"id":"1","type":"complete"'), Buffer.alloc(0)));
    await nextTurn();
    const texts = await messages(Buffer.concat(writes));
    expect(texts.map((text) => JSON.parse(text).type)).toEqual(['next', 'complete']);
  });

  it('drops what is held once the WebSocket is closing, and writes nothing to a destroyed socket', async () => {
    const writer = createFrameWriter(createTurnEnd());
    const closing = recordingSocket();
    let open = true;
    writer.outbox(closing.socket, { isOpen: () => open }).add(frame('too late'));
    open = false;
    const destroyed = recordingSocket();
    writer.outbox(destroyed.socket, { isOpen: () => true }).add(frame('gone'));
    destroyed.socket.destroy();
    await nextTurn();
    await nextTurn();
    expect(closing.writes).toEqual([]);
    expect(destroyed.writes).toEqual([]);
  });

  it('starts afresh each turn', async () => {
    const writer = createFrameWriter(createTurnEnd());
    const { socket, writes } = recordingSocket();
    const outbox = writer.outbox(socket, { isOpen: () => true });
    outbox.add(frame('one'));
    await nextTurn();
    outbox.add(frame('two'));
    await nextTurn();
    expect(writes).toHaveLength(2);
    expect(await messages(Buffer.concat(writes))).toEqual([expect.stringContaining('one'), expect.stringContaining('two')]);
  });
});
