/* lib/dkim.c - DKIM signing (RFC 6376, RFC 8463); see dkim.h. */
#include "lib/dkim.h"
#include "lib/log.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define FOLD_COLS    78
#define MAX_FIELDS   1024        /* header fields of one message we look at */
#define MAX_TAG_TEXT 253         /* d= and s= */

/* Setting up an OpenSSL signing context costs about 2 us, as much as the rest of a
 * signature's own work; each key keeps one, made on first use and reused by whichever
 * signer holds the lock (others, rare: a key serves one render thread, make their own).
 * The only part of a key that changes after loading, hence the casts from const. */
struct dkim_key {
    EVP_PKEY       *pkey;
    int             alg;
    pthread_mutex_t lock;
    EVP_MD_CTX     *ed_ctx;    /* Ed25519: EVP_DigestSignInit done */
    EVP_PKEY_CTX   *rsa_ctx;   /* RSA: EVP_PKEY_sign_init, PKCS#1 v1.5, SHA-256 */
    int             no_reuse;  /* this OpenSSL refused a second EVP_DigestSign on ed_ctx */
};

/* The fields we sign, in h= order, and whether each is over-signed. */
static const struct { const char *name; int over; } signed_fields[] = {
    {"From", 1},     {"To", 0},           {"Cc", 0},           {"Subject", 1},
    {"Date", 0},     {"Message-ID", 0},   {"MIME-Version", 0}, {"Content-Type", 0},
    {"Reply-To", 0}, {"List-Unsubscribe", 0}, {"List-Unsubscribe-Post", 0},
};
#define N_SIGNED (sizeof signed_fields / sizeof signed_fields[0])

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static _Noreturn void die_oom(const char *what)
{
    die("dkim: %s failed (out of memory?)", what);
}

/* SHA-256 fetched once: EVP_sha256() makes OpenSSL 3 look the implementation up (under a
 * lock) at every use. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_fetched;

static void sha256_fetch(void)
{
    sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    return sha256_fetched ? sha256_fetched : EVP_sha256();
}

/* Undoes appends after a failure. */
static void buf_truncate(buf *b, size_t len)
{
    if (b->data) {
        b->len = len;
        b->data[len] = '\0';
    }
}

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* Appends base64 (RFC 4648, padded, no line breaks). */
static int append_b64(buf *out, const unsigned char *p, size_t n)
{
    size_t need = 4 * ((n + 2) / 3) + 1;
    char small[1400];                    /* signatures of keys up to 8192 bits */
    char *tmp = need <= sizeof small ? small : xmalloc(need);
    int len = EVP_EncodeBlock((unsigned char *)tmp, p, (int)n);
    int rc = buf_append(out, tmp, (size_t)len);
    if (tmp != small)
        free(tmp);
    return rc;
}

/* ---- keys ------------------------------------------------------------------------------ */

static dkim_key *key_wrap(EVP_PKEY *pk, char *err, size_t errlen)
{
    int alg;
    if (EVP_PKEY_is_a(pk, "RSA")) {
        int bits = EVP_PKEY_get_bits(pk);
        if (bits < 1024 || bits > 8192) {
            set_err(err, errlen, "RSA key of %d bits (1024..8192 allowed)", bits);
            EVP_PKEY_free(pk);
            return NULL;
        }
        alg = DKIM_RSA;
    } else if (EVP_PKEY_is_a(pk, "ED25519")) {
        alg = DKIM_ED25519;
    } else {
        set_err(err, errlen, "key is neither RSA nor Ed25519");
        EVP_PKEY_free(pk);
        return NULL;
    }
    dkim_key *k = xcalloc(1, sizeof *k);
    k->pkey = pk;
    k->alg = alg;
    if (pthread_mutex_init(&k->lock, NULL) != 0)
        die_oom("pthread_mutex_init");
    return k;
}

