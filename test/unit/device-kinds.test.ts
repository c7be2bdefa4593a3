/**
 * The device-kind registry (src/push/device-kinds.ts) and the schema that shows it: every
 * kind a row, its input field and its shown field in schema.graphql, and a sender made
 * for each kind from the settings (a logging one in dry-run when unconfigured).
 */
import { readFileSync } from 'node:fs';
import { buildSchema, GraphQLEnumType, GraphQLInputObjectType, GraphQLObjectType } from 'graphql';
import { describe, expect, it } from 'vitest';
import { readConfig } from '../../src/config/index.js';
import { DEVICE_KINDS } from '../../src/push/device-address.js';
import { DEVICE_KIND_SPECS } from '../../src/push/device-kinds.js';
import { createPushSenders } from '../../src/push/index.js';

const schema = buildSchema(readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'));
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

describe('the device-kind registry', () => {
  it("has a row for each of schema.graphql's DeviceKind values, in order", () => {
    const kinds = schema.getType('DeviceKind') as GraphQLEnumType;
    expect(kinds.getValues().map((value) => value.name)).toEqual(DEVICE_KINDS);
    expect(Object.keys(DEVICE_KIND_SPECS)).toEqual(DEVICE_KINDS);
  });

  it('gives each kind a DeviceInput field and a Device field, both in the schema; only the token kinds share one', () => {
    const input = (schema.getType('DeviceInput') as GraphQLInputObjectType).getFields();
    const device = (schema.getType('Device') as GraphQLObjectType).getFields();
    const inputFields = DEVICE_KINDS.map((kind) => DEVICE_KIND_SPECS[kind].field);
    const shownFields = DEVICE_KINDS.map((kind) => DEVICE_KIND_SPECS[kind].shown.field);
    // FCM and APNs both take a `token` (the contract's `{ kind: APNS, token }`): the kind tells them apart
    const sharing = DEVICE_KINDS.filter((kind) => inputFields.filter((field) => field === DEVICE_KIND_SPECS[kind].field).length > 1);
    expect(sharing).toEqual(['FCM', 'APNS']);
    expect(new Set(inputFields).size).toBe(DEVICE_KINDS.length - 1);
    expect(new Set(shownFields).size).toBe(DEVICE_KINDS.length - 1);
    for (const field of inputFields) expect(input, field).toHaveProperty(field);
    for (const field of shownFields) expect(device, field).toHaveProperty(field);
  });

  it('makes a sender for every kind in dry-run, and none for an unconfigured kind in production', async () => {
    const development = createPushSenders(readConfig({}).push, silent);
    expect(DEVICE_KINDS.map((kind) => development[kind]?.kind)).toEqual(DEVICE_KINDS);
    await development.close();
    const production = createPushSenders(readConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32) }).push, silent);
    expect(DEVICE_KINDS.map((kind) => production[kind])).toEqual(DEVICE_KINDS.map(() => undefined));
    await production.close();
  });

  it('makes the configured sender of a kind from its settings', async () => {
    const senders = createPushSenders(readConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), PUSH_WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 1).toString('base64')}` }).push, silent);
    expect(senders.WEBHOOK?.kind).toBe('WEBHOOK');
    expect(senders.FCM).toBeUndefined();
    await senders.close();
  });
});
