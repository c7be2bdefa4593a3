/**
 * The push settings as the worker and the servers use them: the table's `PUSH_*` rows,
 * the checks between them, and the senders' credentials (a key file read, keys checked).
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { APPLE_ID_PATTERN, BUNDLE_ID_PATTERN, parseServiceAccountKey, type VapidKeys } from './push.js';
import type { SettingsReader } from './settings-reader.js';
import type { PushConfig } from './types.js';

export function readPushConfig(read: SettingsReader, production: boolean): PushConfig {
  const sendTimeoutMs = read.value('PUSH_SEND_TIMEOUT_MS');
  const claimIdleMs = read.value('PUSH_CLAIM_IDLE_MS');
  if (claimIdleMs <= sendTimeoutMs) {
    read.problem(`PUSH_CLAIM_IDLE_MS (${claimIdleMs}) must be longer than PUSH_SEND_TIMEOUT_MS (${sendTimeoutMs}), or live workers' entries are taken over`);
  }
  const retryWindowMs = read.value('PUSH_RETRY_WINDOW_MS');
  const dedupTtlMs = read.value('PUSH_DEDUP_TTL_SECONDS') * 1000;
  if (retryWindowMs >= dedupTtlMs) {
    read.problem(`PUSH_RETRY_WINDOW_MS (${retryWindowMs}) must be shorter than PUSH_DEDUP_TTL_SECONDS (${dedupTtlMs / 1000} s), or a retry's send marker expires before it is sent`);
  }
  const concurrency = read.value('PUSH_CONCURRENCY');
  const tenantConcurrency = read.value('PUSH_TENANT_CONCURRENCY') ?? Math.max(1, Math.floor(concurrency / 4));
  if (tenantConcurrency > concurrency) {
    read.problem(`PUSH_TENANT_CONCURRENCY (${tenantConcurrency}) must not exceed PUSH_CONCURRENCY (${concurrency})`);
  }
  return {
    dryRun: !production,
    concurrency,
    tenantConcurrency,
    destinationConcurrency: read.value('PUSH_DESTINATION_CONCURRENCY'),
    breakerFailures: read.value('PUSH_BREAKER_FAILURES'),
    breakerCooldownMs: read.value('PUSH_BREAKER_COOLDOWN_MS'),
    maxAttempts: read.value('PUSH_MAX_ATTEMPTS'),
    claimIdleMs,
    offlineGraceMs: read.value('PUSH_OFFLINE_GRACE_MS'),
    seenLiveTtlMs: read.value('PUSH_SEEN_LIVE_TTL_MS'),
    sendTimeoutMs,
    retryWindowMs,
    retryPollMs: read.value('PUSH_RETRY_POLL_MS'),
    retryMaxMs: read.value('PUSH_RETRY_MAX_MS'),
    maxDevicesPerUser: read.value('PUSH_MAX_DEVICES_PER_USER'),
    maxTopicsPerUser: read.value('PUSH_MAX_TOPICS_PER_USER'),
    fanoutPageSize: read.value('PUSH_FANOUT_PAGE_SIZE'),
    streamMaxLength: read.value('PUSH_STREAM_MAX_LENGTH'),
    deadLetterMaxLength: read.value('PUSH_DEAD_LETTER_MAX_LENGTH'),
    dedupTtlMs,
    summaryMs: read.value('PUSH_LOG_SUMMARY_MS'),
    fcm: readFcm(read),
    apns: readApns(read),
    vapid: readVapid(read),
    webhookSecret: readWebhookSecret(read),
    allowedNetworks: read.value('PUSH_ALLOWED_NETWORKS'),
  };
}

function readFcm(read: SettingsReader): PushConfig['fcm'] {
  const url = read.value('PUSH_FCM_URL');
  const tokenUrl = read.value('PUSH_FCM_TOKEN_URL');
  const file = read.value('PUSH_FCM_SERVICE_ACCOUNT_FILE');
  if (file === undefined) return undefined;
  let json: string;
  try {
    json = readFileSync(file, 'utf8');
  } catch (error) {
    read.problem(`PUSH_FCM_SERVICE_ACCOUNT_FILE "${file}" cannot be read: ${messageOf(error)}`);
    return undefined;
  }
  try {
    return { serviceAccount: parseServiceAccountKey(json), url, tokenUrl };
  } catch (error) {
    read.problem(`PUSH_FCM_SERVICE_ACCOUNT_FILE "${file}" ${messageOf(error)}`);
    return undefined;
  }
}

function readApns(read: SettingsReader): PushConfig['apns'] {
  const url = read.value('PUSH_APNS_URL');
  const keyId = read.value('PUSH_APNS_KEY_ID');
  const teamId = read.value('PUSH_APNS_TEAM_ID');
  const topic = read.value('PUSH_APNS_TOPIC');
  const inline = read.value('PUSH_APNS_KEY');
  const file = read.value('PUSH_APNS_KEY_FILE');
  const set = [keyId, teamId, topic, inline ?? file].filter((value) => value !== undefined).length;
  if (set === 0) return undefined;
  if (keyId === undefined || teamId === undefined || topic === undefined || (inline === undefined && file === undefined)) {
    read.problem('PUSH_APNS_KEY_ID, PUSH_APNS_TEAM_ID, PUSH_APNS_TOPIC and PUSH_APNS_KEY (or PUSH_APNS_KEY_FILE) must be set together (or none of them)');
    return undefined;
  }
  if (inline !== undefined && file !== undefined) {
    read.problem('PUSH_APNS_KEY and PUSH_APNS_KEY_FILE are both set: set one');
    return undefined;
  }
  let ok = true;
  if (!APPLE_ID_PATTERN.test(keyId)) {
    read.problem(`PUSH_APNS_KEY_ID "${keyId}" must be 10 upper-case letters and digits (the key's id in Apple's developer account)`);
    ok = false;
  }
  if (!APPLE_ID_PATTERN.test(teamId)) {
    read.problem(`PUSH_APNS_TEAM_ID "${teamId}" must be 10 upper-case letters and digits`);
    ok = false;
  }
  if (!BUNDLE_ID_PATTERN.test(topic)) {
    read.problem(`PUSH_APNS_TOPIC "${topic}" must be the app's bundle id (com.example.app)`);
    ok = false;
  }
  let privateKey = inline;
  const where = file === undefined ? 'PUSH_APNS_KEY' : `PUSH_APNS_KEY_FILE "${file}"`;
  if (file !== undefined) {
    try {
      privateKey = readFileSync(file, 'utf8');
    } catch (error) {
      read.problem(`${where} cannot be read: ${messageOf(error)}`);
      return undefined;
    }
  }
  // an env file may hold the PEM on one line with \n escapes
  privateKey = privateKey?.replace(/\\n/g, '\n');
  const problem = p256KeyProblem(privateKey ?? '');
  if (problem !== undefined) {
    // the message never repeats the key
    read.problem(`${where} ${problem}`);
    ok = false;
  }
  return ok && privateKey !== undefined ? { credentials: { keyId, teamId, privateKey, topic }, url } : undefined;
}

/** Why `pem` is not a P-256 private key (an APNs `.p8`), or undefined when it is one. */
function p256KeyProblem(pem: string): string | undefined {
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return 'is not a P-256 (ES256) key, as an APNs .p8 key is';
    return undefined;
  } catch {
    return 'is not a PEM private key (the contents of the .p8 file)';
  }
}

