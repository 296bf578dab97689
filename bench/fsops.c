/*
 * The file operations bench/fanotify-read.ts measures, done in a process of their own: a process that
 * serves fanotify pre-content events has its own reads allowed unfilled (they are the cache's I/O), so
 * the benchmark never reads a mount itself, and every mode is read the same way for fairness.
 *
 *   fsops seq FILE...                     read(2) of each file, 1 MiB at a time
 *   fsops rand JOBS READS SEED FILE...    JOBS processes doing READS 4 KiB preads in all, each at a
 *                                         random page of the files (xorshift64, seeded per job)
 *   fsops stat ROOT LIST                  lstat of every path in LIST (one a line, relative to ROOT)
 *   fsops readdir ROOT LIST               every entry of every directory in LIST
 *   fsops getxattr ROOT LIST              lgetxattr of every "PATH<TAB>NAME" line of LIST
 *   fsops evict FILE...                   posix_fadvise(POSIX_FADV_DONTNEED) of each file (no reads)
 * Prints "MS OPS BYTES": the time of the operations alone (not the start-up), how many, bytes read.
 * Any failed call (EIO, a short read, a missing xattr) exits 1 with a message.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define SEQ_BUF (1 << 20)

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what, const char *path) {
  fprintf(stderr, "fsops: %s %s: %s\n", what, path, strerror(errno));
  exit(1);
}

/* The lines of LIST, NUL-terminated in place. */
static char **read_list(const char *list, long *count) {
  FILE *f = fopen(list, "r");
  if (!f) die("open", list);
  long cap = 1024, n = 0;
  char **lines = malloc(cap * sizeof *lines);
  char *line = NULL;
  size_t len = 0;
  ssize_t r;
  while ((r = getline(&line, &len, f)) > 0) {
    if (line[r - 1] == '\n') line[r - 1] = 0;
    if (n == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
    lines[n++] = strdup(line);
  }
  fclose(f);
  free(line);
  *count = n;
  return lines;
}

static void report(double t0, long ops, long long bytes) {
  printf("%.3f %ld %lld\n", now_ms() - t0, ops, bytes);
}

static int seq(int n, char **files) {
  char *buf = aligned_alloc(PAGE, SEQ_BUF);
  long long bytes = 0;
  double t0 = now_ms();
  for (int i = 0; i < n; i++) {
    int fd = open(files[i], O_RDONLY);
    if (fd < 0) die("open", files[i]);
    ssize_t r;
    while ((r = read(fd, buf, SEQ_BUF)) > 0) bytes += r;
    if (r < 0) die("read", files[i]);
    close(fd);
  }
  report(t0, n, bytes);
  return 0;
}

static int rand_reads(int jobs, long reads, uint64_t seed, int n, char **files) {
  off_t *pages = calloc(n, sizeof *pages);
  off_t total = 0;
  for (int i = 0; i < n; i++) {
    struct stat st;
    if (stat(files[i], &st) != 0) die("stat", files[i]);
    pages[i] = st.st_size / PAGE;
    total += pages[i];
  }
  if (total == 0) { fprintf(stderr, "fsops: no whole page to read\n"); return 1; }
  double t0 = now_ms();
  for (int j = 0; j < jobs; j++) {
    pid_t pid = fork();
    if (pid < 0) die("fork", "");
    if (pid > 0) continue;
    int *fds = calloc(n, sizeof *fds);
    for (int i = 0; i < n; i++) if ((fds[i] = open(files[i], O_RDONLY)) < 0) die("open", files[i]);
    char *buf = aligned_alloc(PAGE, PAGE);
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)j + 1;
    long mine = reads / jobs + (j < reads % jobs ? 1 : 0);
    for (long k = 0; k < mine; k++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      off_t p = (off_t)(x % (uint64_t)total);
      int i = 0;
      while (p >= pages[i]) p -= pages[i++];
      if (pread(fds[i], buf, PAGE, p * PAGE) != PAGE) die("pread", files[i]);
    }
    _exit(0);
  }
  int failed = 0, status;
  while (wait(&status) > 0) if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
  if (failed) return 1;
  report(t0, reads, (long long)reads * PAGE);
  return 0;
}

static int stat_all(long n, char **paths) {
  struct stat st;
  double t0 = now_ms();
  for (long i = 0; i < n; i++) if (lstat(paths[i], &st) != 0) die("lstat", paths[i]);
  report(t0, n, 0);
  return 0;
}

static int readdir_all(long n, char **dirs) {
  long entries = 0;
  double t0 = now_ms();
  for (long i = 0; i < n; i++) {
    DIR *d = opendir(dirs[i]);
    if (!d) die("opendir", dirs[i]);
    errno = 0;
    while (readdir(d)) entries++;
    if (errno != 0) die("readdir", dirs[i]);
    closedir(d);
  }
  report(t0, entries, 0);
  return 0;
}

static int getxattr_all(long n, char **lines) {
  char value[65536];
  long long bytes = 0;
  for (long i = 0; i < n; i++) {
    char *tab = strchr(lines[i], '\t');
    if (!tab) { fprintf(stderr, "fsops: no tab in '%s'\n", lines[i]); return 1; }
    *tab = 0;
  }
  double t0 = now_ms();
  for (long i = 0; i < n; i++) {
    const char *name = lines[i] + strlen(lines[i]) + 1;
    ssize_t r = lgetxattr(lines[i], name, value, sizeof value);
    if (r <= 0) die("lgetxattr", lines[i]);
    bytes += r;
  }
  report(t0, n, bytes);
  return 0;
}

static int evict(int n, char **files) {
  for (int i = 0; i < n; i++) {
    int fd = open(files[i], O_RDONLY);
    if (fd < 0) die("open", files[i]);
    int e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (e != 0) { errno = e; die("posix_fadvise", files[i]); }
    close(fd);
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *op = argc > 1 ? argv[1] : "";
  if (strcmp(op, "seq") == 0) return seq(argc - 2, argv + 2);
  if (strcmp(op, "evict") == 0) return evict(argc - 2, argv + 2);
  if (strcmp(op, "rand") == 0 && argc > 5) {
    return rand_reads(atoi(argv[2]), atol(argv[3]), strtoull(argv[4], NULL, 10), argc - 5, argv + 5);
  }
  if (argc == 4 && (strcmp(op, "stat") == 0 || strcmp(op, "readdir") == 0 || strcmp(op, "getxattr") == 0)) {
    long n;
    char **lines = read_list(argv[3], &n);
    if (chdir(argv[2]) != 0) die("chdir", argv[2]);
    if (op[0] == 's') return stat_all(n, lines);
    if (op[0] == 'r') return readdir_all(n, lines);
    return getxattr_all(n, lines);
  }
  fprintf(stderr, "usage: fsops seq FILE... | rand JOBS READS SEED FILE... | stat|readdir|getxattr ROOT LIST | evict FILE...\n");
  return 2;
}
