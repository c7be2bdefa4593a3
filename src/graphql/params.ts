/**
 * The parameters of a GraphQL request over HTTP (`query`, `variables`, `operationName`,
 * `extensions`), read from a JSON body or a URL's search parameters and checked in one
 * place, for the publish server and the SSE transport alike. Whatever a client sends is
 * `unknown` until it passes here; what is wrong is a {@link BadRequestError} whose
 * message names it, never an echo of the client's bytes.
 */
import { Failure } from '../common/failures.js';

/** The request is malformed; `message` says what is wrong, for a 400 answer. */
export class BadRequestError extends Failure {
  override readonly name = 'BadRequestError';
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}

export interface OperationParams {
  readonly query: string;
  readonly variables: Record<string, unknown> | undefined;
  readonly operationName: string | undefined;
  readonly extensions: Record<string, unknown> | undefined;
}

/** The parameters of a JSON request body. */
export function paramsFromJson(body: string): OperationParams {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new BadRequestError('the body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new BadRequestError(`the body must be a JSON object, not ${describe(parsed)}`);
  }
  return checkParams(parsed as Record<string, unknown>);
}

/** The parameters of a GET request's URL (`variables` and `extensions` as JSON text). */
export function paramsFromSearch(search: URLSearchParams): OperationParams {
  const json = (name: string): unknown => {
    const text = search.get(name);
    if (text === null) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new BadRequestError(`"${name}" is not valid JSON`);
    }
  };
  return checkParams({
    query: search.get('query') ?? undefined,
    variables: json('variables'),
    operationName: search.get('operationName') ?? undefined,
    extensions: json('extensions'),
  });
}

function checkParams(params: Record<string, unknown>): OperationParams {
  const { query, variables, operationName, extensions } = params;
  if (query === undefined || query === null) throw new BadRequestError('"query" is missing');
  if (typeof query !== 'string') throw new BadRequestError(`"query" must be a string, not ${describe(query)}`);
  if (query.trim() === '') throw new BadRequestError('"query" is empty');
  if (variables != null && !isPlainObject(variables)) throw new BadRequestError(`"variables" must be an object, not ${describe(variables)}`);
  if (operationName != null && typeof operationName !== 'string') {
    throw new BadRequestError(`"operationName" must be a string, not ${describe(operationName)}`);
  }
  if (extensions != null && !isPlainObject(extensions)) throw new BadRequestError(`"extensions" must be an object, not ${describe(extensions)}`);
  return {
    query,
    variables: variables ?? undefined,
    operationName: operationName ?? undefined,
    extensions: extensions ?? undefined,
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The JSON type of a value, for a message: never the value itself. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'object':
      return 'an object';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'string':
      return 'a string';
    default:
      return typeof value;
  }
}

/**
 * A request's whole body, refused with a {@link BadRequestError} naming the limit once it
 * passes `maxBytes` (`MAX_MESSAGE_BYTES`), before the rest is read.
 */
export async function readBody(request: AsyncIterable<Buffer>, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += chunk.length;
    if (size > maxBytes) throw new BadRequestError(`request body is larger than ${maxBytes} bytes (MAX_MESSAGE_BYTES)`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
