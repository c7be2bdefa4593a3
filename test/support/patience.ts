/**
 * How long a test waits for something that must happen (a process to start, a message
 * to arrive, a condition to hold) before it calls it a failure. CI shares its machine:
 * with a load average of 6–15 on 2 cores, a tsx process has taken over 15 s to print its
 * banner and a delivery over 5 s to arrive. This only bounds how long a broken run hangs;
 * a passing run never waits for it. Negative tests ("nothing arrived within …") and
 * bounds that tell right from wrong behaviour set their own times.
 */
export const PATIENCE_MS = 30_000;
