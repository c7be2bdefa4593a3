/**
 * Topics users follow (a programme, a store, a thread), inside their tenant: per user a
 * set of topics, per topic a set of followers, written together in one MULTI (both keys
 * carry the tenant's hash tag, so they share a Cluster slot).
 *
 * A topic may have many thousands of followers; they are only ever read in pages with
 * SSCAN, so no single command's time or reply grows with the topic.
 */
import { Failure } from '../common/failures.js';
import type { RedisClient } from '../redis/connect.js';
import { assertValidName } from '../names/index.js';
import type { PushKeys } from './keys.js';

/** The user already follows the most topics allowed (`LIMIT_EXCEEDED`). */
export class TopicLimitError extends Failure {
  override readonly name = 'TopicLimitError';
  constructor(readonly limit: number) {
    super('LIMIT_EXCEEDED', `a user may follow at most ${limit} topics: unfollow one first (PUSH_MAX_TOPICS_PER_USER)`);
  }
}

export interface TopicStoreOptions {
  /** A connection for commands (not one in subscriber or blocking mode). */
  redis: RedisClient;
  keys: PushKeys;
  /**
   * Most topics one user may follow (`PUSH_MAX_TOPICS_PER_USER`); one more is a
   * {@link TopicLimitError}.
   * @default 1000
   */
  maxTopicsPerUser?: number;
}

export interface TopicStore {
  /** `user` follows `topic` (validated like a channel name); following twice is one follow. */
  follow(tenant: string, user: string, topic: string): Promise<void>;
  /** `user` stops following `topic`; false if it did not follow it. */
  unfollow(tenant: string, user: string, topic: string): Promise<boolean>;
  /** The topics `user` follows (at most the per-user limit), sorted. */
  following(tenant: string, user: string): Promise<string[]>;
  /**
   * The followers of `topic`, in pages of about `pageSize` (SSCAN's COUNT is a hint):
   * a follower may appear twice if the set is rehashed during the walk, never not at all
   * if it followed throughout.
   */
  followers(tenant: string, topic: string, pageSize: number): AsyncIterable<string[]>;
}

/**
 * KEYS: the user's topic set, the topic's follower set. ARGV: topic, user, limit.
 * Returns 1 when followed (or already following), 0 at the limit.
 */
const FOLLOW_SCRIPT = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 and redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
`;

type FollowCommand = (userKey: string, topicKey: string, topic: string, user: string, limit: number) => Promise<number>;

export function createTopicStore(options: TopicStoreOptions): TopicStore {
  const { redis, keys } = options;
  const limit = options.maxTopicsPerUser ?? 1000;
  if (!('heraldFollowTopic' in redis)) {
    redis.defineCommand('heraldFollowTopic', { numberOfKeys: 2, lua: FOLLOW_SCRIPT });
  }
  const followCommand = (redis as unknown as { heraldFollowTopic: FollowCommand }).heraldFollowTopic.bind(redis);
  return {
    async follow(tenant, user, topic) {
      assertValidName('topic', topic);
      const ok = await followCommand(keys.following(tenant, user), keys.followers(tenant, topic), topic, user, limit);
      if (ok !== 1) throw new TopicLimitError(limit);
    },
    async unfollow(tenant, user, topic) {
      assertValidName('topic', topic);
      const reply = await redis
        .multi()
        .srem(keys.following(tenant, user), topic)
        .srem(keys.followers(tenant, topic), user)
        .exec();
      return Number(reply?.[0]?.[1] ?? 0) > 0;
    },
    async following(tenant, user) {
      return (await redis.smembers(keys.following(tenant, user))).sort();
    },
    followers(tenant, topic, pageSize) {
      const key = keys.followers(tenant, topic);
      return {
        async *[Symbol.asyncIterator]() {
          let cursor = '0';
          do {
            const [next, members] = await redis.sscan(key, cursor, 'COUNT', pageSize);
            cursor = next;
            if (members.length > 0) yield members;
          } while (cursor !== '0');
        },
      };
    },
  };
}
