/* Small utilities and the wire format (see supervisor.c). */
#include "supervisor.h"
/* ------------------------------------------------------------------ small utilities */

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("supervisor: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Close every descriptor from `lowest` on but `keep` (-1: none), in at most two calls: a
 * loop over the possible descriptors is a thousand system calls. */
void close_from(int lowest, int keep) {
    if (keep >= lowest) {
        if (keep > lowest) close_range((unsigned)lowest, (unsigned)keep - 1, 0);
        lowest = keep + 1;
    }
    close_range((unsigned)lowest, ~0U, 0);
}

/* Open `name`, a relative path checked already (supervisor.c), under the directory `dir`,
 * never following a symlink: each directory on the way is opened from the one before with
 * O_PATH | O_DIRECTORY | O_NOFOLLOW (search permission is all it takes) and, with `make`,
 * created first where missing (0755, owned by the caller's fsuid). The last part is opened
 * with flags and mode. -1 with errno. */
int open_beneath(const char *dir, const char *name, int flags, mode_t mode, int make) {
    int fd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    const char *part = name;
    for (const char *slash; fd >= 0 && (slash = strchr(part, '/')); part = slash + 1) {
        char sub[MAX_PART + 1];
        snprintf(sub, sizeof sub, "%.*s", (int)(slash - part), part);
        if (make && mkdirat(fd, sub, 0755) == 0) fchmodat(fd, sub, 0755, 0); /* whatever umask */
        int next = openat(fd, sub, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = next;
    }
    if (fd < 0) return -1;
    int leaf = openat(fd, part, flags | O_NOFOLLOW | O_CLOEXEC, mode);
    int saved = errno;
    close(fd);
    errno = saved;
    return leaf;
}

int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void ring_add(buf_t *b, const char *src, size_t n) {
    if (!b->ring && !(b->ring = malloc(b->ring_size))) die("out of memory");
    if (n > b->ring_size) {
        src += n - b->ring_size;
        b->over += n - b->ring_size;
        n = b->ring_size;
    }
    size_t at = b->over % b->ring_size, first = n < b->ring_size - at ? n : b->ring_size - at;
    memcpy(b->ring + at, src, first);
    memcpy(b->ring, src + first, n - first);
    b->over += n;
}

/* The last bytes past the cap, in order, into out (ring_size bytes): how many. */
size_t buf_tail(const buf_t *b, char *out) {
    size_t kept = b->over < b->ring_size ? b->over : b->ring_size;
    if (!kept) return 0;
    size_t start = (b->over - kept) % b->ring_size;
    size_t first = kept < b->ring_size - start ? kept : b->ring_size - start;
    memcpy(out, b->ring + start, first);
    memcpy(out + first, b->ring, kept - first);
    return kept;
}

void buf_add(buf_t *b, const char *src, size_t n) {
    b->total += n;
    size_t room = b->len >= b->limit ? 0 : b->limit - b->len;
    if (n > room && b->ring_size) ring_add(b, src + room, n - room);
    if (!room) return;
    if (n > room) n = room;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) die("out of memory");
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

void buf_free(buf_t *b) {
    free(b->data);
    free(b->ring);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------ wire format */

static char inbuf[65536];
static size_t in_pos, in_len;

static int in_fill(void) {
    ssize_t n;
    do n = read(0, inbuf, sizeof inbuf); while (n < 0 && errno == EINTR);
    if (n <= 0) return -1;
    in_pos = 0;
    in_len = (size_t)n;
    return 0;
}

int in_byte(void) {
    if (in_pos == in_len && in_fill() < 0) return -1;
    return (unsigned char)inbuf[in_pos++];
}

/* Read a record header; returns 0, or -1 on EOF (the worker hung up: exit quietly). */
int read_header(char *name, size_t name_size, size_t *len) {
    size_t i = 0;
    char line[96];
    for (;;) {
        if (in_pos == in_len && in_fill() < 0) return -1;
        char c = inbuf[in_pos++];
        if (c == '\n') break;
        if (i + 1 >= sizeof line) die("record header too long");
        line[i++] = c;
    }
    line[i] = 0;
    char *sp = strchr(line, ' ');
    if (!sp) die("bad record header '%s'", line);
    *sp = 0;
    if ((size_t)(sp - line) >= name_size) die("record name too long");
    strcpy(name, line);
    char *end;
    unsigned long long v = strtoull(sp + 1, &end, 10);
    if (*end || end == sp + 1) die("bad record length in '%s'", line);
    *len = (size_t)v;
    return 0;
}

/* Copy a record body to fd (or discard it when fd < 0), without holding it in memory. */
int body_to_fd(size_t len, int fd) {
    int failed = 0;
    while (len > 0) {
        if (in_pos == in_len && in_fill() < 0) die("eof inside a record");
        size_t n = in_len - in_pos;
        if (n > len) n = len;
        if (fd >= 0 && !failed && write_all(fd, inbuf + in_pos, n) < 0) failed = errno;
        in_pos += n;
        len -= n;
    }
    return failed;
}

char *body_to_str(size_t len) {
    char *s = malloc(len + 1);
    if (!s) die("out of memory");
    size_t got = 0;
    while (got < len) {
        if (in_pos == in_len && in_fill() < 0) die("eof inside a record");
        size_t n = in_len - in_pos;
        if (n > len - got) n = len - got;
        memcpy(s + got, inbuf + in_pos, n);
        in_pos += n;
        got += n;
    }
    s[len] = 0;
    return s;
}

static buf_t out = {.limit = (size_t)-1}; /* replies are never capped */
#define KEPT_ANSWER (256 * 1024)

void put(const char *name, const char *data, size_t len) {
    char head[96];
    int n = snprintf(head, sizeof head, "%s %zu\n", name, len);
    buf_add(&out, head, (size_t)n);
    buf_add(&out, data, len);
}

void put_str(const char *name, const char *s) { put(name, s, strlen(s)); }

void put_num(const char *name, long long v) {
    char s[32];
    snprintf(s, sizeof s, "%lld", v);
    put_str(name, s);
}

void flush_message(void) {
    put("end", "", 0);
    if (write_all(1, out.data, out.len) < 0) exit(0); /* worker gone */
    /* a big answer (collected files, long output) is not kept: a job forked from here starts
     * with our resident pages, and exec keeps that high-water mark in its ru_maxrss */
    if (out.cap > KEPT_ANSWER) {
        free(out.data);
        out.data = NULL;
        out.cap = 0;
    }
    out.len = 0;
    out.total = 0;
}
