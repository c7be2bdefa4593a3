/**
 * Herald's configuration: the settings table (./settings.ts, ./push-settings.ts), the
 * reader that applies it (`readConfig`), and the shapes the code uses (./types.ts).
 */
export type { CidrNetwork } from './networks.js';
export { ConfigError, readConfig } from './read.js';
export type { GrpcKeepalive, HeraldConfig, Limits, PushConfig, RedisClusterSettings, RedisSentinelSettings, Retention } from './types.js';
