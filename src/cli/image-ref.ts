/**
 * What every image-reading command takes: the image reference (`<ref>` plus `--blob`), the registry
 * options every command that talks to a registry shares (`--insecure`, `--creds`, `--creds-file`,
 * `--platform`), and opening the image with them.
 */
import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { cliConfig } from './config.js';
import { setting, type ResolvedConfig } from '../config/resolve.js';
import { findCredentials, type Credentials } from '../registry/credentials.js';
import { registryOfRef, resolveImage } from '../resolve/index.js';
import type { ResolvedImage, ResolveOptions } from '../resolve/types.js';
import { UsageError, systemCode } from '../util/errors.js';

/** Adds the repeatable `--blob` option (plain bootstrap files only). */
export function blobOption<T>(y: Argv<T>) {
  return y.option('blob', { type: 'string', array: true, nargs: 1, describe: 'Blob file of a plain bootstrap (repeat, device-table order)' });
}

/** What --platform means where one platform of the image is used. */
export const PLATFORM_DEFAULT_HOST = 'os/arch[/variant] to take from a multi-platform image (default: the host)';

/** Adds the `ref` positional, `--blob` and the registry options. */
export function imageRefOptions<T>(y: Argv<T>) {
  const withRef = y.positional('ref', { type: 'string', demandOption: true, describe: 'oci:DIR[:TAG], a registry reference, or a bootstrap file' });
  return registryOptions(blobOption(withRef), PLATFORM_DEFAULT_HOST);
}

/**
 * Adds the registry options. `platform`: what --platform means for this command, or false when it has
 * none (push copies the layout's image as it is).
 */
export function registryOptions<T>(y: Argv<T>, platform: string | false) {
  const common = y
    .option('insecure', { type: 'boolean', default: false, describe: 'Allow plain HTTP to the registry (loopback registries always use it)' })
    .option('creds', { type: 'string', describe: 'USER:PASS for the registry (else $ONDEMAND_REGISTRY_USER/PASSWORD, else the Docker config); visible in the process list' })
    .option('creds-file', { type: 'string', nargs: 1, describe: 'File holding USER:PASS, or - for stdin (keeps the password out of the process list)' });
  return platform === false ? common : common.option('platform', { type: 'string', describe: platform });
}

export interface RegistryArgs {
  insecure: boolean;
  creds?: string | undefined;
  credsFile?: string | undefined;
  platform?: string | undefined;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** USER:PASS from a creds file (`--creds-file`, or the configuration's `registry.creds_file`): its first line. */
async function credsFromFile(file: string, named: string): Promise<string> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${named} ${file}: ${systemCode(err) ?? String(err)}`, { path: file }, { cause: err });
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line.indexOf(':') <= 0) throw new UsageError(`${named} ${file === '-' ? '- (stdin)' : file} must hold USER:PASS on its first line`);
  return line;
}

/** The registry options as the resolver, the registry client and a mount request take them. */
export type RegistryAccess = Pick<ResolveOptions, 'creds' | 'platform' | 'mirrors' | 'retries' | 'dockerConfig'> & { insecure: boolean };

/**
 * The command's registry flags with the configuration's registry settings. Credentials: --creds or
 * --creds-file, else $ONDEMAND_REGISTRY_USER/PASSWORD (looked up later, by findCredentials), else the
 * configuration's registry.creds_file, else the Docker config (registry.docker_config or Docker's own).
 */
export async function registryAccess(argv: RegistryArgs, config: ResolvedConfig = cliConfig()): Promise<RegistryAccess> {
  if (argv.creds !== undefined && argv.credsFile !== undefined) throw new UsageError('give --creds or --creds-file, not both');
  let creds = argv.credsFile !== undefined ? await credsFromFile(argv.credsFile, '--creds-file') : argv.creds;
  const configured = setting(config, 'registry.creds_file');
  const envCreds = process.env.ONDEMAND_REGISTRY_USER !== undefined && process.env.ONDEMAND_REGISTRY_PASSWORD !== undefined;
  if (creds === undefined && !envCreds && configured !== null) creds = await credsFromFile(configured, 'registry.creds_file');
  const dockerConfig = setting(config, 'registry.docker_config');
  return {
    insecure: argv.insecure,
    mirrors: setting(config, 'registry.mirrors'),
    retries: setting(config, 'registry.retries'),
    ...(dockerConfig !== null ? { dockerConfig } : {}),
    ...(creds !== undefined ? { creds } : {}),
    ...(argv.platform !== undefined ? { platform: argv.platform } : {}),
  };
}

/**
 * The caller's credentials for the registry `ref` is on (--creds/--creds-file, else this process's
 * environment, else its user's Docker config and credential helpers): null for anonymous, undefined
 * when `ref` is not a registry image. A daemon request carries these so that a mount uses its caller's
 * credentials, whoever started the daemon.
 */
export async function callerCredentials(ref: string, access: RegistryAccess, blobs: readonly string[] = []): Promise<Credentials | null | undefined> {
  const registry = registryOfRef(ref, blobs);
  if (registry === undefined) return undefined;
  return (await findCredentials(registry, {
    ...(access.creds !== undefined ? { creds: access.creds } : {}),
    ...(access.dockerConfig !== undefined ? { dockerConfig: access.dockerConfig } : {}),
  })) ?? null;
}

/** Resolves the image named by `argv`, hands it to `use`, and always closes its fetcher. */
export async function withImageFromArgv<R>(argv: RegistryArgs & { ref: string; blob?: string[] | undefined }, use: (resolved: ResolvedImage) => Promise<R>): Promise<R> {
  const resolved = await resolveImage(argv.ref, { ...(await registryAccess(argv)), blobs: (argv.blob ?? []).map(String) });
  try {
    return await use(resolved);
  } finally {
    await resolved.fetcher.close();
  }
}