dkim_key *dkim_key_load_pem(const char *pem, size_t n, char *err, size_t errlen)
{
    if (n > (1u << 20)) {
        set_err(err, errlen, "key too large");
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    if (!bio)
        die_oom("BIO_new_mem_buf");
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!pk) {
        unsigned long e = ERR_get_error();
        const char *why = e ? ERR_reason_error_string(e) : NULL;
        set_err(err, errlen, "not a PEM private key: %s", why ? why : "unreadable");
        ERR_clear_error();
        return NULL;
    }
    return key_wrap(pk, err, errlen);
}

void dkim_key_free(dkim_key *k)
{
    if (!k)
        return;
    EVP_MD_CTX_free(k->ed_ctx);
    EVP_PKEY_CTX_free(k->rsa_ctx);
    pthread_mutex_destroy(&k->lock);
    EVP_PKEY_free(k->pkey);
    free(k);
}

int dkim_key_alg(const dkim_key *k)
{
    return k->alg;
}

int dkim_key_public_b64(const dkim_key *k, buf *out)
{
    if (k->alg == DKIM_ED25519) {
        unsigned char raw[32];
        size_t len = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &len) != 1 || len != sizeof raw)
            die_oom("EVP_PKEY_get_raw_public_key");
        return append_b64(out, raw, len);
    }
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(k->pkey, &der);
    if (len <= 0)
        die_oom("i2d_PUBKEY");
    int rc = append_b64(out, der, (size_t)len);
    OPENSSL_free(der);
    return rc;
}

int dkim_keygen(int alg, buf *private_pem, buf *public_b64, char *err, size_t errlen)
{
    EVP_PKEY *pk;
    if (alg == DKIM_RSA)
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    else if (alg == DKIM_ED25519)
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    else {
        set_err(err, errlen, "unknown algorithm %d", alg);
        return -1;
    }
    if (!pk) {
        ERR_clear_error();
        set_err(err, errlen, "key generation failed");
        return -1;
    }
    dkim_key *k = key_wrap(pk, err, errlen);
    if (!k)
        return -1;
    int rc = -1;
    size_t pem_len0 = private_pem->len, pub_len0 = public_b64->len;
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        die_oom("BIO_new");
    if (PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) != 1)
        die_oom("PEM_write_bio_PrivateKey");
    char *p;
    long plen = BIO_get_mem_data(bio, &p);
    if (buf_append(private_pem, p, (size_t)plen) != 0 || dkim_key_public_b64(k, public_b64) != 0) {
        set_err(err, errlen, "output buffer full");
        goto done;
    }
    rc = 0;
done:
    if (rc != 0) {
        buf_truncate(private_pem, pem_len0);
        buf_truncate(public_b64, pub_len0);
    }
    BIO_free(bio);
    dkim_key_free(k);
    return rc;
}

/* ---- canonicalization ------------------------------------------------------------------ */

/* Where canonical bytes go: a buffer (tests) or a running hash. Bytes for the hash are
 * gathered in tmp first: canonical output comes in pieces of a word or a line, and one
 * digest update per piece would cost more than the hashing itself. */
typedef struct {
    buf        *out;
    EVP_MD_CTX *md;
    int         full;
    char       *tmp;      /* SINK_TMP bytes, with md */
    size_t      tn;
} sink;

#define SINK_TMP 16384

static void sink_flush(sink *s)
{
    if (s->md && s->tn) {
        if (EVP_DigestUpdate(s->md, s->tmp, s->tn) != 1)
            die_oom("EVP_DigestUpdate");
        s->tn = 0;
    }
}

static void sink_put(sink *s, const char *p, size_t n)
{
    if (!n)
        return;
    if (!s->md) {
        if (buf_append(s->out, p, n) != 0)
            s->full = 1;
        return;
    }
    if (n > SINK_TMP - s->tn) {
        sink_flush(s);
        if (n > SINK_TMP) {
            if (EVP_DigestUpdate(s->md, p, n) != 1)
                die_oom("EVP_DigestUpdate");
            return;
        }
    }
    memcpy(s->tmp + s->tn, p, n);
    s->tn += n;
}

