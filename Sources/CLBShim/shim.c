#include "CLBShim.h"
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

int lb_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int lb_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int lb_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout) {
    return epoll_wait(epfd, events, maxevents, timeout);
}

uint64_t lb_epoll_event_data(const struct epoll_event *ev) { return ev->data.u64; }
uint32_t lb_epoll_event_events(const struct epoll_event *ev) { return ev->events; }

int lb_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int lb_accept4(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int lb_set_pdeathsig(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }

#include <fcntl.h>
#include <unistd.h>

int lb_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int lb_spawn(const char *path, char *const argv[], char *const envp[], const char *dir, int outfd) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* Child: only async-signal-safe calls until execve. */
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    signal(SIGPIPE, SIG_DFL);
    /* Own process group: a terminal's Ctrl-C reaches lb, which stops the services in order. */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
    if (getppid() != parent) _exit(127); /* lb died before prctl took effect */
    if (dir && dir[0] && chdir(dir) != 0) _exit(126);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) { dup2(devnull, 0); if (devnull > 2) close(devnull); }
    if (outfd >= 0) { dup2(outfd, 1); dup2(outfd, 2); }
    execve(path, argv, envp);
    _exit(127);
}

/* ---------------- PCRE2 ---------------- */
#define LB_PCRE2_CASELESS 0x00000008u
#define LB_PCRE2_UTF 0x00080000u
#define LB_PCRE2_INFO_CAPTURECOUNT 4
#define LB_PCRE2_INFO_NAMECOUNT 17
#define LB_PCRE2_INFO_NAMEENTRYSIZE 18
#define LB_PCRE2_INFO_NAMETABLE 19

typedef void *(*compile_fn)(const unsigned char *, size_t, uint32_t, int *, size_t *, void *);
typedef void *(*md_create_fn)(void *, void *);
typedef int (*match_fn)(const void *, const unsigned char *, size_t, size_t, uint32_t, void *, void *);
typedef size_t *(*ovector_fn)(void *);
typedef uint32_t (*ovcount_fn)(void *);
typedef int (*errmsg_fn)(int, unsigned char *, size_t);
typedef void (*free_fn)(void *);
typedef int (*info_fn)(const void *, uint32_t, void *);

static struct {
    int loaded;
    compile_fn compile;
    md_create_fn md_create;
    match_fn match;
    ovector_fn ovector;
    ovcount_fn ovcount;
    errmsg_fn errmsg;
    free_fn code_free;
    free_fn md_free;
    info_fn info;
} pcre;

static pthread_once_t pcre_once = PTHREAD_ONCE_INIT;

static void pcre_load(void) {
    const char *names[] = {"libpcre2-8.so.0", "libpcre2-8.so", NULL};
    void *h = NULL;
    for (int i = 0; names[i] && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    pcre.compile = (compile_fn)dlsym(h, "pcre2_compile_8");
    pcre.md_create = (md_create_fn)dlsym(h, "pcre2_match_data_create_from_pattern_8");
    pcre.match = (match_fn)dlsym(h, "pcre2_match_8");
    pcre.ovector = (ovector_fn)dlsym(h, "pcre2_get_ovector_pointer_8");
    pcre.ovcount = (ovcount_fn)dlsym(h, "pcre2_get_ovector_count_8");
    pcre.errmsg = (errmsg_fn)dlsym(h, "pcre2_get_error_message_8");
    pcre.code_free = (free_fn)dlsym(h, "pcre2_code_free_8");
    pcre.md_free = (free_fn)dlsym(h, "pcre2_match_data_free_8");
    pcre.info = (info_fn)dlsym(h, "pcre2_pattern_info_8");
    pcre.loaded = pcre.compile && pcre.md_create && pcre.match && pcre.ovector && pcre.ovcount &&
                  pcre.errmsg && pcre.code_free && pcre.md_free && pcre.info;
}

int lb_pcre_available(void) {
    pthread_once(&pcre_once, pcre_load);
    return pcre.loaded;
}

struct lb_regex {
    void *code;
};

/* Match data is per thread: a compiled pattern is shared by every event loop. */
static __thread void *tls_md = NULL;
static __thread uint32_t tls_md_pairs = 0;

lb_regex *lb_regex_compile(const char *pattern, size_t length, int caseless, char *err, size_t errlen, size_t *erroffset) {
    if (!lb_pcre_available()) {
        snprintf(err, errlen, "PCRE2 library (libpcre2-8.so.0) is not available");
        *erroffset = 0;
        return NULL;
    }
    int code = 0;
    size_t off = 0;
    uint32_t opts = caseless ? LB_PCRE2_CASELESS : 0;
    void *re = pcre.compile((const unsigned char *)pattern, length, opts, &code, &off, NULL);
    if (!re) {
        unsigned char buf[256];
        if (pcre.errmsg(code, buf, sizeof buf) < 0) snprintf((char *)buf, sizeof buf, "error %d", code);
        snprintf(err, errlen, "%s", buf);
        *erroffset = off;
        return NULL;
    }
    lb_regex *r = malloc(sizeof *r);
    if (!r) { pcre.code_free(re); snprintf(err, errlen, "out of memory"); return NULL; }
    r->code = re;
    return r;
}

int lb_regex_match(lb_regex *re, const unsigned char *subject, size_t length, size_t *ovector, int ovecpairs) {
    uint32_t need = (uint32_t)lb_regex_capture_count(re) + 1;
    if (!tls_md || tls_md_pairs < need) {
        if (tls_md) pcre.md_free(tls_md);
        tls_md = pcre.md_create(re->code, NULL);
        if (!tls_md) return -100;
        tls_md_pairs = pcre.ovcount(tls_md);
    }
    int rc = pcre.match(re->code, subject ? subject : (const unsigned char *)"", length, 0, 0, tls_md, NULL);
    if (rc == -1) return 0;
    if (rc < 0) return rc;
    if (rc == 0) rc = (int)tls_md_pairs;
    size_t *ov = pcre.ovector(tls_md);
    int pairs = rc < ovecpairs ? rc : ovecpairs;
    for (int i = 0; i < pairs * 2; i++) ovector[i] = ov[i];
    return rc;
}

int lb_regex_capture_count(lb_regex *re) {
    uint32_t n = 0;
    pcre.info(re->code, LB_PCRE2_INFO_CAPTURECOUNT, &n);
    return (int)n;
}

int lb_regex_name_count(lb_regex *re) {
    uint32_t n = 0;
    pcre.info(re->code, LB_PCRE2_INFO_NAMECOUNT, &n);
    return (int)n;
}

int lb_regex_name_at(lb_regex *re, int i, int *group, char *name, size_t namelen) {
    uint32_t count = 0, size = 0;
    const unsigned char *table = NULL;
    pcre.info(re->code, LB_PCRE2_INFO_NAMECOUNT, &count);
    pcre.info(re->code, LB_PCRE2_INFO_NAMEENTRYSIZE, &size);
    pcre.info(re->code, LB_PCRE2_INFO_NAMETABLE, &table);
    if (i < 0 || (uint32_t)i >= count || !table) return -1;
    const unsigned char *entry = table + (size_t)i * size;
    *group = (entry[0] << 8) | entry[1];
    snprintf(name, namelen, "%s", (const char *)(entry + 2));
    return 0;
}

void lb_regex_free(lb_regex *re) {
    if (!re) return;
    pcre.code_free(re->code);
    free(re);
}
