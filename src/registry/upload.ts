/**
 * Pushing blobs: HEAD to skip what the repository has, cross-repository mount when the blob is
 * known to be elsewhere on the registry, else POST then PUT (distribution has no single-POST upload),
 * or POST, PATCH chunks, PUT for big blobs. A failed upload starts again from POST. A blob still
 * being written can be uploaded as it grows (pushGrowingBlob).
 */
import type { Readable } from 'node:stream';
import { FetchError, OndemandError, errorText as errText, type ErrorContext } from '../util/errors.js';
import { networkReason, repositoryScope } from './auth.js';
import type { RegistryClient } from './client.js';
import { safeUrl, type OperationOptions, type SendResult } from './send.js';
import { statusError } from './errors.js';
import { discardBody, header, type RequestBody } from './http.js';
import type { RetryBudget } from './retry.js';

/** Blob bytes to push: in memory, or a source that can open any byte span again (for retries and chunks). */
export type BlobSource = Buffer | { size: number; open(start: number, end: number): Readable };

export interface PushBlobOptions extends OperationOptions {
  /** Repositories on the same registry that may hold the blob (tried as mount sources). */
  mountFrom?: string[];
}

export type PushOutcome = 'exists' | 'mounted' | 'uploaded';

function sourceSize(source: BlobSource): number {
  return Buffer.isBuffer(source) ? source.length : source.size;
}

function slice(source: BlobSource, start: number, end: number): RequestBody {
  if (Buffer.isBuffer(source)) return source.subarray(start, end);
  return { length: end - start, open: () => source.open(start, end) };
}

function locationOf(result: SendResult): URL {
  const loc = header(result.res, 'location');
  if (loc === undefined) throw new FetchError('registry started an upload without a Location', {});
  return new URL(loc, result.endpoint.base);
}

/** Pushes one blob unless the repository already has it. */
export async function pushBlob(client: RegistryClient, repository: string, digest: string, source: BlobSource, options: PushBlobOptions = {}): Promise<PushOutcome> {
  const size = sourceSize(source);
  const what = `pushing blob ${digest} to ${client.registry}/${repository}`;
  const existing = await client.blobSize(repository, digest, { ...options, useMirrors: false });
  if (existing !== undefined) return 'exists';
  const budget = client.budget(what, { blob: digest, repository }, options);
  const scopes = [repositoryScope(repository, 'push')];

  for (const from of options.mountFrom ?? []) {
    if (from === repository) continue;
    const mountScopes = [...scopes, repositoryScope(from, 'pull')];
    const q = new URLSearchParams({ mount: digest, from });
    const result = await client.send({ method: 'POST', path: `/v2/${repository}/blobs/uploads/?${q.toString()}`, scopes: mountScopes, budget });
    if (result.res.status !== 201 && result.res.status !== 202 && result.res.status !== 404) throw await statusError(result.res, what, { blob: digest });
    await discardBody(result.res);
    if (result.res.status === 201) return 'mounted';
    if (result.res.status === 202) {
      // Not mountable: the registry opened an upload instead; cancel it and upload normally.
      await cancel(client, locationOf(result), scopes, budget, result);
      break;
    }
  }

  for (;;) {
    try {
      await uploadOnce(client, repository, digest, source, size, scopes, budget, what);
      return 'uploaded';
    } catch (err) {
      if (budget.signal.aborted) throw budget.abortError();
      if (err instanceof OndemandError && err.code !== 'EFETCH') throw err;
      const status = err instanceof OndemandError ? err.context.status : undefined;
      // A 4xx is final, except DIGEST_INVALID (400): the bytes may have been damaged on the way.
      if (typeof status === 'number' && status >= 400 && status < 500 && !(status === 400 && /DIGEST_INVALID/.test(errText(err)))) throw err;
      await budget.failed(networkReason(err));
    }
  }
}

async function cancel(client: RegistryClient, location: URL, scopes: string[], budget: RetryBudget, result: { endpoint: Endpoint }): Promise<void> {
  try {
    const r = await client.send({ method: 'DELETE', path: location, scopes, budget, endpoint: result.endpoint, retry: false });
    await discardBody(r.res);
  } catch {
    /* an abandoned upload expires on its own */
  }
}

type Endpoint = SendResult['endpoint'];

/** An open upload session: where the next request goes. */
interface Session {
  location: URL;
  endpoint: Endpoint;
}

async function openUpload(client: RegistryClient, repository: string, scopes: string[], budget: RetryBudget, what: string, context: ErrorContext): Promise<Session> {
  const start = await client.send({ method: 'POST', path: `/v2/${repository}/blobs/uploads/`, scopes, budget });
  if (start.res.status !== 202) throw await statusError(start.res, what, context);
  await discardBody(start.res);
  return { location: locationOf(start), endpoint: start.endpoint };
}

