/*
 * The least a userspace server adds to a read on this host: one byte sent to another process and
 * back over pipes (two wake-ups, four syscalls), averaged over 200,000 round trips. A FUSE READ of
 * a page-cache-hot file costs at least this on top of what the kernel alone would spend.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void) {
  int ping[2], pong[2];
  const int rounds = 200000;
  char byte = 0;
  if (pipe(ping) != 0 || pipe(pong) != 0) return 1;
  if (fork() == 0) {
    for (int i = 0; i < rounds; i++) {
      if (read(ping[0], &byte, 1) != 1 || write(pong[1], &byte, 1) != 1) _exit(1);
    }
    _exit(0);
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < rounds; i++) {
    if (write(ping[1], &byte, 1) != 1 || read(pong[0], &byte, 1) != 1) return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / rounds;
  printf("wakeup floor: a byte to another process and back over pipes takes %.1f us\n", us);
  return 0;
}
