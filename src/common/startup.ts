/**
 * Start-up failures an operator fixes by changing one variable. `main.ts` prints a
 * {@link StartupError} as one line, without a stack trace, and exits 1.
 */

/** Thrown when a mode cannot run with the given configuration; its message names the variable to change. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/**
 * Turns a failure to listen on `host`:`port` (the values of `hostVariable` and `variable`)
 * into a {@link StartupError} naming the variable, when the cause is one an operator fixes
 * by configuration; any other failure is returned as it is.
 */
export function listenFailure(variable: string, port: number, host: string, error: unknown, hostVariable = 'HOST'): Error {
  switch (errorCode(error)) {
    case 'EADDRINUSE':
      return new StartupError(`${variable} ${port} is already in use: set ${variable} to a free port`);
    case 'EACCES':
      return new StartupError(`${variable} ${port} needs privileges this process lacks: set ${variable} to a port from 1024 up`);
    case 'EADDRNOTAVAIL':
      return new StartupError(`${hostVariable} ${host} is not an address of this machine (listening for ${variable}): set ${hostVariable} to one of its addresses, or 0.0.0.0`);
    case 'ENOTFOUND':
      return new StartupError(`${hostVariable} ${host} does not resolve (listening for ${variable}): set ${hostVariable} to an address of this machine, or 0.0.0.0`);
    default:
      return error instanceof Error ? error : new Error(String(error));
  }
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
}

/** `url` with its password (if any) replaced by `***`, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}