/* One body line without its CRLF, trailing WSP dropped and WSP runs made one SP. */
static void put_relaxed_line(sink *s, const char *p, size_t n)
{
    size_t i = 0;
    int wsp = 0;
    while (i < n) {
        if (is_wsp(p[i])) {
            wsp = 1;
            i++;
            continue;
        }
        if (wsp)
            sink_put(s, " ", 1);
        wsp = 0;
        size_t j = i;
        while (j < n && !is_wsp(p[j]))
            j++;
        sink_put(s, p + i, j - i);
        i = j;
    }
}

static int line_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_wsp(p[i]))
            return 0;
    return 1;
}

/* From p[i]: the index of the CR of the line's CRLF (n when there is none) and whether the
 * line may not be canonical already: a TAB, or a SP before a byte <= SP (WSP, CR) or at the
 * end. Conservative: a line flagged needs put_relaxed_line, one not flagged is canonical. */
static size_t line_end(const char *p, size_t i, size_t n, int *dirty)
{
    size_t j = i;
    int d = 0;
#ifdef __SSE2__
    /* 16 bytes at a time; the bytewise loop below does the rest. */
    const __m128i tab = _mm_set1_epi8('\t'), sp = _mm_set1_epi8(' '), cr = _mm_set1_epi8('\r');
    while (j + 17 <= n) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + j));
        __m128i y = _mm_loadu_si128((const __m128i *)(const void *)(p + j + 1));
        __m128i le = _mm_cmpeq_epi8(_mm_min_epu8(y, sp), y);          /* next byte <= SP */
        __m128i bad = _mm_or_si128(_mm_cmpeq_epi8(x, tab),
                                   _mm_and_si128(_mm_cmpeq_epi8(x, sp), le));
        unsigned crs = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, cr));
        unsigned bads = (unsigned)_mm_movemask_epi8(bad);
        if (!crs) {
            d |= bads != 0;
            j += 16;
            continue;
        }
        unsigned k = (unsigned)__builtin_ctz(crs);
        d |= (bads & ((1u << k) - 1)) != 0;
        j += k;
        if (p[j + 1] == '\n') {
            *dirty = d;
            return j;
        }
        j++;                              /* a lone CR: content */
    }
#endif
    for (; j < n; j++) {
        char c = p[j];
        if (c > ' ')
            continue;
        if (c == '\r') {
            if (j + 1 < n && p[j + 1] == '\n')
                break;
        } else if (c == '\t') {
            d = 1;
        } else if (c == ' ' && (j + 1 == n || p[j + 1] == ' ' || p[j + 1] == '\t' ||
                                p[j + 1] == '\r')) {
            d = 1;
        }
    }
    *dirty = d;
    return j;
}

/* RFC 6376 3.4.4. Lines end at CRLF only (lib/mime writes no bare CR or LF); empty lines
 * are held back until a non-empty line follows, so those at the end vanish; an empty
 * body stays empty. Lines that are canonical already (most lines lib/mime writes) go out
 * as they are, consecutive ones with their CRLFs in one piece; the others through
 * put_relaxed_line. */
static void canon_body(sink *s, const char *p, size_t n)
{
    static const char crlfs[] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
    size_t pending = 0, i = 0, run = 0;   /* p[run..i): canonical lines not yet written */
    while (i < n) {
        int dirty;
        size_t j = line_end(p, i, n, &dirty);
        size_t len = j - i;
        if (!dirty && len > 0 && j < n && pending == 0) {
            i = j + 2;                       /* joins the run */
            continue;
        }
        sink_put(s, p + run, i - run);
        if (dirty ? line_blank(p + i, len) : len == 0) {
            pending++;
        } else {
            while (pending) {
                size_t k = pending < 8 ? pending : 8;
                sink_put(s, crlfs, 2 * k);
                pending -= k;
            }
            if (!dirty && j < n) {
                sink_put(s, p + i, len + 2);
            } else {
                if (dirty)
                    put_relaxed_line(s, p + i, len);
                else
                    sink_put(s, p + i, len);
                sink_put(s, "\r\n", 2);   /* also adds the missing CRLF of a last line */
            }
        }
        i = j < n ? j + 2 : n;
        run = i;
    }
    sink_put(s, p + run, i - run);
}

