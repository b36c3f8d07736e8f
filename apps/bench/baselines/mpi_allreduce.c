/* MPI baseline for `luoshu bench allreduce`.
 *
 *   mpicc -O2 -o /tmp/mpi_allreduce apps/bench/baselines/mpi_allreduce.c
 *   mpirun -np 2 /tmp/mpi_allreduce [--sizes 1048576,16777216,134217728]
 *       [--warmup 3] [--iters N] [--label mpi-tcp] [--ring mpi|raw-tcp]
 *       [--ring-chunk 262144]
 *
 * f32 SUM all-reduce in place: MPI_Allreduce(MPI_IN_PLACE, buf, count,
 * MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD). The transport is whatever mpirun was
 * told (e.g. --mca btl tcp,self for TCP, the default picks shared memory on
 * one machine); --label names it in the output ("mpi-tcp", "mpi-shm"...).
 * With --ring raw-tcp the all-reduce is this program's own ring on raw
 * loopback sockets instead (see ring_open below): a pipelined ring with no
 * framework and no copy beyond the kernel's and the sum's, MPI only
 * starting and timing the ranks.
 *
 * Methodology (the same as Luoshu's own measurement and gloo_allreduce.py):
 * per size, one correctness check (each rank fills its buffer with rank+1,
 * after one all-reduce every element must be n(n+1)/2, on every rank), a
 * refill with rank+1, --warmup untimed iterations, then --iters timed ones,
 * each preceded by MPI_Barrier; an iteration's time is the MAX over ranks of
 * that rank's CLOCK_MONOTONIC elapsed time around the all-reduce call
 * (the max is taken afterwards, outside the timing). Reported: median (mean of
 * the two middle values when --iters is even), min and mean iteration time,
 * and busbw = 2(n-1)/n * bytes / median in GB/s (1e9 bytes/s).
 * Defaults: --warmup 3; --iters 10 for sizes >= 64 MiB, 20 from 4 MiB, 100
 * below (short iterations vary the most).
 * Note that the values grow by a factor n per timed/warm-up iteration (they
 * are not refilled in between); with large --iters they reach inf, which
 * costs nothing extra on x86.
 *
 * Output: one JSON line per size on stdout, from rank 0 only:
 *   {"impl": "mpi-tcp", "ranks": 2, "bytes": 1048576, "median_s": ..,
 *    "min_s": .., "mean_s": .., "busbw_gbps": .., "correct": true, "iters": 20}
 * Exit status: 0 ok (also --help); 1 allocation or (raw ring) socket
 * failure, named on stderr (MPI_Abort); 2 bad
 * arguments (message on stderr from rank 0). A failed correctness check is
 * reported ("correct": false), not an error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>

#define MAX_SIZES 64
#define LARGE_BYTES (64ull << 20) /* sizes from here on default to 10 iters */
#define SMALL_BYTES (4ull << 20)  /* sizes below default to 100 iters */

typedef struct {
  unsigned long long sizes[MAX_SIZES];
  int nsizes;
  int warmup;
  int iters; /* 0 = default per size */
  const char* label;
  int raw_ring; /* --ring raw-tcp: our ring on raw loopback sockets, not MPI_Allreduce */
  unsigned long long ring_chunk; /* --ring-chunk: bytes per pipelined chunk of the raw ring */
} options;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

/* Parses a non-negative decimal integer that must fill the whole string. */
static int parse_ull(const char* s, unsigned long long* out) {
  if (!s || !*s || *s == '-' || *s == '+') return 0;
  errno = 0;
  char* end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end) return 0;
  *out = v;
  return 1;
}

static int parse_sizes(const char* s, options* o, char* err, size_t errlen) {
  o->nsizes = 0;
  if (!s || !*s) {
    snprintf(err, errlen, "--sizes needs a comma-separated list of byte counts");
    return 0;
  }
  char* copy = strdup(s);
  char* save = NULL;
  int ok = 1;
  for (char* tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    unsigned long long v;
    if (!parse_ull(tok, &v) || v == 0 || v % sizeof(float) != 0) {
      snprintf(err, errlen, "--sizes: '%s' is not a positive multiple of %zu bytes", tok,
               sizeof(float));
      ok = 0;
      break;
    }
    if (v / sizeof(float) > (unsigned long long)INT_MAX) {
      snprintf(err, errlen, "--sizes: %llu bytes is more than MPI's int count allows", v);
      ok = 0;
      break;
    }
    if (o->nsizes == MAX_SIZES) {
      snprintf(err, errlen, "--sizes: at most %d sizes", MAX_SIZES);
      ok = 0;
      break;
    }
    o->sizes[o->nsizes++] = v;
  }
  if (ok && o->nsizes == 0) {
    snprintf(err, errlen, "--sizes needs a comma-separated list of byte counts");
    ok = 0;
  }
  free(copy);
  return ok;
}

