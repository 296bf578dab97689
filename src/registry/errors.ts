/** Turning a registry's error answer (`{"errors":[{"code","message"}]}`) into one of our typed errors. */
import { AuthError, FetchError, NotFoundError, type ErrorContext, type OndemandError } from '../util/errors.js';
import { discardBody, readBody, type HttpResponse } from './http.js';

async function registryErrorText(res: HttpResponse): Promise<string> {
  try {
    const body = await readBody(res, 64 * 1024);
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = parsed.errors?.[0];
    if (first && typeof first.code === 'string') {
      return typeof first.message === 'string' && first.message !== '' ? `${first.code}: ${first.message}` : first.code;
    }
  } catch {
    await discardBody(res);
  }
  return '';
}

/** The error for an unexpected status; `what` says what was asked, e.g. `manifest 127.0.0.1:5000/a:b`. */
export async function statusError(res: HttpResponse, what: string, context: ErrorContext): Promise<OndemandError> {
  const detail = await registryErrorText(res);
  const suffix = detail ? ` (${detail})` : '';
  if (res.status === 404) return new NotFoundError(`${what} not found${suffix}`, context);
  if (res.status === 401 || res.status === 403) return new AuthError(`${what}: access denied (HTTP ${res.status})${suffix}`, context);
  return new FetchError(`${what}: registry answered HTTP ${res.status}${suffix}`, { ...context, status: res.status });
}
