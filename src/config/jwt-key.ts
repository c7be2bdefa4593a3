/**
 * The key of `JWT_SECRET` or `JWT_PUBLIC_KEY`, parsed: the `KeyObject` a token verifier
 * checks signatures with and the one algorithm it accepts with it. Config calls it to
 * refuse an unusable key at start-up, naming the variable; auth calls it to build the
 * verifier. A KeyObject, not the string: given a string, jsonwebtoken tries
 * `createPublicKey` on every verify and falls back after the exception, which costs more
 * than the HMAC.
 */
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';

export type JwtAlgorithm = 'HS256' | 'RS256' | 'ES256';

export interface VerificationKey {
  readonly key: KeyObject;
  readonly algorithm: JwtAlgorithm;
}

/** An HS256 shared secret. */
export function secretKey(secret: string): VerificationKey {
  return { key: createSecretKey(Buffer.from(secret)), algorithm: 'HS256' };
}

/** An RSA (RS256) or EC P-256 (ES256) public key from its PEM; throws an `Error` saying why another is not usable. */
export function publicKey(pem: string): VerificationKey {
  const key = createPublicKey(pem);
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { key, algorithm: 'RS256' };
    case 'ec':
      if (key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
        throw new Error(`JWT_PUBLIC_KEY is an EC key on ${key.asymmetricKeyDetails?.namedCurve ?? 'an unknown curve'}: ES256 needs P-256`);
      }
      return { key, algorithm: 'ES256' };
    default:
      throw new Error(`JWT_PUBLIC_KEY is a ${key.asymmetricKeyType ?? 'unknown'} key: use an RSA or EC P-256 key`);
  }
}
