// The system OpenSSL 3 (Debian: libssl-dev), reached through a systemLibrary target of our own.
// Swift cannot call the many OpenSSL entry points that are macros over SSL_ctrl/SSL_CTX_ctrl;
// the small static inline functions below name them. No logic lives here beyond what the
// callbacks need to run without a Swift closure context.
#ifndef LB_COPENSSL_SHIM_H
#define LB_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>
#include <openssl/ocsp.h>
#include <openssl/conf.h>
#include <string.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

static inline long lb_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline long lb_SSL_clear_mode(SSL *ssl, long mode) { return SSL_clear_mode(ssl, mode); }
static inline long lb_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_session_cache_mode(ctx, mode); }
static inline long lb_SSL_CTX_sess_set_cache_size(SSL_CTX *ctx, long n) { return SSL_CTX_sess_set_cache_size(ctx, n); }
static inline long lb_SSL_CTX_add0_chain_cert(SSL_CTX *ctx, X509 *x) { return SSL_CTX_add0_chain_cert(ctx, x); }
static inline long lb_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *list) { return SSL_CTX_set1_groups_list(ctx, list); }
static inline long lb_SSL_CTX_set_max_send_fragment(SSL_CTX *ctx, long n) { return SSL_CTX_set_max_send_fragment(ctx, n); }
static inline long lb_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int v) { return SSL_CTX_set_min_proto_version(ctx, v); }
static inline long lb_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int v) { return SSL_CTX_set_max_proto_version(ctx, v); }
static inline long lb_SSL_CTX_set_tlsext_servername_callback(SSL_CTX *ctx, int (*cb)(SSL *, int *, void *)) {
    return SSL_CTX_set_tlsext_servername_callback(ctx, cb);
}
static inline long lb_SSL_CTX_set_tlsext_status_cb(SSL_CTX *ctx, int (*cb)(SSL *, void *)) {
    return SSL_CTX_set_tlsext_status_cb(ctx, cb);
}
static inline long lb_SSL_set_tlsext_status_ocsp_resp(SSL *ssl, unsigned char *resp, long len) {
    return SSL_set_tlsext_status_ocsp_resp(ssl, resp, len);
}
static inline long lb_SSL_CTX_set_options(SSL_CTX *ctx, uint64_t op) { return (long)SSL_CTX_set_options(ctx, op); }
static inline long lb_SSL_set_tlsext_host_name(SSL *ssl, const char *name) { return SSL_set_tlsext_host_name(ssl, name); }
static inline long lb_SSL_session_reused(SSL *ssl) { return SSL_session_reused(ssl); }
static inline unsigned long lb_xn_flag_rfc2253(void) { return XN_FLAG_RFC2253; }
static inline int lb_SSL_CTX_get_verify_depth(const SSL_CTX *ctx) { return SSL_CTX_get_verify_depth(ctx); }

/// The OpenSSL options lb sets on every server context (as nginx does): no compression, no
/// client-initiated renegotiation, unexpected EOF reported as an ordinary end of stream.
static inline uint64_t lb_server_options(void) {
    uint64_t o = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_SINGLE_DH_USE | SSL_OP_SINGLE_ECDH_USE;
#ifdef SSL_OP_NO_CLIENT_RENEGOTIATION
    o |= SSL_OP_NO_CLIENT_RENEGOTIATION;
#endif
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    o |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
    return o;
}

/// SSL_OP_* are 64-bit macro expressions Swift does not import.
enum lb_op { LB_OP_NO_SSLv3, LB_OP_NO_TLSv1, LB_OP_NO_TLSv1_1, LB_OP_NO_TLSv1_2, LB_OP_NO_TLSv1_3,
             LB_OP_CIPHER_SERVER_PREFERENCE, LB_OP_NO_TICKET };
static inline uint64_t lb_op(enum lb_op op) {
    switch (op) {
    case LB_OP_NO_SSLv3: return SSL_OP_NO_SSLv3;
    case LB_OP_NO_TLSv1: return SSL_OP_NO_TLSv1;
    case LB_OP_NO_TLSv1_1: return SSL_OP_NO_TLSv1_1;
    case LB_OP_NO_TLSv1_2: return SSL_OP_NO_TLSv1_2;
    case LB_OP_NO_TLSv1_3: return SSL_OP_NO_TLSv1_3;
    case LB_OP_CIPHER_SERVER_PREFERENCE: return SSL_OP_CIPHER_SERVER_PREFERENCE;
    case LB_OP_NO_TICKET: return SSL_OP_NO_TICKET;
    }
    return 0;
}

