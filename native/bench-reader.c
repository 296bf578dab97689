/*
 * A reading process of `ondemand bench` for its seq and rand workloads (src/bench/ops.ts starts it; the
 * others run in Node, src/bench/ops-main.ts). Written in C so a read costs what the kernel makes it
 * cost: a hot 4 KiB pread takes about a microsecond, and a reader in Node adds a good part of that per
 * call (more under emulation), which would measure the reader, not the mount.
 *
 *   bench-reader seq BLOCK PASSES LATENCIES FILE...    read(2) of each file, BLOCK bytes at a time, all
 *                                                      of them PASSES times
 *   bench-reader rand READS SEED LATENCIES FILE...     READS 4 KiB preads at random pages of the files
 *                                                      (each page equally likely; xorshift32 seeded by SEED)
 * Opens what it needs (rand: the files; seq opens each as it reads it, so nothing is looked up before a
 * cold run), prints "ready", waits for "go" on stdin, does the reads, writes each read's latency (ns, as
 * float64) to the file LATENCIES and prints one JSON line: {"startNs":..,"endNs":..,"ops":..,"bytes":..}
 * (CLOCK_MONOTONIC, the clock of Node's process.hrtime). A failed call exits 1 with one line on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void fail(const char *what, const char *path) {
  fprintf(stderr, "%s %s: %s\n", what, path, strerror(errno));
  exit(1);
}

static double *latencies;
static size_t latency_count, latency_cap;

static void add_latency(uint64_t ns) {
  if (latency_count == latency_cap) {
    latency_cap = latency_cap ? latency_cap * 2 : 1 << 16;
    latencies = realloc(latencies, latency_cap * sizeof *latencies);
    if (!latencies) fail("realloc", "latencies");
  }
  latencies[latency_count++] = (double)ns;
}

static void wait_for_go(void) {
  char line[16];
  printf("ready\n");
  fflush(stdout);
  if (!fgets(line, sizeof line, stdin) || strcmp(line, "go\n") != 0) {
    errno = EPROTO;
    fail("waiting for", "go");
  }
}

static void finish(const char *latency_file, uint64_t start, uint64_t end, uint64_t ops, uint64_t bytes) {
  FILE *f = fopen(latency_file, "w");
  if (!f) fail("open", latency_file);
  if (latency_count && fwrite(latencies, sizeof *latencies, latency_count, f) != latency_count) fail("write", latency_file);
  if (fclose(f) != 0) fail("close", latency_file);
  printf("{\"startNs\":%llu,\"endNs\":%llu,\"ops\":%llu,\"bytes\":%llu}\n", (unsigned long long)start, (unsigned long long)end,
         (unsigned long long)ops, (unsigned long long)bytes);
}

static int seq(size_t block, long passes, const char *latency_file, char **files, int n) {
  char *buf = malloc(block);
  if (!buf) fail("malloc", "buffer");
  memset(buf, 1, block); /* touched now: no page of it faults in while the clock runs */
  wait_for_go();
  uint64_t ops = 0, bytes = 0, start = now_ns();
  for (long pass = 0; pass < passes; pass++) {
    for (int i = 0; i < n; i++) {
      int fd = open(files[i], O_RDONLY | O_CLOEXEC);
      if (fd < 0) fail("open", files[i]);
      for (;;) {
        uint64_t t0 = now_ns();
        ssize_t got = read(fd, buf, block);
        add_latency(now_ns() - t0);
        ops++;
        if (got < 0) fail("read", files[i]);
        if (got == 0) break;
        bytes += (uint64_t)got;
      }
      close(fd);
    }
  }
  finish(latency_file, start, now_ns(), ops, bytes);
  return 0;
}

static int rand_reads(long reads, long seed, const char *latency_file, char **files, int n) {
  int *fds = calloc(n, sizeof *fds);
  uint64_t *pages = calloc(n, sizeof *pages);
  if (!fds || !pages) fail("calloc", "files");
  uint64_t total = 0;
  for (int i = 0; i < n; i++) {
    struct stat st;
    fds[i] = open(files[i], O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0 || fstat(fds[i], &st) != 0) fail("open", files[i]);
    pages[i] = (uint64_t)st.st_size / PAGE;
    total += pages[i];
  }
  if (total == 0) {
    errno = EINVAL;
    fail("no whole 4 KiB page in", files[0]);
  }
  char *buf = aligned_alloc(PAGE, PAGE);
  if (!buf) fail("malloc", "buffer");
  memset(buf, 1, PAGE);
  latency_cap = reads > 0 ? (size_t)reads : 1;
  latencies = malloc(latency_cap * sizeof *latencies);
  if (!latencies) fail("malloc", "latencies");
  uint32_t x = (uint32_t)((uint64_t)seed * 2654435761u);
  if (x == 0) x = 1;
  wait_for_go();
  uint64_t start = now_ns();
  for (long k = 0; k < reads; k++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    uint64_t p = ((uint64_t)x * total) >> 32;
    int i = 0;
    while (p >= pages[i]) p -= pages[i++];
    uint64_t t0 = now_ns();
    ssize_t got = pread(fds[i], buf, PAGE, (off_t)(p * PAGE));
    add_latency(now_ns() - t0);
    if (got < 0) fail("pread", files[i]);
    if (got != PAGE) {
      fprintf(stderr, "short read of %s at %llu: %zd bytes\n", files[i], (unsigned long long)(p * PAGE), got);
      exit(1);
    }
  }
  uint64_t end = now_ns();
  for (int i = 0; i < n; i++) close(fds[i]);
  finish(latency_file, start, end, (uint64_t)reads, (uint64_t)reads * PAGE);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 6 && strcmp(argv[1], "seq") == 0) return seq((size_t)atol(argv[2]), atol(argv[3]), argv[4], argv + 5, argc - 5);
  if (argc >= 6 && strcmp(argv[1], "rand") == 0) return rand_reads(atol(argv[2]), atol(argv[3]), argv[4], argv + 5, argc - 5);
  fprintf(stderr, "usage: bench-reader seq BLOCK PASSES LATENCIES FILE... | rand READS SEED LATENCIES FILE...\n");
  return 2;
}
