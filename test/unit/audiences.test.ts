/**
 * The audience table (src/common/audiences.ts) and the two contracts that list its
 * names: schema.graphql's `enum Audience` and the proto's `enum Audience`. An audience
 * added to one and not the others fails here.
 */
import { readFileSync } from 'node:fs';
import { buildSchema, GraphQLEnumType } from 'graphql';
import { loadSync } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AUDIENCE_KINDS, AUDIENCES, isAudience, isPushedAudience, PUSHED_AUDIENCES } from '../../src/common/audiences.js';
import { createNamer } from '../../src/names/index.js';

describe('the audience table', () => {
  it("is schema.graphql's enum Audience, in order", () => {
    const schema = buildSchema(readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'));
    const audience = schema.getType('Audience');
    expect(audience).toBeInstanceOf(GraphQLEnumType);
    expect((audience as GraphQLEnumType).getValues().map((value) => value.name)).toEqual(AUDIENCES);
  });

  it("is the proto's enum Audience, AUDIENCE_-prefixed, after AUDIENCE_UNSPECIFIED", () => {
    const proto = fileURLToPath(new URL('../../proto/herald/v1/notifications.proto', import.meta.url));
    const definition = loadSync(proto, { enums: String });
    const audience = definition['herald.v1.Audience'] as unknown as { type: { value: Array<{ name: string; number: number }> } };
    const values = audience.type.value;
    expect(values.map(({ name }) => name)).toEqual(['AUDIENCE_UNSPECIFIED', ...AUDIENCES.map((name) => `AUDIENCE_${name}`)]);
    expect(values.map(({ number }) => number)).toEqual(values.map((_, index) => index));
  });

  it('gives every audience its own channel segment', () => {
    const segments = AUDIENCES.map((audience) => AUDIENCE_KINDS[audience].segment);
    expect(new Set(segments).size).toBe(segments.length);
    // `history` and `read` are the other kinds of key under a tenant: no audience may take them.
    expect(segments).not.toContain('history');
    expect(segments).not.toContain('read');
    expect(segments).not.toContain('meta');
    expect(segments).not.toContain('idempotency');
  });

  it('builds each channel from its row', () => {
    const namer = createNamer('herald');
    for (const audience of AUDIENCES) {
      const { segment, ownTenant } = AUDIENCE_KINDS[audience];
      expect(namer.destination('acme', audience, ownTenant ? 'acme' : 'x').channel).toBe(ownTenant ? `herald:{acme}:${segment}` : `herald:{acme}:${segment}:x`);
    }
  });

  it('pushes to the audiences that name users, and only those', () => {
    expect(PUSHED_AUDIENCES).toEqual(['USER', 'TOPIC']);
    expect(isPushedAudience('STORE')).toBe(false);
    expect(isPushedAudience('TOPIC')).toBe(true);
    expect(isAudience('toString')).toBe(false);
    expect(isAudience('ROLE')).toBe(false);
  });
});