/// ALPN: lb speaks HTTP/1.1 only. A client that offers ALPN without "http/1.1" is refused, as
/// nginx refuses it (no_application_protocol).
static inline int lb_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                 const unsigned char *in, unsigned int inlen, void *arg) {
    static const unsigned char protos[] = "\x08http/1.1\x08http/1.0";
    (void)ssl; (void)arg;
    if (SSL_select_next_proto((unsigned char **)out, outlen, protos, sizeof(protos) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}
static inline void lb_SSL_CTX_use_alpn_http11(SSL_CTX *ctx) { SSL_CTX_set_alpn_select_cb(ctx, lb_alpn_select, NULL); }

/// Session ticket keys (`ssl_session_ticket_key`): the first encrypts, every one decrypts. Kept in
/// the context's app data; the memory belongs to the Swift object that owns the context.
typedef struct {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    int aesLength; // 16 (48-byte key file: AES-128-CBC) or 32 (80-byte file: AES-256-CBC)
} lb_ticket_key;

typedef struct {
    int count;
    lb_ticket_key keys[];
} lb_ticket_keys;

static inline int lb_ticket_key_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *ectx,
                                   EVP_MAC_CTX *hctx, int enc) {
    lb_ticket_keys *tk = (lb_ticket_keys *)SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (tk == NULL || tk->count == 0) return -1;
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (enc == 1) {
        lb_ticket_key *k = &tk->keys[0];
        const EVP_CIPHER *c = k->aesLength == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(c)) != 1) return -1;
        if (EVP_EncryptInit_ex(ectx, c, NULL, k->aes, iv) != 1) return -1;
        if (EVP_MAC_init(hctx, k->hmac, (size_t)k->aesLength, params) != 1) return -1;
        memcpy(name, k->name, 16);
        return 1;
    }
    for (int i = 0; i < tk->count; i++) {
        lb_ticket_key *k = &tk->keys[i];
        if (memcmp(name, k->name, 16) != 0) continue;
        const EVP_CIPHER *c = k->aesLength == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
        if (EVP_MAC_init(hctx, k->hmac, (size_t)k->aesLength, params) != 1) return -1;
        if (EVP_DecryptInit_ex(ectx, c, NULL, k->aes, iv) != 1) return -1;
        // Not the newest key: decrypt, and ask the client to take a new ticket.
        return i == 0 ? 1 : 2;
    }
    return 0;
}
static inline int lb_SSL_CTX_use_ticket_keys(SSL_CTX *ctx, lb_ticket_keys *keys) {
    SSL_CTX_set_app_data(ctx, keys);
    return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, lb_ticket_key_cb);
}

/// One OpenSSL error queue entry in nginx's words: `error:0A000086:SSL routines::certificate
/// verify failed`, with its data (`:calling fopen(…)`) when it has text.
static inline unsigned long lb_err_next(char *buf, size_t len) {
    const char *data = NULL;
    int flags = 0;
    unsigned long e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
    if (e == 0) return 0;
    ERR_error_string_n(e, buf, len);
    if (data != NULL && (flags & ERR_TXT_STRING) && *data) {
        size_t n = strlen(buf);
        if (n + 1 < len) {
            buf[n] = ':';
            strncpy(buf + n + 1, data, len - n - 2);
            buf[len - 1] = 0;
        }
    }
    return e;
}

/// Empties this thread's error queue before an I/O call, as SSL_get_error() requires. Most of
/// the time it is empty already, and looking costs a fraction of ERR_clear_error()'s sweep.
static inline void lb_err_clear(void) {
    if (ERR_peek_error() != 0) ERR_clear_error();
}

static inline int lb_err_reason(unsigned long e) { return ERR_GET_REASON(e); }
static inline int lb_err_lib(unsigned long e) { return ERR_GET_LIB(e); }

/// lb's socket BIO: OpenSSL's socket BIO plus one fact, "the last recv was short, so the socket
/// is drained". While it holds, a read answers "retry" without a syscall; the stream clears it
/// at its next call (which follows a readiness event, or a full read). With read-ahead on, a
/// request that arrives as one record costs one recv instead of three (header, body, EAGAIN).
typedef struct {
    int fd;
    int drained; // the last recv returned less than asked (or EAGAIN)
    int eof;     // the peer closed (BIO_eof, for SSL_OP_IGNORE_UNEXPECTED_EOF)
} lb_sock;

static inline int lb_sock_create(BIO *b) {
    lb_sock *s = (lb_sock *)calloc(1, sizeof(lb_sock));
    if (s == NULL) return 0;
    s->fd = -1;
    BIO_set_data(b, s);
    BIO_set_init(b, 1);
    return 1;
}