int dkim_canon_body(const char *body, size_t n, buf *out)
{
    size_t len0 = out->len;
    sink s = {.out = out};
    canon_body(&s, body, n);
    if (s.full) {
        buf_truncate(out, len0);
        return -1;
    }
    return 0;
}

/* RFC 6376 3.4.2 on one field (name, colon, value with folds, optional CRLF). */
static void canon_header(sink *s, const char *f, size_t n)
{
    const char *colon = memchr(f, ':', n);
    size_t name_end = colon ? (size_t)(colon - f) : n;
    size_t ne = name_end;
    while (ne > 0 && is_wsp(f[ne - 1]))
        ne--;
    char lower[64];
    for (size_t i = 0; i < ne;) {
        size_t k = 0;
        for (; k < sizeof lower && i < ne; k++, i++)
            lower[k] = (f[i] >= 'A' && f[i] <= 'Z') ? (char)(f[i] + 32) : f[i];
        sink_put(s, lower, k);
    }
    sink_put(s, ":", 1);
    size_t i = colon ? name_end + 1 : n;
    int wsp = 0, started = 0;
    while (i < n) {
        char c = f[i];
        if (c == '\r' && i + 1 < n && f[i + 1] == '\n') {
            i += 2;                      /* unfold: the CRLF goes, the WSP after it stays */
            continue;
        }
        if (is_wsp(c)) {
            wsp = 1;
            i++;
            continue;
        }
        if (wsp && started)
            sink_put(s, " ", 1);
        wsp = 0;
        started = 1;
        size_t j = i;
        while (j < n && !is_wsp(f[j]) && f[j] != '\r')
            j++;
        if (j == i)
            j++;                         /* a lone CR: content */
        sink_put(s, f + i, j - i);
        i = j;
    }
    sink_put(s, "\r\n", 2);
}

int dkim_canon_header(const char *field, size_t n, buf *out)
{
    size_t len0 = out->len;
    sink s = {.out = out};
    canon_header(&s, field, n);
    if (s.full) {
        buf_truncate(out, len0);
        return -1;
    }
    return 0;
}

void dkim_body_hash(const char *msg, size_t n, uint8_t out[DKIM_HASH_LEN])
{
    const char *sep = memmem(msg, n, "\r\n\r\n", 4);
    const char *body = sep ? sep + 4 : msg + n;
    if (n >= 2 && msg[0] == '\r' && msg[1] == '\n')
        body = msg + 2;                  /* no header at all */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, sha256(), NULL) != 1)
        die_oom("EVP_DigestInit_ex");
    char tmp[SINK_TMP];
    sink s = {.md = md, .tmp = tmp};
    canon_body(&s, body, (size_t)(msg + n - body));
    sink_flush(&s);
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(md, out, &len) != 1 || len != DKIM_HASH_LEN)
        die_oom("EVP_DigestFinal_ex");
    EVP_MD_CTX_free(md);
}

/* ---- signing --------------------------------------------------------------------------- */

static EVP_MD_CTX *ed_ctx_new(EVP_PKEY *pk)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        die_oom("EVP_MD_CTX_new");
    if (EVP_DigestSignInit(md, NULL, NULL, NULL, pk) != 1) {
        EVP_MD_CTX_free(md);
        return NULL;
    }
    return md;
}

static EVP_PKEY_CTX *rsa_ctx_new(EVP_PKEY *pk)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pk, NULL);
    if (!c)
        die_oom("EVP_PKEY_CTX_new");
    if (EVP_PKEY_sign_init(c) != 1 || EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(c, sha256()) != 1) {
        EVP_PKEY_CTX_free(c);
        return NULL;
    }
    return c;
}

