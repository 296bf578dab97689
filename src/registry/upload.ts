/**
 * Pushing blobs: HEAD to skip what the repository has, cross-repository mount when the blob is
 * known to be elsewhere on the registry, else POST then PUT (distribution has no single-POST upload),
 * or POST, PATCH chunks, PUT for big blobs. A failed upload starts again from POST.
 */
import type { Readable } from 'node:stream';
import { FetchError, OndemandError, errorText as errText } from '../util/errors.js';
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

async function cancel(client: RegistryClient, location: URL, scopes: string[], budget: RetryBudget, result: SendResult): Promise<void> {
  try {
    const r = await client.send({ method: 'DELETE', path: location, scopes, budget, endpoint: result.endpoint, retry: false });
    await discardBody(r.res);
  } catch {
    /* an abandoned upload expires on its own */
  }
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
  const start = await client.send({ method: 'POST', path: `/v2/${repository}/blobs/uploads/`, scopes, budget });
  if (start.res.status !== 202) throw await statusError(start.res, what, { blob: digest });
  await discardBody(start.res);
  let location = locationOf(start);
  const endpoint = start.endpoint;

  if (size > client.monolithicUploadLimit) {
    for (let offset = 0; offset < size; ) {
      const end = Math.min(size, offset + client.uploadChunkSize);
      const r = await client.send({
        method: 'PATCH',
        path: location,
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end - 1}` },
        body: slice(source, offset, end),
        scopes,
        budget,
        endpoint,
        retry: false,
      });
      if (r.res.status !== 202) throw await statusError(r.res, `${what} (chunk at ${offset})`, { blob: digest, offset });
      await discardBody(r.res);
      location = locationOf(r);
      offset = end;
    }
    location.searchParams.set('digest', digest);
    const done = await client.send({ method: 'PUT', path: location, headers: { 'content-type': 'application/octet-stream' }, body: Buffer.alloc(0), scopes, budget, endpoint, retry: false });
    if (done.res.status !== 201) throw await statusError(done.res, what, { blob: digest });
    await discardBody(done.res);
    return;
  }

  location.searchParams.set('digest', digest);
  const put = await client.send({
    method: 'PUT',
    path: location,
    headers: { 'content-type': 'application/octet-stream' },
    body: slice(source, 0, size),
    scopes,
    budget,
    endpoint,
    retry: false,
  });
  if (put.res.status !== 201) throw await statusError(put.res, `${what} (PUT ${safeUrl(location)})`, { blob: digest });
  await discardBody(put.res);
}
