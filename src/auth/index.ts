export * from './principal.js';
export * from './tokens.js';
export * from './policy.js';
