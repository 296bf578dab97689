/** Reading an OCI image layout directory: `oci-layout` and `index.json`, checked as they are parsed. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FormatError, NotFoundError, systemCode } from '../util/errors.js';
import { parseJsonObject } from '../format/image/manifest.js';
import { OCI_LAYOUT_FILE, OCI_LAYOUT_VERSION, parseIndexObject, type OciIndex } from '../format/image/oci-layout.js';

/** Reads and checks `oci-layout` and `index.json`. */
export async function readIndex(dir: string): Promise<OciIndex> {
  const fail = (what: string): never => {
    throw new FormatError(`bad OCI layout: ${what}`, { path: dir });
  };
  const layout = parseJsonObject(await readLayoutFile(dir, OCI_LAYOUT_FILE), fail, OCI_LAYOUT_FILE);
  if (layout.imageLayoutVersion !== OCI_LAYOUT_VERSION) fail(`imageLayoutVersion ${JSON.stringify(layout.imageLayoutVersion)} is not ${OCI_LAYOUT_VERSION}`);
  const index = parseJsonObject(await readLayoutFile(dir, 'index.json'), fail, 'index.json');
  return parseIndexObject(index, fail);
}

async function readLayoutFile(dir: string, name: string): Promise<Buffer> {
  try {
    return await readFile(join(dir, name));
  } catch (err) {
    if (systemCode(err) === 'ENOENT') throw new NotFoundError(`not an OCI image layout: ${name} missing`, { path: dir });
    throw err;
  }
}
