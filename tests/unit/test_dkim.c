/* Unit tests of lib/dkim.c: relaxed canonicalization against the RFC 6376 3.4.5 example
 * and edge cases, and RFC 8463 Appendix A reproduced exactly: for its keys, message and
 * signature fields our canonicalization and signing give the published bh= and both b=
 * (Ed25519 and RSA signatures are deterministic). Then dkim_sign end to end, its output
 * checked with OpenSSL's verifier over independently assembled data. */
#include "tests/unit/unit.h"

#include "lib/buf.h"
#include "lib/dkim.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

static void canon_body_is(const char *in, size_t n, const char *want)
{
    buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(dkim_canon_body(in, n, &b), 0);
    assert_int_equal(b.len, strlen(want));
    if (b.len)
        assert_memory_equal(b.data, want, b.len);
    buf_free(&b);
}

static void canon_header_is(const char *in, const char *want)
{
    buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(dkim_canon_header(in, strlen(in), &b), 0);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

/* RFC 6376 3.4.5. */
static void test_rfc6376_example(void **state)
{
    canon_header_is("A: X\r\n", "a:X\r\n");
    canon_header_is("B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n");
    const char body[] = " C \r\nD \t E\r\n\r\n\r\n";
    canon_body_is(body, sizeof body - 1, " C\r\nD E\r\n");
}

static void test_relaxed_body(void **state)
{
    static const struct { const char *in, *want; } cases[] = {
        {"", ""},                                  /* empty body: empty (3.4.4) */
        {"\r\n", ""},
        {"\r\n\r\n\r\n", ""},
        {" \t \r\n\t\r\n", ""},                    /* whitespace-only lines are empty */
        {"a", "a\r\n"},                            /* missing final CRLF added */
        {"a\r\n", "a\r\n"},
        {"a\r\n\r\n  \r\n\t\r\n", "a\r\n"},        /* trailing empty lines dropped */
        {"a\r\n\r\n \r\nb", "a\r\n\r\n\r\nb\r\n"}, /* inner empty lines kept */
        {"  lead", " lead\r\n"},                   /* leading WSP becomes one SP */
        {"x \t y\t\r\n", "x y\r\n"},
        {".\r\n..dot\r\n. \r\n", ".\r\n..dot\r\n.\r\n"}, /* no dot-stuffing here */
        {"a\rb\nc\r\n", "a\rb\nc\r\n"},            /* bare CR/LF: content */
        {"=20 \r\n", "=20\r\n"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        canon_body_is(cases[i].in, strlen(cases[i].in), cases[i].want);

    /* Many empty lines inside, and a long line, survive intact. */
    buf in, want;
    buf_init(&in, 1 << 20);
    buf_init(&want, 1 << 20);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(buf_append(&in, "x", 1), 0);
    assert_int_equal(buf_appendz(&in, "\r\n"), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(buf_appendz(&in, "\r\n"), 0);
    assert_int_equal(buf_appendz(&in, "end \r\n\r\n"), 0);
    assert_int_equal(buf_append(&want, in.data, 5002 + 40), 0);
    assert_int_equal(buf_appendz(&want, "end\r\n"), 0);
    canon_body_is(in.data, in.len, want.data);
    buf_free(&in);
    buf_free(&want);
}

static void test_relaxed_header(void **state)
{
    canon_header_is("SubJect:  A \r\n\t B  \r\n", "subject:A B\r\n");
    canon_header_is("Subject :x", "subject:x\r\n");
    canon_header_is("X-Empty:\r\n", "x-empty:\r\n");
    canon_header_is("X-Empty:   \r\n", "x-empty:\r\n");
    canon_header_is("To: a@b.c,\r\n c@d.e\r\n", "to:a@b.c, c@d.e\r\n");
    canon_header_is("CONTENT-TYPE: text/plain;\r\n\tcharset=utf-8\r\n",
                    "content-type:text/plain; charset=utf-8\r\n");
    canon_header_is("Subject: =?UTF-8?B?SMOk?=\r\n =?UTF-8?B?bGxv?=\r\n",
                    "subject:=?UTF-8?B?SMOk?= =?UTF-8?B?bGxv?=\r\n");
}

static void test_body_hash_empty(void **state)
{
    uint8_t h[DKIM_HASH_LEN];
    static const char *const msgs[] = {"From: a@b.c\r\n\r\n", "From: a@b.c\r\n",
                                       "From: a@b.c\r\n\r\n\r\n\r\n", "From: a@b.c\r\n\r\n \r\n"};
    for (size_t i = 0; i < N_ELEMS(msgs); i++) {
        dkim_body_hash(msgs[i], strlen(msgs[i]), h);
        unit_assert_hex(h, sizeof h,
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
    /* The separator is the first empty line; a CRLF CRLF later in the body is content. */
    const char m[] = "From: a@b.c\r\n\r\nx\r\n\r\ny\r\n";
    uint8_t h2[DKIM_HASH_LEN];
    dkim_body_hash(m, sizeof m - 1, h);
    buf b;
    buf_init(&b, 1 << 10);
    assert_int_equal(dkim_canon_body("x\r\n\r\ny\r\n", 8, &b), 0);
    assert_string_equal(b.data, "x\r\n\r\ny\r\n");
    assert_int_equal(EVP_Digest(b.data, b.len, h2, NULL, EVP_sha256(), NULL), 1);
    assert_memory_equal(h, h2, sizeof h);
    buf_free(&b);
}

/* ---- RFC 8463 Appendix A ---------------------------------------------------------------- */

static const char rfc_ed_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";   /* the A.1 seed nWGxne/9...uf2A= as PKCS#8 */

static const char rfc_rsa_pem[] =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\n"
    "Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM\n"
    "KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n"
    "AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm\n"
    "6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe\n"
    "zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy\n"
    "6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc\n"
    "uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy\n"
    "WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd\n"
    "WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a\n"
    "licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst\n"
    "o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe\n"
    "uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL\n"
    "-----END RSA PRIVATE KEY-----\n";

static const char rfc_msg[] =
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n"
    "\r\n";

static void b64_of(const uint8_t *p, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

static void test_rfc8463_body_hash(void **state)
{
    uint8_t h[DKIM_HASH_LEN];
    char b64[64];
    dkim_body_hash(rfc_msg, sizeof rfc_msg - 1, h);
    b64_of(h, sizeof h, b64);
    assert_string_equal(b64, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
}

/* h=from : to : subject : date : message-id : from : subject : date, bottom-up: each
 * existing field once, the repeated names add nothing; then the signature field. */
static void rfc_signed_data(const char *sig_field, buf *data)
{
    static const char *const fields[] = {
        "From: Joe SixPack <joe@football.example.com>\r\n",
        "To: Suzie Q <suzie@shopping.example.net>\r\n",
        "Subject: Is dinner ready?\r\n",
        "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n",
        "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n",
    };
    for (size_t i = 0; i < N_ELEMS(fields); i++)
        assert_int_equal(dkim_canon_header(fields[i], strlen(fields[i]), data), 0);
    assert_int_equal(dkim_canon_header(sig_field, strlen(sig_field), data), 0);
    data->len -= 2;   /* the signature field without its CRLF */
}

static void check_rfc_signature(const char *pem, const char *sig_field, const char *want_b)
{
    char err[200];
    dkim_key *k = dkim_key_load_pem(pem, strlen(pem), err, sizeof err);
    assert_non_null(k);
    buf data, sig;
    buf_init(&data, 1 << 16);
    buf_init(&sig, 1 << 16);
    rfc_signed_data(sig_field, &data);
    assert_int_equal(dkim_sign_data(k, data.data, data.len, &sig, err, sizeof err), 0);
    assert_string_equal(sig.data, want_b);
    buf_free(&data);
    buf_free(&sig);
    dkim_key_free(k);
}

static void test_rfc8463_ed25519(void **state)
{
    char err[200];
    dkim_key *k = dkim_key_load_pem(rfc_ed_pem, strlen(rfc_ed_pem), err, sizeof err);
    assert_non_null(k);
    assert_int_equal(dkim_key_alg(k), DKIM_ED25519);
    buf pub;
    buf_init(&pub, 1 << 10);
    assert_int_equal(dkim_key_public_b64(k, &pub), 0);
    assert_string_equal(pub.data, "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
    buf_free(&pub);
    dkim_key_free(k);
    check_rfc_signature(rfc_ed_pem,
                        "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
                        " d=football.example.com; i=@football.example.com;\r\n"
                        " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
                        " subject : date : message-id : from : subject : date;\r\n"
                        " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
                        " b=\r\n",
                        "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus"
                        "Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==");
}

static void test_rfc8463_rsa(void **state)
{
    char err[200];
    dkim_key *k = dkim_key_load_pem(rfc_rsa_pem, strlen(rfc_rsa_pem), err, sizeof err);
    assert_non_null(k);
    assert_int_equal(dkim_key_alg(k), DKIM_RSA);
    buf pub;
    buf_init(&pub, 1 << 10);
    assert_int_equal(dkim_key_public_b64(k, &pub), 0);
    assert_string_equal(pub.data,
                        "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bd"
                        "OKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4h"
                        "stT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB");
    buf_free(&pub);
    dkim_key_free(k);
    check_rfc_signature(rfc_rsa_pem,
                        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
                        " d=football.example.com; i=@football.example.com;\r\n"
                        " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
                        " date : message-id : from : subject : date;\r\n"
                        " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
                        " b=\r\n",
                        "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3"
                        "DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz"
                        "dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=");
}

/* ---- dkim_sign end to end --------------------------------------------------------------- */

static const char msg2[] =
    "From: Shop <orders@shop.example>\r\n"
    "To: a@example.com\r\n"
    "X-Other: not signed\r\n"
    "subject: Two\r\n"
    "  folded\t words  \r\n"
    "TO: b@example.com\r\n"
    "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
    "Message-ID: <m2@shop.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "List-Unsubscribe: <https://posthorn.example/u/t>\r\n"
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    "\r\n"
    ".leading dot\r\n"
    "spaces   in   a   line   \r\n"
    "\r\n"
    "\r\n";

/* The header without b='s value, the value, and the h= text, cut out of the output. */
static void split_sig(const char *hdr, buf *without_b, buf *b64, buf *h)
{
    const char *b = strstr(hdr, " b=");
    if (!b)
        b = strstr(hdr, "\tb=");
    assert_non_null(b);
    assert_int_equal(buf_append(without_b, hdr, (size_t)(b - hdr) + 3), 0);
    for (const char *p = b + 3; *p; p++)
        if (*p != '\r' && *p != '\n' && *p != '\t' && *p != ' ')
            assert_int_equal(buf_append(b64, p, 1), 0);
    const char *hp = strstr(hdr, "h=");
    assert_non_null(hp);
    for (const char *p = hp + 2; *p != ';'; p++)
        if (*p != '\r' && *p != '\n' && *p != '\t' && *p != ' ')
            assert_int_equal(buf_append(h, p, 1), 0);
}

static void verify_with_openssl(const dkim_key *k, const char *pem, const char *hdr)
{
    (void)k;
    buf nob, b64, h, data;
    buf_init(&nob, 1 << 16);
    buf_init(&b64, 1 << 16);
    buf_init(&h, 1 << 16);
    buf_init(&data, 1 << 16);
    split_sig(hdr, &nob, &b64, &h);
    assert_string_equal(h.data, "From:From:To:To:Subject:Subject:Date:Message-ID:MIME-Version:"
                                "Content-Type:List-Unsubscribe:List-Unsubscribe-Post");
    /* Bottom-up: the second To first. */
    static const char *const order[] = {
        "From: Shop <orders@shop.example>\r\n", "TO: b@example.com\r\n",
        "To: a@example.com\r\n", "subject: Two\r\n  folded\t words  \r\n",
        "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n", "Message-ID: <m2@shop.example>\r\n",
        "MIME-Version: 1.0\r\n", "Content-Type: text/plain; charset=utf-8\r\n",
        "List-Unsubscribe: <https://posthorn.example/u/t>\r\n",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
    };
    for (size_t i = 0; i < N_ELEMS(order); i++)
        assert_int_equal(dkim_canon_header(order[i], strlen(order[i]), &data), 0);
    assert_int_equal(dkim_canon_header(nob.data, nob.len, &data), 0);
    data.len -= 2;

    uint8_t sig[1024];
    int siglen = EVP_DecodeBlock(sig, (const unsigned char *)b64.data, (int)b64.len);
    assert_true(siglen > 0);
    while (b64.len && b64.data[b64.len - 1] == '=') {
        siglen--;
        b64.len--;
    }
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(pk);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok;
    if (EVP_PKEY_is_a(pk, "ED25519")) {
        uint8_t dg[32];
        assert_int_equal(EVP_Digest(data.data, data.len, dg, NULL, EVP_sha256(), NULL), 1);
        ok = EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1 &&
             EVP_DigestVerify(md, sig, (size_t)siglen, dg, sizeof dg) == 1;
    } else {
        ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1 &&
             EVP_DigestVerify(md, sig, (size_t)siglen, (const uint8_t *)data.data, data.len) == 1;
    }
    assert_true(ok);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
    buf_free(&nob);
    buf_free(&b64);
    buf_free(&h);
    buf_free(&data);
}

static void check_folded(const char *hdr)
{
    assert_true(strncmp(hdr, "DKIM-Signature: v=1; a=", 23) == 0);
    size_t n = strlen(hdr);
    assert_true(n > 2 && hdr[n - 2] == '\r' && hdr[n - 1] == '\n');
    const char *line = hdr;
    for (const char *p = hdr; *p; p++) {
        if (*p == '\r') {
            assert_int_equal(p[1], '\n');
            assert_true(p - line <= 78);
            line = p + 2;
            p++;
            if (*line)
                assert_true(*line == '\t');
        } else {
            assert_true(*p != '\n');
        }
    }
    const char *b = strstr(hdr, " b=") ? strstr(hdr, " b=") : strstr(hdr, "\tb=");
    assert_non_null(b);
    assert_null(strchr(b, ';'));   /* b= last */
    assert_null(strstr(hdr, "l="));
    assert_non_null(strstr(hdr, "t=1767225600;"));
    assert_non_null(strstr(hdr, "c=relaxed/relaxed;"));
}

static void test_sign_verify(void **state)
{
    for (int alg = DKIM_RSA; alg <= DKIM_ED25519; alg++) {
        buf pem, pub, hdr;
        buf_init(&pem, 1 << 16);
        buf_init(&pub, 1 << 16);
        buf_init(&hdr, 1 << 16);
        char err[200];
        assert_int_equal(dkim_keygen(alg, &pem, &pub, err, sizeof err), 0);
        dkim_key *k = dkim_key_load_pem(pem.data, pem.len, err, sizeof err);
        assert_non_null(k);
        assert_int_equal(dkim_key_alg(k), alg);
        if (alg == DKIM_RSA)
            assert_true(pub.len > 390);   /* 2048-bit SPKI */
        else
            assert_int_equal(pub.len, 44);
        dkim_signer s = {.domain = "shop.example", .selector = "s1", .key = k};
        assert_int_equal(dkim_sign(&s, msg2, sizeof msg2 - 1, NULL, 1767225600, &hdr, err,
                                   sizeof err), 0);
        check_folded(hdr.data);
        assert_non_null(strstr(hdr.data, alg == DKIM_RSA ? "a=rsa-sha256;" : "a=ed25519-sha256;"));
        verify_with_openssl(k, pem.data, hdr.data);

        /* A precomputed body hash gives the same field. */
        uint8_t bh[DKIM_HASH_LEN];
        dkim_body_hash(msg2, sizeof msg2 - 1, bh);
        buf hdr2;
        buf_init(&hdr2, 1 << 16);
        assert_int_equal(dkim_sign(&s, msg2, sizeof msg2 - 1, bh, 1767225600, &hdr2, err,
                                   sizeof err), 0);
        if (alg == DKIM_ED25519)
            assert_string_equal(hdr.data, hdr2.data);   /* deterministic */
        buf_free(&hdr2);
        buf_free(&pem);
        buf_free(&pub);
        buf_free(&hdr);
        dkim_key_free(k);
    }
}

static void test_sign_refusals(void **state)
{
    char err[200];
    dkim_key *k = dkim_key_load_pem(rfc_ed_pem, strlen(rfc_ed_pem), err, sizeof err);
    assert_non_null(k);
    static const struct { const char *msg, *domain, *selector; } cases[] = {
        {"To: a@b.c\r\n\r\nhi\r\n", "shop.example", "s1"},             /* no From */
        {" From: a@b.c\r\n\r\nhi\r\n", "shop.example", "s1"},           /* continuation first */
        {"From: a@b.c\r\nno colon\r\n\r\nhi\r\n", "shop.example", "s1"},
        {"\r\nFrom: a@b.c\r\n", "shop.example", "s1"},                  /* no header */
        {"From: a@b.c\r\n\r\n", "shop;example", "s1"},
        {"From: a@b.c\r\n\r\n", "shop.example", "s 1"},
        {"From: a@b.c\r\n\r\n", "", "s1"},
    };
    buf hdr;
    buf_init(&hdr, 1 << 16);
    assert_int_equal(buf_appendz(&hdr, "keep"), 0);
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        dkim_signer s = {.domain = cases[i].domain, .selector = cases[i].selector, .key = k};
        err[0] = '\0';
        assert_int_equal(dkim_sign(&s, cases[i].msg, strlen(cases[i].msg), NULL, 1, &hdr, err,
                                   sizeof err), -1);
        assert_true(err[0] != '\0');
        assert_string_equal(hdr.data, "keep");
    }
    /* A full output buffer is an error, and leaves it as it was. */
    buf small;
    buf_init(&small, 100);
    dkim_signer s = {.domain = "shop.example", .selector = "s1", .key = k};
    assert_int_equal(dkim_sign(&s, msg2, sizeof msg2 - 1, NULL, 1, &small, err, sizeof err), -1);
    assert_int_equal(small.len, 0);
    buf_free(&small);
    buf_free(&hdr);
    dkim_key_free(k);

    static const char *const bad_keys[] = {
        "", "not a key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    };
    for (size_t i = 0; i < N_ELEMS(bad_keys); i++)
        assert_null(dkim_key_load_pem(bad_keys[i], strlen(bad_keys[i]), err, sizeof err));
    /* An EC key is a valid PEM key but not a DKIM one. */
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(ec);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, ec, NULL, NULL, 0, NULL, NULL), 1);
    char *p;
    long pl = BIO_get_mem_data(bio, &p);
    assert_null(dkim_key_load_pem(p, (size_t)pl, err, sizeof err));
    assert_non_null(strstr(err, "neither"));
    BIO_free(bio);
    EVP_PKEY_free(ec);
    buf a, b;
    buf_init(&a, 1 << 16);
    buf_init(&b, 1 << 16);
    assert_int_equal(dkim_keygen(99, &a, &b, err, sizeof err), -1);
    buf_free(&a);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6376_example),
        cmocka_unit_test(test_relaxed_body),
        cmocka_unit_test(test_relaxed_header),
        cmocka_unit_test(test_body_hash_empty),
        cmocka_unit_test(test_rfc8463_body_hash),
        cmocka_unit_test(test_rfc8463_ed25519),
        cmocka_unit_test(test_rfc8463_rsa),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_sign_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