/* Signs a SHA-256 digest: PKCS#1 v1.5 with the SHA-256 DigestInfo (the same signature as
 * EVP_DigestSign over the data), or PureEdDSA over the digest itself (RFC 8463 3).
 * cached: k's lock is held, its context may be used (and made). 1 ok, 0 failed. */
static int sign_digest(struct dkim_key *k, int cached, const unsigned char *dg,
                       unsigned char *sig, size_t *siglen)
{
    size_t cap = *siglen;
    if (k->alg == DKIM_ED25519) {
        if (cached && !k->no_reuse) {
            if (!k->ed_ctx)
                k->ed_ctx = ed_ctx_new(k->pkey);
            if (k->ed_ctx && EVP_DigestSign(k->ed_ctx, sig, siglen, dg, DKIM_HASH_LEN) == 1)
                return 1;
            ERR_clear_error();           /* then once more with a fresh context */
            EVP_MD_CTX_free(k->ed_ctx);
            k->ed_ctx = NULL;
            k->no_reuse = 1;
            *siglen = cap;
        }
        EVP_MD_CTX *md = ed_ctx_new(k->pkey);
        int ok = md && EVP_DigestSign(md, sig, siglen, dg, DKIM_HASH_LEN) == 1;
        EVP_MD_CTX_free(md);
        return ok;
    }
    if (cached) {
        if (!k->rsa_ctx)
            k->rsa_ctx = rsa_ctx_new(k->pkey);
        if (k->rsa_ctx && EVP_PKEY_sign(k->rsa_ctx, sig, siglen, dg, DKIM_HASH_LEN) == 1)
            return 1;
        ERR_clear_error();
        EVP_PKEY_CTX_free(k->rsa_ctx);
        k->rsa_ctx = NULL;
        *siglen = cap;
    }
    EVP_PKEY_CTX *c = rsa_ctx_new(k->pkey);
    int ok = c && EVP_PKEY_sign(c, sig, siglen, dg, DKIM_HASH_LEN) == 1;
    EVP_PKEY_CTX_free(c);
    return ok;
}

int dkim_sign_data(const dkim_key *k, const char *data, size_t n, buf *b64_out, char *err,
                   size_t errlen)
{
    unsigned char sig[1024], digest[DKIM_HASH_LEN];
    size_t siglen = sizeof sig;
    unsigned int dl = 0;
    if (EVP_Digest(data, n, digest, &dl, sha256(), NULL) != 1 || dl != DKIM_HASH_LEN)
        die_oom("EVP_Digest");
    struct dkim_key *mk = (struct dkim_key *)k;
    int cached = pthread_mutex_trylock(&mk->lock) == 0;
    int ok = sign_digest(mk, cached, digest, sig, &siglen);
    if (cached)
        pthread_mutex_unlock(&mk->lock);
    if (!ok) {
        ERR_clear_error();
        set_err(err, errlen, "signing failed");
        return -1;
    }
    if (append_b64(b64_out, sig, siglen) != 0) {
        set_err(err, errlen, "output buffer full");
        return -1;
    }
    return 0;
}

typedef struct {
    const char *p;
    size_t      n;       /* with the CRLF */
    size_t      name_n;  /* name without WSP before the colon */
    int         sig;     /* index in signed_fields, or -1 */
} field;

