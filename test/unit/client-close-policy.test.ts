/** @herald/client: what each close code means for the session. */
import { describe, expect, it } from 'vitest';
import { closeVerdict } from '../../packages/client/src/close-policy.js';

const live = { acknowledged: true, refreshable: true };
const atInit = { acknowledged: false, refreshable: true };

describe('closeVerdict', () => {
  it('stops on a token refused at connection_init (4403), never retrying with less', () => {
    expect(closeVerdict(4403, 'Forbidden: token rejected', atInit)).toBe('stop');
    expect(closeVerdict(4403, 'Forbidden: token expired', atInit)).toBe('stop');
  });
  it('on expiry of a live connection resumes with a fresh token only when there is a function to get one', () => {
    expect(closeVerdict(4403, 'Forbidden: token expired', live)).toBe('resume');
    expect(closeVerdict(4403, 'Forbidden: token expired', { acknowledged: true, refreshable: false })).toBe('stop');
  });
  it('resumes on 4413, 1001, 1012, 1006 and unknown codes', () => {
    for (const code of [4413, 1001, 1012, 1006, 1000, 4500, 4499, 4999]) expect(closeVerdict(code, '', live)).toBe('resume');
  });
  it('backs off harder on 4429 and 1013', () => {
    expect(closeVerdict(4429, 'Too many initialisation requests', live)).toBe('resume-overloaded');
    expect(closeVerdict(1013, '', live)).toBe('resume-overloaded');
  });
  it('stops on 4406: the server does not speak graphql-transport-ws', () => {
    expect(closeVerdict(4406, 'Subprotocol not acceptable', atInit)).toBe('stop');
  });
});
