#ifndef CLBSHIM_H
#define CLBSHIM_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <sys/prctl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

/* ---- Linux calls that Glibc's Swift overlay does not expose ---- */
int lb_epoll_create(void);
int lb_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
int lb_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
int lb_eventfd(void);
int lb_accept4(int fd, struct sockaddr *addr, socklen_t *len);
int lb_set_pdeathsig(int sig);
uint64_t lb_epoll_event_data(const struct epoll_event *ev);
uint32_t lb_epoll_event_events(const struct epoll_event *ev);

/* ---- Process supervision ----
 * Forks and execs `path` with `argv`/`envp` in `dir`; the child gets an empty signal mask, default
 * SIGPIPE, stdin from /dev/null, stdout and stderr on `outfd`, and PR_SET_PDEATHSIG(SIGTERM) so
 * it dies with lb even when lb is killed with SIGKILL. Returns the pid or -1. */
int lb_pipe_cloexec(int fds[2]);
int lb_spawn(const char *path, char *const argv[], char *const envp[], const char *dir, int outfd);

/* ---- PCRE2 (8-bit), loaded with dlopen so no development headers are needed ----
 * nginx uses PCRE for `location ~`, `server_name ~` and `map`; lb does the same for
 * identical regex semantics. */
typedef struct lb_regex lb_regex;
/* Returns 1 if the PCRE2 library could be loaded. */
int lb_pcre_available(void);
/* Compiles a pattern; on failure returns NULL and writes a message into err. */
lb_regex *lb_regex_compile(const char *pattern, size_t length, int caseless, char *err, size_t errlen, size_t *erroffset);
/* Matches; returns the number of captured pairs (>=1) on a match, 0 on no match, <0 on error.
 * ovector receives up to ovecpairs start/end pairs. */
int lb_regex_match(lb_regex *re, const unsigned char *subject, size_t length, size_t *ovector, int ovecpairs);
int lb_regex_capture_count(lb_regex *re);
/* Named groups: number of names; for index i writes the group number and a NUL-terminated name. */
int lb_regex_name_count(lb_regex *re);
int lb_regex_name_at(lb_regex *re, int i, int *group, char *name, size_t namelen);
void lb_regex_free(lb_regex *re);

#endif