/* Splits the header block into fields. -1 + err on a malformed block. */
static int parse_fields(const char *msg, size_t n, field *f, size_t *nf, char *err,
                        size_t errlen)
{
    size_t i = 0, cnt = 0;
    while (i < n) {
        if (n - i >= 2 && msg[i] == '\r' && msg[i + 1] == '\n')
            break;                                   /* the empty line */
        if (is_wsp(msg[i])) {
            set_err(err, errlen, "header starts with a continuation line");
            return -1;
        }
        size_t start = i;
        for (;;) {                                   /* to the end of the field */
            const char *nl = memchr(msg + i, '\n', n - i);
            while (nl && (nl == msg + i || nl[-1] != '\r'))
                nl = memchr(nl + 1, '\n', n - (size_t)(nl + 1 - msg));
            i = nl ? (size_t)(nl - msg) + 1 : n;
            if (i >= n || !is_wsp(msg[i]))
                break;
        }
        const char *colon = memchr(msg + start, ':', i - start);
        if (!colon) {
            set_err(err, errlen, "header line without a colon");
            return -1;
        }
        if (cnt == MAX_FIELDS) {
            set_err(err, errlen, "more than %d header fields", MAX_FIELDS);
            return -1;
        }
        size_t nn = (size_t)(colon - (msg + start));
        while (nn > 0 && is_wsp(msg[start + nn - 1]))
            nn--;
        f[cnt++] = (field){msg + start, i - start, nn, -1};
    }
    *nf = cnt;
    return 0;
}

static int field_is(const field *f, const char *name)
{
    size_t len = strlen(name);
    return f->name_n == len && strncasecmp(f->p, name, len) == 0;
}

/* d= and s= become tag values: keep them to the characters DNS names use. */
static int tag_text_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > MAX_TAG_TEXT)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return 0;
    }
    return 1;
}

/* Folding at FOLD_COLS: a word goes on the current line if it fits, else on a new line
 * starting with a tab. sp: the word is separated from the previous one by a space (which
 * the fold replaces); otherwise a fold is FWS that the grammar allows there. */
typedef struct {
    buf   *b;
    size_t col;
    int    full;
} folder;

static void fold_word(folder *f, const char *w, size_t n, int sp)
{
    if (f->col + n + (sp ? 1 : 0) > FOLD_COLS && f->col > 1) {
        f->full |= buf_append(f->b, "\r\n\t", 3);
        f->col = 1;
    } else if (sp) {
        f->full |= buf_append(f->b, " ", 1);
        f->col++;
    }
    f->full |= buf_append(f->b, w, n);
    f->col += n;
}