/* Returns 1 on success; on failure writes a message to err. */
static int parse_args(int argc, char** argv, options* o, char* err, size_t errlen) {
  o->nsizes = 3;
  o->sizes[0] = 1ull << 20;
  o->sizes[1] = 16ull << 20;
  o->sizes[2] = 128ull << 20;
  o->warmup = 3;
  o->iters = 0;
  o->label = "mpi";
  o->raw_ring = 0;
  o->ring_chunk = 256ull << 10;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      snprintf(err, errlen, "help");
      return 0;
    }
    if (strcmp(a, "--sizes") && strcmp(a, "--warmup") && strcmp(a, "--iters") &&
        strcmp(a, "--label") && strcmp(a, "--ring") && strcmp(a, "--ring-chunk")) {
      snprintf(err, errlen, "unknown argument '%s'", a);
      return 0;
    }
    if (i + 1 >= argc) {
      snprintf(err, errlen, "%s needs a value", a);
      return 0;
    }
    const char* v = argv[++i];
    if (!strcmp(a, "--sizes")) {
      if (!parse_sizes(v, o, err, errlen)) return 0;
    } else if (!strcmp(a, "--ring")) {
      if (strcmp(v, "raw-tcp") && strcmp(v, "mpi")) {
        snprintf(err, errlen, "--ring: '%s' is neither mpi nor raw-tcp", v);
        return 0;
      }
      o->raw_ring = !strcmp(v, "raw-tcp");
    } else if (!strcmp(a, "--ring-chunk")) {
      if (!parse_ull(v, &o->ring_chunk) || o->ring_chunk < sizeof(float) || o->ring_chunk > (1ull << 30)) {
        snprintf(err, errlen, "--ring-chunk: '%s' is not a byte count in [4, 2^30]", v);
        return 0;
      }
    } else if (!strcmp(a, "--label")) {
      if (!*v || strpbrk(v, "\"\\") || strlen(v) > 64) {
        snprintf(err, errlen, "--label: 1 to 64 characters, no quotes or backslashes");
        return 0;
      }
      o->label = v;
    } else {
      unsigned long long n;
      int is_iters = !strcmp(a, "--iters");
      if (!parse_ull(v, &n) || n > 1000000 || (is_iters && n < 1)) {
        snprintf(err, errlen, "%s: '%s' is not an integer in [%d, 1000000]", a, v, is_iters);
        return 0;
      }
      if (is_iters)
        o->iters = (int)n;
      else
        o->warmup = (int)n;
    }
  }
  return 1;
}

/* --- --ring raw-tcp: a ring all-reduce on raw loopback TCP sockets -------------
 * A reference for Luoshu's ring (which moves its bytes through CAF's
 * buffers and multiplexer): the same pipelined ring with nothing between it
 * and the sockets. Each rank has one connection to its right neighbour and
 * one from its left, both non-blocking, and sends and receives chunks in one
 * loop, waiting in poll() when neither can move; a chunk goes on to the next
 * step as soon as it has arrived (and been summed). The reduce-scatter
 * receives into a scratch chunk and adds each piece into place as it
 * arrives; the all-gather receives straight into place. No copy beyond the
 * kernel's and the sum's. MPI only starts the ranks, exchanges the ports,
 * and times (barriers). */

typedef struct {
  int left, right; /* fds: from rank-1, to rank+1 */
  float* scratch;
  size_t scratch_count;
} raw_ring;

static void ring_die(int rank, const char* what) {
  fprintf(stderr, "mpi_allreduce --ring raw-tcp: rank %d: %s: %s\n", rank, what, strerror(errno));
  MPI_Abort(MPI_COMM_WORLD, 1);
}

static void ring_open(raw_ring* g, int rank, int n) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  socklen_t len = sizeof a;
  if (ls < 0 || bind(ls, (struct sockaddr*)&a, sizeof a) != 0 || listen(ls, 4) != 0 ||
      getsockname(ls, (struct sockaddr*)&a, &len) != 0)
    ring_die(rank, "listen");
  int port = ntohs(a.sin_port);
  int* ports = malloc((size_t)n * sizeof(int));
  if (!ports) ring_die(rank, "malloc");
  MPI_Allgather(&port, 1, MPI_INT, ports, 1, MPI_INT, MPI_COMM_WORLD);
  a.sin_port = htons((uint16_t)ports[(rank + 1) % n]);
  free(ports);
  /* Loopback connects complete in the listener's backlog: connect, then accept. */
  g->right = socket(AF_INET, SOCK_STREAM, 0);
  if (g->right < 0 || connect(g->right, (struct sockaddr*)&a, sizeof a) != 0) ring_die(rank, "connect");
  g->left = accept(ls, NULL, NULL);
  if (g->left < 0) ring_die(rank, "accept");
  close(ls);
  int one = 1;
  int fds[2] = {g->left, g->right};
  for (int k = 0; k < 2; ++k) {
    setsockopt(fds[k], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fds[k], F_SETFL, fcntl(fds[k], F_GETFL, 0) | O_NONBLOCK);
  }
  g->scratch = NULL;
  g->scratch_count = 0;
}

