/**
 * Mints a token signed with `JWT_SECRET`, for operators and local testing:
 *   npm run token -- alice --tenant acme --stores store-1,store-2
 *   npm run token -- billing --tenant acme --scope notifications:publish
 */
import { parseArgs } from 'node:util';
import jwt from 'jsonwebtoken';
import { assertValidName } from './names/index.js';
import { readConfig } from './config/index.js';

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      tenant: { type: 'string', default: 'acme' },
      stores: { type: 'string', default: '' },
      scope: { type: 'string', default: '' },
      ttl: { type: 'string', default: '3600' },
    },
  });
  const secret = readConfig().jwtSecret;
  if (secret === undefined) throw new Error('set JWT_SECRET (the secret the servers verify with) to mint a token');
  const sub = assertValidName('the user or service name', positionals[0]);
  const tenant = assertValidName('--tenant', values.tenant);
  const stores = values.stores.split(',').filter(Boolean).map((store) => assertValidName('a store id in --stores', store));
  const ttl = Number(values.ttl);
  if (!Number.isSafeInteger(ttl) || ttl <= 0) throw new Error('--ttl is a number of seconds');
  const claims = { sub, tenant, ...(stores.length ? { stores } : {}), ...(values.scope ? { scope: values.scope } : {}) };
  console.log(jwt.sign(claims, secret, { algorithm: 'HS256', expiresIn: ttl }));
}

try {
  main();
} catch (error) {
  console.error(`token: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
