/**
 * JWT secrets that have appeared in Herald's repository. Anyone who has read it can sign
 * tokens with them, so production refuses them (see `readConfig`). Git keeps every value
 * that was ever committed: add a secret here when one is published, never remove one.
 *
 * The test suite's own secret (`test/support/tokens.ts`) is not listed: the end-to-end
 * tests run Herald as a production process with it.
 */
export const PUBLISHED_JWT_SECRETS: ReadonlySet<string> = new Set([
  // docker-compose.yml's default until compose required JWT_SECRET.
  'dev-only-secret-change-me-0123456789abcdef',
  // The placeholder in .env.example.
  'change-me-to-the-output-of-openssl-rand-base64-48',
]);
