/** Media types and annotation keys of the ondemand image format (docs/image-format.md). */
export const MEDIA_TYPE_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_TYPE_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const MEDIA_TYPE_DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const MEDIA_TYPE_DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';

/** A data blob: frames (each compressed on its own), then the blob's table of contents. */
export const MEDIA_TYPE_ONDEMAND_BLOB = 'application/vnd.ondemand.erofs.blob.v1';
/** The erofs bootstrap (metadata image), gzip-compressed as a whole. */
export const MEDIA_TYPE_ONDEMAND_BOOTSTRAP = 'application/vnd.ondemand.erofs.bootstrap.v1+gzip';

export const ANNOTATION = {
  /** On a blob layer: sha256 hex of the blob's uncompressed view (= erofs device tag, = cache key). */
  blobId: 'org.ondemand.blob.id',
  /** On a blob layer: size in bytes of the uncompressed view (a multiple of 4096). */
  uncompressedSize: 'org.ondemand.blob.uncompressed-size',
  /** On a blob layer: byte offset of the TOC inside the stored blob. */
  tocOffset: 'org.ondemand.toc.offset',
  /** On a blob layer: byte length of the TOC. */
  tocSize: 'org.ondemand.toc.size',
  /** On a blob layer: `sha256:<hex>` of the TOC bytes. */
  tocDigest: 'org.ondemand.toc.digest',
  /** On a blob layer: frame codec, see Compression. */
  compression: 'org.ondemand.compression',
  /** On a blob layer: uncompressed bytes per frame (the last frame may be shorter). */
  frameSize: 'org.ondemand.frame-size',
  /** On the bootstrap layer: `sha256:<hex>` of the uncompressed erofs bootstrap. */
  bootstrapDigest: 'org.ondemand.bootstrap.digest',
  /** On the bootstrap layer: size of the uncompressed bootstrap. */
  bootstrapSize: 'org.ondemand.bootstrap.size',
  /** On the manifest: erofs chunk size in bytes. */
  chunkSize: 'org.ondemand.chunk-size',
  /** On the manifest: digest of the image this one was converted from, if any. */
  sourceImage: 'org.ondemand.source.image',
  /** On the manifest: a start-up trace (format/image/trace.ts), gzip then base64. */
  prefetchTrace: 'org.ondemand.prefetch-trace',
} as const;
