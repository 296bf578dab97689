/**
 * A new mount namespace with private propagation (this host's / is private) starts with its own copy
 * of every mount there is, and a copy keeps its filesystem alive after the host unmounts it: a FUSE
 * connection does not end, an erofs mount keeps its cache files open, until the namespace is gone.
 * Whatever makes such a namespace drops its copies of image mounts first.
 */

/**
 * `drop_image_mounts KEEP`: a sh function that lazily unmounts, in the calling namespace, every FUSE,
 * erofs and overlay mount except KEEP and what is under it ('' keeps none). /proc/self/mountinfo
 * names the type after the "-" field and escapes blanks in paths as \0ooo, which printf %b undoes.
 */
export const DROP_IMAGE_MOUNTS_SH = String.raw`drop_image_mounts() {
  awk '{ for (i = 7; $i != "-"; i++) {} print $(i + 1), $5 }' /proc/self/mountinfo | while read -r type target; do
    case "$type" in fuse|fuse.*|fuseblk|erofs|overlay) ;; *) continue ;; esac
    target=$(printf '%b' "$target")
    if [ -n "$1" ]; then case "$target" in "$1"|"$1"/*) continue ;; esac; fi
    umount -l "$target" 2>/dev/null || true
  done
}
`;
