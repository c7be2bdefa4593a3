import { describe, expect, it } from 'vitest';
import { createOriginPolicy } from '../../src/transports/http/edge.js';
import { createRefusedOriginLog } from '../../src/transports/http/refused-origins.js';

function capture() {
  const lines: string[] = [];
  return { lines, logger: { warn: (...args: unknown[]) => lines.push(args.map(String).join(' ')) } };
}

describe('refused origins', () => {
  it('logs a refused origin once, at warn, naming CORS_ORIGINS; allowed origins are not logged', () => {
    const { lines, logger } = capture();
    const policy = createOriginPolicy(['https://app.example'], { onRefused: createRefusedOriginLog(logger) });
    expect(policy.allows('https://evil.example', 'herald.example')).toBe(false);
    expect(policy.allows('https://evil.example', 'herald.example')).toBe(false);
    expect(policy.allows('https://app.example', 'herald.example')).toBe(true);
    expect(policy.allows('https://herald.example', 'herald.example')).toBe(true);
    expect(policy.allows(undefined, 'herald.example')).toBe(true);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('"https://evil.example"');
    expect(lines[0]).toContain('CORS_ORIGINS');
  });

  it('remembers at most its bound in bytes: past it, one line says so and nothing more is logged', () => {
    const { lines, logger } = capture();
    const maxBytes = 4096;
    const refused = createRefusedOriginLog(logger, maxBytes);
    // Each origin costs 2 bytes a character and 64 more: about 27 of these fit in 4 KiB.
    for (let n = 0; n < 1000; n++) refused(`https://o${String(n).padStart(4, '0')}.example.com/${'x'.repeat(40)}`);
    const perOrigin = lines.filter((line) => line.includes('refused a browser request'));
    expect(perOrigin.length).toBeGreaterThan(10);
    expect(perOrigin.length * (2 * 70 + 64)).toBeLessThanOrEqual(maxBytes);
    expect(lines).toHaveLength(perOrigin.length + 1);
    expect(lines.at(-1)).toContain('no longer logged one by one');
  });
});