static void ring_close(raw_ring* g) {
  close(g->left);
  close(g->right);
  free(g->scratch);
}

/* One chunk of a step: step st's segment (which depends on the rank and on
 * whether st is a reduce-scatter or an all-gather step), chunk j of it.
 * Units run in order, u = st * k + j; unit u's send reads what unit u - k
 * received (the same segment and chunk, one step earlier), so the ring
 * pipelines across steps chunk by chunk. */
typedef struct {
  size_t count, chunk, k; /* elements, elements per chunk, chunks per segment */
  int n, rank;
} ring_plan;

static size_t seg_begin(const ring_plan* p, int seg) { return (size_t)seg * p->count / (size_t)p->n; }

/* Elements [*b, *e) of chunk j of segment seg (empty past its end). */
static void chunk_range(const ring_plan* p, int seg, size_t j, size_t* b, size_t* e) {
  const size_t sb = seg_begin(p, seg), se = seg_begin(p, seg + 1);
  *b = sb + j * p->chunk;
  *e = *b + p->chunk;
  if (*b > se) *b = se;
  if (*e > se) *e = se;
}

static int mod(int a, int n) { return ((a % n) + n) % n; }
static int send_seg(const ring_plan* p, size_t st) {
  const int s = (int)st;
  return s < p->n - 1 ? mod(p->rank - s, p->n) : mod(p->rank + 1 - (s - (p->n - 1)), p->n);
}
static int recv_seg(const ring_plan* p, size_t st) {
  const int s = (int)st;
  return s < p->n - 1 ? mod(p->rank - s - 1, p->n) : mod(p->rank - (s - (p->n - 1)), p->n);
}

