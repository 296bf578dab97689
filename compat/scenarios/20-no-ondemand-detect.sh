# kernel: no-ondemand
# mode: detect
# timeout: 120
# proves: on a kernel without CACHEFILES_ONDEMAND/EROFS_FS_ONDEMAND detection says unsupported with the
#   reason, and binding the transport fails with a clear UnsupportedError (the caller falls back to FUSE).
"$NODE" "$DIST/compat/guest/detect.js" > out/detect.json || fail "detect crashed"
cat out/detect.json
grep -q '"supported":false' out/detect.json || fail "detection claims support"
grep -q 'EROFS_FS_ONDEMAND' out/detect.json || fail "reason does not name the missing option"
mk_cache_dir /tmp/cache
if $SERVE --cache-dir /tmp/cache --ready /tmp/ready 2> /tmp/serve.err; then fail "transport bound on a kernel without on-demand"; fi
cat /tmp/serve.err
grep -q 'CACHEFILES_ONDEMAND' /tmp/serve.err || fail "bind failure does not say why"
note PASS