function readVapid(read: SettingsReader): VapidKeys | undefined {
  const subject = read.value('PUSH_VAPID_SUBJECT');
  const publicKey = read.value('PUSH_VAPID_PUBLIC_KEY');
  const privateKey = read.value('PUSH_VAPID_PRIVATE_KEY');
  const set = [subject, publicKey, privateKey].filter((value) => value !== undefined).length;
  if (set === 0) return undefined;
  if (subject === undefined || publicKey === undefined || privateKey === undefined) {
    read.problem('PUSH_VAPID_SUBJECT, PUSH_VAPID_PUBLIC_KEY and PUSH_VAPID_PRIVATE_KEY must be set together (or none of them)');
    return undefined;
  }
  let ok = true;
  if (!/^(mailto:|https:\/\/)/.test(subject)) {
    read.problem(`PUSH_VAPID_SUBJECT "${subject}" must be a mailto: or https:// URL`);
    ok = false;
  }
  if (base64urlBytes(publicKey) !== 65) {
    read.problem('PUSH_VAPID_PUBLIC_KEY must be a base64url uncompressed P-256 public key (65 bytes)');
    ok = false;
  }
  if (base64urlBytes(privateKey) !== 32) {
    read.problem('PUSH_VAPID_PRIVATE_KEY must be a base64url P-256 private key (32 bytes)');
    ok = false;
  }
  return ok ? { subject, publicKey, privateKey } : undefined;
}

function readWebhookSecret(read: SettingsReader): string | undefined {
  const secret = read.value('PUSH_WEBHOOK_SECRET');
  if (secret === undefined) return undefined;
  const key = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : undefined;
  if (key === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(key) || Buffer.from(key, 'base64').length < 24) {
    read.problem('PUSH_WEBHOOK_SECRET must be whsec_ followed by a base64 key of at least 24 bytes (Standard Webhooks)');
    return undefined;
  }
  return secret;
}

/** Bytes of a base64url string, or -1 if it is not one. */
function base64urlBytes(value: string): number {
  return /^[A-Za-z0-9_-]+={0,2}$/.test(value) ? Buffer.from(value, 'base64url').length : -1;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
