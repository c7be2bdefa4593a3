/** The caller of a gRPC call, from its `authorization: Bearer <jwt>` metadata. */
import type { Metadata } from '@grpc/grpc-js';
import { bearerToken, type Principal, type TokenVerifier } from '../../auth/index.js';

/** Verifies the call's token; throws `AuthenticationError` saying what was wrong. */
export function principalOf(metadata: Metadata, verifier: TokenVerifier): Principal {
  const [header] = metadata.get('authorization');
  return verifier.verify(bearerToken(typeof header === 'string' ? header : undefined));
}
