/**
 * How often a gRPC client may PING, accounted as grpc-core's HTTP/2 server
 * (`Chttp2PingAbusePolicy`) and grpc-go's (`keepalive.EnforcementPolicy`) account it: a
 * PING sooner than `minPingIntervalMs` after the one before is a strike, and one strike
 * more than `maxPingStrikes` in a row gets GOAWAY `ENHANCE_YOUR_CALM` with
 * `too_many_pings` (gRPC's keepalive spec, A8) and the connection closed. Whenever the
 * server sends headers or data on the connection the count starts again and the next PING
 * is no strike: grpc-core clients (Python, C++, Ruby, PHP, …) send a BDP-probe PING as data
 * arrives, grpc-java and grpc-go ones do too, and those PINGs are no abuse. Only PINGs with
 * nothing flowing from the server are policed.
 *
 * grpc-js (1.14.7) enforces no such policy: its server answers every PING, reads neither
 * `grpc.http2.min_ping_interval_without_data_ms` nor `grpc.http2.max_ping_strikes`
 * (grpc-core's settings), and `grpc.keepalive_permit_without_calls` is a channel
 * (client) setting in grpc-js. So Herald accounts PINGs itself, per HTTP/2 session (Node's
 * `ping` event), and learns what the server sends on a session from a grpc-js server
 * interceptor (each call's headers, messages and status), matched to its session by the
 * connection's addresses.
 */
import { constants as http2Constants, type ServerHttp2Session } from 'node:http2';
import { ResponderBuilder, ServerInterceptingCall, type ServerInterceptor } from '@grpc/grpc-js';
import type { Logger } from '../../common/logger.js';
import type { GrpcKeepalive } from '../../config/index.js';

/** One connection's PINGs. */
export interface PingAccount {
  /** A PING came from the client: whether it is one strike too many. */
  pinged(): boolean;
  /** The server sent headers or data: the strikes are forgiven and the next PING is none. */
  sent(): void;
}

export function createPingAccount(policy: Pick<GrpcKeepalive, 'minPingIntervalMs' | 'maxPingStrikes'>, now: () => number = Date.now): PingAccount {
  let lastPing = -Infinity;
  let strikes = 0;
  return {
    pinged() {
      const at = now();
      // In a row: a PING after the interval clears the strikes too.
      strikes = at - lastPing < policy.minPingIntervalMs ? strikes + 1 : 0;
      lastPing = at;
      return strikes > policy.maxPingStrikes;
    },
    sent() {
      lastPing = -Infinity;
      strikes = 0;
    },
  };
}

export interface PingPolicy {
  /** For the server's `interceptors`: tells each call's connection what the server sends on it. */
  readonly interceptor: ServerInterceptor;
  /** Accounts a new session's PINGs; GOAWAY `too_many_pings` on one strike too many. */
  watch(session: ServerHttp2Session): void;
}

const TOO_MANY_PINGS = Buffer.from('too_many_pings');
/** How long the GOAWAY frame has to go out before the connection is closed, in ms. */
const GOAWAY_FLUSH_MS = 100;

interface Endpoints {
  localAddress?: string | undefined;
  localPort?: number | undefined;
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
}

/** A TCP connection's two ends: the same string from the session's socket and from a call's connection info. */
const connectionKey = ({ localAddress, localPort, remoteAddress, remotePort }: Endpoints): string =>
  `${localAddress}:${localPort}-${remoteAddress}:${remotePort}`;

export function createPingPolicy(options: { keepalive: GrpcKeepalive; logger: Logger }): PingPolicy {
  const { keepalive, logger } = options;
  /** Each open session's account, by its connection's addresses. */
  const accounts = new Map<string, PingAccount>();

  const interceptor: ServerInterceptor = (_method, call) => {
    const account = accounts.get(connectionKey(call.getConnectionInfo()));
    if (account === undefined) return new ServerInterceptingCall(call);
    const responder = new ResponderBuilder()
      .withSendMetadata((metadata, next) => {
        account.sent();
        next(metadata);
      })
      .withSendMessage((message, next) => {
        account.sent();
        next(message);
      })
      .withSendStatus((status, next) => {
        account.sent();
        next(status);
      })
      .build();
    return new ServerInterceptingCall(call, responder);
  };

  return {
    interceptor,
    watch(session) {
      const account = createPingAccount(keepalive);
      const key = connectionKey(session.socket);
      accounts.set(key, account);
      session.once('close', () => {
        if (accounts.get(key) === account) accounts.delete(key);
      });
      let goneAway = false;
      session.on('ping', () => {
        if (!account.pinged() || goneAway) return;
        goneAway = true;
        logger.warn(`herald: gRPC client pinged more often than every ${keepalive.minPingIntervalMs} ms with no data sent to it: GOAWAY too_many_pings`);
        session.goaway(http2Constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, TOO_MANY_PINGS);
        setTimeout(() => session.destroy(), GOAWAY_FLUSH_MS).unref();
      });
    },
  };
}
