/** Where the FUSE reader thread's module is (compiled code; see util/thread-url.ts). */
import { compiledThreadUrl } from '../util/thread-url.js';

export function readerThreadUrl(): URL {
  return compiledThreadUrl(import.meta.url, 'reader-thread.js', 'EFUSE');
}