static inline int lb_sock_destroy(BIO *b) {
    free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    return 1;
}

static inline int lb_sock_read(BIO *b, char *buf, int len) {
    lb_sock *s = (lb_sock *)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (s->drained) {
        BIO_set_retry_read(b);
        return -1;
    }
    for (;;) {
        ssize_t n = recv(s->fd, buf, (size_t)len, 0);
        if (n > 0) {
            if (n < len) s->drained = 1;
            return (int)n;
        }
        if (n == 0) {
            s->eof = 1;
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            s->drained = 1;
            BIO_set_retry_read(b);
        }
        return -1;
    }
}

static inline int lb_sock_write(BIO *b, const char *buf, int len) {
    lb_sock *s = (lb_sock *)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t n = send(s->fd, buf, (size_t)len, MSG_NOSIGNAL);
        if (n >= 0) return (int)n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(b);
        return -1;
    }
}

static inline long lb_sock_ctrl(BIO *b, int cmd, long num, void *ptr) {
    lb_sock *s = (lb_sock *)BIO_get_data(b);
    (void)num;
    switch (cmd) {
    case BIO_C_GET_FD:
        if (ptr != NULL) *(int *)ptr = s->fd;
        return s->fd;
    case BIO_CTRL_EOF:
        return s->eof;
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DUP:
        return 1;
    default:
        return 0;
    }
}

static inline int lb_sock_puts(BIO *b, const char *str) { return lb_sock_write(b, str, (int)strlen(str)); }

/// The method, made once (by the Swift side's lazily initialised global).
static inline BIO_METHOD *lb_sock_method_new(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "lb socket");
    if (m == NULL) return NULL;
    BIO_meth_set_create(m, lb_sock_create);
    BIO_meth_set_destroy(m, lb_sock_destroy);
    BIO_meth_set_read(m, lb_sock_read);
    BIO_meth_set_write(m, lb_sock_write);
    BIO_meth_set_puts(m, lb_sock_puts);
    BIO_meth_set_ctrl(m, lb_sock_ctrl);
    return m;
}

/// A socket BIO of lb's for `fd`, set as the SSL's read and write BIO (the SSL owns it). Returns
/// its state, which the stream re-arms (`drained = 0`) at each call; NULL on failure.
static inline lb_sock *lb_SSL_set_sock(SSL *ssl, BIO_METHOD *m, int fd) {
    BIO *b = BIO_new(m);
    if (b == NULL) return NULL;
    lb_sock *s = (lb_sock *)BIO_get_data(b);
    s->fd = fd;
    SSL_set_bio(ssl, b, b);
    return s;
}

static inline int lb_SSL_CTX_uses_ktls(SSL_CTX *ctx) {
#ifdef SSL_OP_ENABLE_KTLS
    return (SSL_CTX_get_options(ctx) & SSL_OP_ENABLE_KTLS) != 0;
#else
    (void)ctx;
    return 0;
#endif
}

/// OCSP stapling (fetch mode): the macros and stack accessors Swift cannot name.
/// The chain of one of the context's certificates (owned by the context).
static inline STACK_OF(X509) *lb_SSL_CTX_chain_of(SSL_CTX *ctx, X509 *cert) {
    STACK_OF(X509) *chain = NULL;
    if (SSL_CTX_select_current_cert(ctx, cert) != 1) return NULL;
    if (SSL_CTX_get0_chain_certs(ctx, &chain) != 1) return NULL;
    return chain;
}
static inline int lb_sk_X509_num(const STACK_OF(X509) *sk) { return sk == NULL ? 0 : sk_X509_num(sk); }
static inline X509 *lb_sk_X509_value(const STACK_OF(X509) *sk, int i) { return sk_X509_value(sk, i); }
static inline void lb_sk_X509_pop_free(STACK_OF(X509) *sk) { sk_X509_pop_free(sk, X509_free); }

/// The first OCSP responder URL of a certificate's Authority Information Access extension,
/// copied into `buf`; 0 when it has none (nginx takes the first one too).
static inline int lb_X509_first_ocsp_url(X509 *x, char *buf, size_t len) {
    STACK_OF(OPENSSL_STRING) *aia = X509_get1_ocsp(x);
    if (aia == NULL) return 0;
    const char *s = sk_OPENSSL_STRING_value(aia, 0);
    int ok = 0;
    if (s != NULL && strlen(s) < len) {
        strcpy(buf, s);
        ok = 1;
    }
    X509_email_free(aia);
    return ok;
}

#endif
