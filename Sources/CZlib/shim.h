// The system zlib (Debian: zlib1g-dev), reached through a systemLibrary target of our own.
#include <zlib.h>

// deflateInit2 is a macro in zlib.h; Swift cannot call macros.
static inline int lb_deflate_init_gzip(z_stream *s, int level, int window_bits, int mem_level) {
    return deflateInit2(s, level, Z_DEFLATED, window_bits + 16, mem_level, Z_DEFAULT_STRATEGY);
}
static inline int lb_inflate_init_gzip(z_stream *s) {
    return inflateInit2(s, 15 + 16);
}
