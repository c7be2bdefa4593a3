export * from './tokens.js';
export * from './policy.js';