/* buf[count] summed over the ring, in place. */
static void ring_allreduce(raw_ring* g, size_t chunk_bytes, int rank, int n, float* buf, size_t count) {
  if (n == 1 || count == 0) return;
  ring_plan p;
  p.count = count;
  p.n = n;
  p.rank = rank;
  p.chunk = chunk_bytes / sizeof(float);
  if (p.chunk == 0) p.chunk = 1;
  const size_t largest = count / (size_t)n + 1;
  p.k = (largest + p.chunk - 1) / p.chunk;
  if (g->scratch_count < p.chunk) {
    free(g->scratch);
    g->scratch = malloc(p.chunk * sizeof(float));
    if (!g->scratch) ring_die(rank, "malloc");
    g->scratch_count = p.chunk;
  }
  const size_t rs_units = (size_t)(n - 1) * p.k, total = 2 * rs_units;
  size_t su = 0, sent = 0;          /* the unit being sent, its bytes sent */
  size_t ru = 0, got = 0, summed = 0; /* the unit being received, its bytes received, floats summed */
  while (su < total || ru < total) {
    int moved = 0;
    const int may_send = su < total && (su < p.k || su - p.k < ru);
    if (may_send) {
      size_t b, e;
      chunk_range(&p, send_seg(&p, su / p.k), su % p.k, &b, &e);
      const size_t bytes = (e - b) * sizeof(float);
      if (sent < bytes) {
        ssize_t w = send(g->right, (const char*)(buf + b) + sent, bytes - sent, MSG_NOSIGNAL);
        if (w > 0) sent += (size_t)w, moved = 1;
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ring_die(rank, "send");
      }
      if (sent == bytes) ++su, sent = 0, moved = 1;
    }
    if (ru < total) {
      size_t b, e;
      chunk_range(&p, recv_seg(&p, ru / p.k), ru % p.k, &b, &e);
      const size_t bytes = (e - b) * sizeof(float);
      const int reduce = ru < rs_units;
      char* dst = reduce ? (char*)g->scratch : (char*)(buf + b);
      if (got < bytes) {
        ssize_t r = recv(g->left, dst + got, bytes - got, 0);
        if (r > 0) {
          got += (size_t)r, moved = 1;
          if (reduce) {
            const size_t whole = got / sizeof(float);
            float* into = buf + b;
            for (; summed < whole; ++summed) into[summed] += g->scratch[summed];
          }
        } else if (r == 0) {
          errno = ECONNRESET;
          ring_die(rank, "the left neighbour closed its connection");
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          ring_die(rank, "recv");
        }
      }
      if (got == bytes) ++ru, got = 0, summed = 0, moved = 1;
    }
    if (!moved) {
      struct pollfd pf[2] = {{g->right, may_send ? POLLOUT : 0, 0}, {g->left, ru < total ? POLLIN : 0, 0}};
      if (poll(pf, 2, -1) < 0 && errno != EINTR) ring_die(rank, "poll");
      for (int i = 0; i < 2; ++i)
        if (pf[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
          errno = ECONNRESET;
          ring_die(rank, i == 0 ? "the connection to the right neighbour failed"
                                : "the connection from the left neighbour failed");
        }
    }
  }
}

static void fill(float* buf, size_t count, float v) {
  for (size_t i = 0; i < count; ++i) buf[i] = v;
}

/* One f32 sum all-reduce of buf in place, by MPI or by the raw ring. */
static void allreduce(const options* o, raw_ring* g, int rank, int n, float* buf, size_t count) {
  if (o->raw_ring) ring_allreduce(g, (size_t)o->ring_chunk, rank, n, buf, count);
  else MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, n = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);

  options o;
  char err[256] = "";
  if (!parse_args(argc, argv, &o, err, sizeof err)) {
    /* Every rank sees the same arguments, so every rank lands here. */
    if (rank == 0) {
      if (strcmp(err, "help")) fprintf(stderr, "mpi_allreduce: %s\n", err);
      fprintf(stderr,
              "usage: mpirun -np N mpi_allreduce [--sizes B1,B2,..] [--warmup N] [--iters N] "
              "[--label NAME] [--ring mpi|raw-tcp] [--ring-chunk BYTES]\n"
              "  sizes in bytes, multiples of 4 (default 1048576,16777216,134217728);\n"
              "  warmup default 3; iters default 10 for sizes >= 64 MiB, 20 from 4 MiB, 100 below;\n"
              "  label names the run in the output (default \"mpi\");\n"
              "  ring raw-tcp: all-reduce on this program's own ring of loopback TCP sockets\n"
              "  (MPI only starts the ranks and times them), not MPI_Allreduce;\n"
              "  ring-chunk: its pipelining chunk (default 262144).\n");
    }
    MPI_Finalize();
    return strcmp(err, "help") ? 2 : 0;
  }

  raw_ring ring;
  if (o.raw_ring) ring_open(&ring, rank, n);
  const float expected = (float)n * (float)(n + 1) / 2.0f;
  for (int s = 0; s < o.nsizes; ++s) {
    const unsigned long long bytes = o.sizes[s];
    const size_t count = (size_t)(bytes / sizeof(float));
    const int iters = o.iters > 0 ? o.iters : (bytes >= LARGE_BYTES ? 10 : bytes >= SMALL_BYTES ? 20 : 100);

    float* buf = NULL;
    double* times = malloc((size_t)iters * sizeof(double));
    if (posix_memalign((void**)&buf, 64, count * sizeof(float)) != 0 || !times) {
      fprintf(stderr, "mpi_allreduce: rank %d: cannot allocate %llu bytes\n", rank, bytes);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }

    /* Correctness, once per size; "correct" only if every rank agrees. */
    fill(buf, count, (float)(rank + 1));
    allreduce(&o, &ring, rank, n, buf, count);
    int ok = 1;
    for (size_t i = 0; i < count; ++i)
      if (buf[i] != expected) {
        ok = 0;
        break;
      }
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);

    fill(buf, count, (float)(rank + 1));
    for (int i = 0; i < o.warmup; ++i) allreduce(&o, &ring, rank, n, buf, count);
    for (int i = 0; i < iters; ++i) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = now_s();
      allreduce(&o, &ring, rank, n, buf, count);
      double dt = now_s() - t0;
      MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      times[i] = dt;
    }

    if (rank == 0) {
      double sum = 0;
      for (int i = 0; i < iters; ++i) sum += times[i];
      qsort(times, (size_t)iters, sizeof(double), cmp_double);
      double median = iters % 2 ? times[iters / 2] : 0.5 * (times[iters / 2 - 1] + times[iters / 2]);
      double busbw = n > 1 && median > 0 ? 2.0 * (n - 1) / n * (double)bytes / median / 1e9 : 0.0;
      printf("{\"impl\": \"%s\", \"ranks\": %d, \"bytes\": %llu, \"median_s\": %.9g, "
             "\"min_s\": %.9g, \"mean_s\": %.9g, \"busbw_gbps\": %.4f, \"correct\": %s, "
             "\"iters\": %d}\n",
             o.label, n, bytes, median, times[0], sum / iters, busbw, ok ? "true" : "false", iters);
      fflush(stdout);
    }
    free(times);
    free(buf);
  }
  if (o.raw_ring) ring_close(&ring);
  MPI_Finalize();
  return 0;
}