static void fold_tag(folder *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fold_tag(folder *f, const char *fmt, ...)
{
    char tmp[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        f->full = 1;
    else
        fold_word(f, tmp, (size_t)n, 1);
}

/* fold_tag(f, "%s%s;", a, b) without the printf machinery, for the tags made of strings
 * (b may end with the ';' already). */
static void fold_str(folder *f, const char *a, const char *b)
{
    char tmp[MAX_TAG_TEXT + 32];
    size_t an = strlen(a), bn = strlen(b);
    if (an + bn + 1 >= sizeof tmp) {
        f->full = 1;
        return;
    }
    memcpy(tmp, a, an);
    memcpy(tmp + an, b, bn);
    size_t n = an + bn;
    if (n == 0 || tmp[n - 1] != ';')
        tmp[n++] = ';';
    fold_word(f, tmp, n, 1);
}

int dkim_sign(const dkim_signer *s, const char *msg, size_t n, const uint8_t *body_hash,
              long long timestamp, buf *header_out, char *err, size_t errlen)
{
    int rc = -1;
    size_t len0 = header_out->len;
    field *f = NULL;
    buf data;
    buf_init(&data, (size_t)64 << 20);
    if (!s || !s->key || !tag_text_ok(s->domain) || !tag_text_ok(s->selector)) {
        set_err(err, errlen, "bad signer: domain and selector must be DNS labels");
        goto done;
    }
    if (timestamp < 0) {
        set_err(err, errlen, "negative timestamp");
        goto done;
    }
    f = xmalloc(MAX_FIELDS * sizeof *f);
    size_t nf = 0;
    if (parse_fields(msg, n, f, &nf, err, errlen) != 0)
        goto done;

    size_t count[N_SIGNED] = {0};
    for (size_t i = 0; i < nf; i++)
        for (size_t j = 0; j < N_SIGNED; j++)
            if (field_is(&f[i], signed_fields[j].name)) {
                f[i].sig = (int)j;
                count[j]++;
                break;
            }
    if (count[0] == 0) {
        set_err(err, errlen, "no From header field");
        goto done;
    }

    uint8_t bh[DKIM_HASH_LEN];
    if (!body_hash) {
        dkim_body_hash(msg, n, bh);
        body_hash = bh;
    }

    /* The header with an empty b=, then the canonical signed fields, bottom-up per name
     * (RFC 6376 5.4.2): the k-th listing of a name takes its k-th last instance; listings
     * past the instances (over-signing) contribute nothing. */
    folder fo = {.b = header_out, .col = 15};
    fo.full |= buf_appendz(header_out, "DKIM-Signature:");
    fold_str(&fo, "v=1;", "");
    fold_str(&fo, "a=", s->key->alg == DKIM_ED25519 ? "ed25519-sha256;" : "rsa-sha256;");
    fold_str(&fo, "c=relaxed/relaxed;", "");
    fold_str(&fo, "d=", s->domain);
    fold_str(&fo, "s=", s->selector);
    fold_tag(&fo, "t=%lld;", timestamp);
    int first = 1;
    for (size_t j = 0; j < N_SIGNED; j++) {
        size_t times = count[j] + (size_t)signed_fields[j].over;
        for (size_t k = 0; k < times; k++) {
            char w[40];
            int last = 1;
            for (size_t j2 = j + 1; j2 < N_SIGNED && last; j2++)
                if (count[j2] + (size_t)signed_fields[j2].over)
                    last = 0;
            if (k + 1 < times)
                last = 0;
            int wn = snprintf(w, sizeof w, "%s%s%c", first ? "h=" : "", signed_fields[j].name,
                              last ? ';' : ':');
            fold_word(&fo, w, (size_t)wn, first);
            first = 0;

            size_t seen = 0;
            for (size_t i = nf; i-- > 0;) {
                if (f[i].sig == (int)j && seen++ == k) {
                    if (dkim_canon_header(f[i].p, f[i].n, &data) != 0) {
                        set_err(err, errlen, "header too large");
                        goto done;
                    }
                    break;
                }
            }
        }
    }
    char bh64[64];
    int bhn = EVP_EncodeBlock((unsigned char *)bh64, body_hash, DKIM_HASH_LEN);
    fold_tag(&fo, "bh=%.*s;", bhn, bh64);
    /* b= with room for some of its value on the same line. */
    if (fo.col + 1 + 2 + 8 > FOLD_COLS) {
        fo.full |= buf_append(header_out, "\r\n\tb=", 5);
        fo.col = 3;
    } else {
        fo.full |= buf_append(header_out, " b=", 3);
        fo.col += 3;
    }
    if (fo.full) {
        set_err(err, errlen, "output buffer full");
        goto done;
    }
    /* The signature field itself, canonical, without its CRLF (RFC 6376 3.7). */
    if (dkim_canon_header(header_out->data + len0, header_out->len - len0, &data) != 0) {
        set_err(err, errlen, "header too large");
        goto done;
    }
    data.len -= 2;

    buf sig;
    buf_init(&sig, 4096);
    if (dkim_sign_data(s->key, data.data, data.len, &sig, err, errlen) != 0) {
        buf_free(&sig);
        goto done;
    }
    for (size_t i = 0; i < sig.len;) {
        size_t room = fo.col < FOLD_COLS ? FOLD_COLS - fo.col : 0;
        if (room == 0) {
            fo.full |= buf_append(header_out, "\r\n\t", 3);
            fo.col = 1;
            continue;
        }
        size_t k = sig.len - i < room ? sig.len - i : room;
        fo.full |= buf_append(header_out, sig.data + i, k);
        fo.col += k;
        i += k;
    }
    fo.full |= buf_append(header_out, "\r\n", 2);
    buf_free(&sig);
    if (fo.full) {
        set_err(err, errlen, "output buffer full");
        goto done;
    }
    rc = 0;
done:
    if (rc != 0)
        buf_truncate(header_out, len0);
    buf_free(&data);
    free(f);
    return rc;
}