/** PATCHes bytes [offset, end) of the blob; moves the session to the Location the registry answers. */
async function patchChunk(client: RegistryClient, session: Session, body: RequestBody, offset: number, end: number, scopes: string[], budget: RetryBudget, what: string, context: ErrorContext): Promise<void> {
  const r = await client.send({
    method: 'PATCH',
    path: session.location,
    headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end - 1}` },
    body,
    scopes,
    budget,
    endpoint: session.endpoint,
    retry: false,
  });
  if (r.res.status !== 202) throw await statusError(r.res, `${what} (chunk at ${offset})`, { ...context, offset });
  await discardBody(r.res);
  session.location = locationOf(r);
}

/** The closing PUT `?digest=`: the registry checks the digest of everything it received. */
async function closeUpload(client: RegistryClient, session: Session, digest: string, body: RequestBody, scopes: string[], budget: RetryBudget, what: string, context: ErrorContext): Promise<void> {
  const location = new URL(session.location);
  location.searchParams.set('digest', digest);
  const put = await client.send({ method: 'PUT', path: location, headers: { 'content-type': 'application/octet-stream' }, body, scopes, budget, endpoint: session.endpoint, retry: false });
  if (put.res.status !== 201) throw await statusError(put.res, `${what} (PUT ${safeUrl(location)})`, context);
  await discardBody(put.res);
}

async function uploadOnce(
  client: RegistryClient,
  repository: string,
  digest: string,
  source: BlobSource,
  size: number,
  scopes: string[],
  budget: RetryBudget,
  what: string,
): Promise<void> {
  const context = { blob: digest };
  const session = await openUpload(client, repository, scopes, budget, what, context);
  if (size > client.monolithicUploadLimit) {
    for (let offset = 0; offset < size; ) {
      const end = Math.min(size, offset + client.uploadChunkSize);
      await patchChunk(client, session, slice(source, offset, end), offset, end, scopes, budget, what, context);
      offset = end;
    }
    await closeUpload(client, session, digest, Buffer.alloc(0), scopes, budget, what, context);
    return;
  }
  await closeUpload(client, session, digest, slice(source, 0, size), scopes, budget, what, context);
}

/**
 * A blob still being written (convert's data blobs): the bytes so far can be read, its digest and
 * size are known only at the end.
 */
export interface GrowingBlobSource {
  /** Resolves with the readable size once it is at least `bytes`, or with the final size once complete. */
  waitFor(bytes: number): Promise<number>;
  /** Digest and size once complete; null when the blob is not wanted after all. */
  readonly done: Promise<{ digest: string; size: number } | null>;
  /** Bytes [start, end) (already written). */
  open(start: number, end: number): Readable;
}

/** 'small': the blob ended before one whole chunk, nothing was sent (push it with pushBlob). */
export type GrowingOutcome = 'uploaded' | 'small' | 'dropped';

/**
 * Uploads a blob while it is written: POST once a whole chunk is there, PATCH each chunk as soon as
 * it is written, then the last PATCH and the PUT `?digest=` once the digest is known. No HEAD or
 * mount first (the digest is not known; a registry stores a blob once anyway). Never reads past what
 * was written, and never holds the writer back. A failure cancels the session (best effort) and is
 * thrown without retrying: the caller pushes the finished blob again with pushBlob.
 */
export async function pushGrowingBlob(
  client: RegistryClient,
  repository: string,
  source: GrowingBlobSource,
  label: string,
  context: ErrorContext = {},
  options: OperationOptions = {},
): Promise<GrowingOutcome> {
  const chunk = client.uploadChunkSize;
  const scopes = [repositoryScope(repository, 'push')];
  const what = `uploading ${label} to ${client.registry}/${repository}`;
  // One budget per request: the upload lasts as long as the build, which no operation deadline should bound.
  const budget = (): RetryBudget => client.budget(what, context, options);
  let session: Session | undefined;
  try {
    let offset = 0;
    while ((await source.waitFor(offset + chunk)) >= offset + chunk) {
      session ??= await openUpload(client, repository, scopes, budget(), what, context);
      const start = offset;
      await patchChunk(client, session, { length: chunk, open: () => source.open(start, start + chunk) }, start, start + chunk, scopes, budget(), what, context);
      offset += chunk;
    }
    const final = await source.done;
    if (final === null || session === undefined) {
      if (session !== undefined) await cancel(client, session.location, scopes, budget(), session);
      return final === null ? 'dropped' : 'small';
    }
    const ctx = { ...context, blob: final.digest };
    if (offset < final.size) {
      const start = offset;
      await patchChunk(client, session, { length: final.size - start, open: () => source.open(start, final.size) }, start, final.size, scopes, budget(), what, ctx);
    }
    await closeUpload(client, session, final.digest, Buffer.alloc(0), scopes, budget(), what, ctx);
    return 'uploaded';
  } catch (err) {
    if (session !== undefined) await cancel(client, session.location, scopes, budget(), session);
    throw err;
  }
}
