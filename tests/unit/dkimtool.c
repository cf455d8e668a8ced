/* tests/unit/dkimtool.c - lib/dkim from the command line, for the oracle test
 * (tests/e2e/test_dkim_oracle.py). Not a unit test: `make unit` builds it and does not run it.
 *
 *   dkimtool sign KEY.pem DOMAIN SELECTOR TIMESTAMP [KEY.pem DOMAIN SELECTOR]... < msg
 *       writes the message with one DKIM-Signature per key prepended (the body hash is
 *       computed once and shared, as the render stage does)
 *   dkimtool keygen rsa|ed25519 KEY.pem
 *       writes a new private key to KEY.pem and its p= value to stdout
 *   dkimtool pub KEY.pem
 *       writes the p= value of an existing key
 * Exit 0, or 2 with a reason on stderr. */
#include "lib/buf.h"
#include "lib/dkim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIGNERS 8

static _Noreturn void bail(const char *what, const char *why)
{
    fprintf(stderr, "dkimtool: %s: %s\n", what, why);
    exit(2);
}

static void read_all(FILE *f, buf *b, const char *what)
{
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (buf_append(b, tmp, n) != 0)
            bail(what, "too large");
    if (ferror(f))
        bail(what, strerror(errno));
}

static dkim_key *load_key(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        bail(path, strerror(errno));
    buf b;
    buf_init(&b, 1 << 20);
    read_all(f, &b, path);
    fclose(f);
    char err[200];
    dkim_key *k = dkim_key_load_pem(b.data ? b.data : "", b.len, err, sizeof err);
    buf_free(&b);
    if (!k)
        bail(path, err);
    return k;
}

static int cmd_keygen(int argc, char **argv)
{
    if (argc != 4)
        bail("usage", "dkimtool keygen rsa|ed25519 KEY.pem");
    int alg = strcmp(argv[2], "rsa") == 0 ? DKIM_RSA
              : strcmp(argv[2], "ed25519") == 0 ? DKIM_ED25519 : 0;
    if (!alg)
        bail("keygen", "algorithm must be rsa or ed25519");
    buf pem, pub;
    buf_init(&pem, 1 << 16);
    buf_init(&pub, 1 << 16);
    char err[200];
    if (dkim_keygen(alg, &pem, &pub, err, sizeof err) != 0)
        bail("keygen", err);
    FILE *f = fopen(argv[3], "wb");
    if (!f || fwrite(pem.data, 1, pem.len, f) != pem.len || fclose(f) != 0)
        bail(argv[3], strerror(errno));
    printf("%s\n", pub.data);
    buf_free(&pem);
    buf_free(&pub);
    return 0;
}

static int cmd_pub(int argc, char **argv)
{
    if (argc != 3)
        bail("usage", "dkimtool pub KEY.pem");
    dkim_key *k = load_key(argv[2]);
    buf pub;
    buf_init(&pub, 1 << 16);
    if (dkim_key_public_b64(k, &pub) != 0)
        bail("pub", "too large");
    printf("%s\n", pub.data);
    buf_free(&pub);
    dkim_key_free(k);
    return 0;
}

static int cmd_sign(int argc, char **argv)
{
    /* sign KEY DOMAIN SELECTOR TIMESTAMP [KEY DOMAIN SELECTOR]... */
    if (argc < 6 || (argc - 6) % 3 != 0 || (argc - 3) / 3 > MAX_SIGNERS)
        bail("usage", "dkimtool sign KEY.pem DOMAIN SELECTOR TIMESTAMP [KEY.pem DOMAIN SELECTOR]...");
    char *end;
    errno = 0;
    long long ts = strtoll(argv[5], &end, 10);
    if (errno || *end || end == argv[5])
        bail("timestamp", "not an integer");
    dkim_signer s[MAX_SIGNERS];
    dkim_key *keys[MAX_SIGNERS];
    size_t ns = 0;
    for (int i = 2; i < argc; i += (i == 2 ? 4 : 3)) {
        keys[ns] = load_key(argv[i]);
        s[ns] = (dkim_signer){.domain = argv[i + 1], .selector = argv[i + 2], .key = keys[ns]};
        ns++;
    }
    buf msg, hdr;
    buf_init(&msg, (size_t)64 << 20);
    buf_init(&hdr, 1 << 20);
    read_all(stdin, &msg, "stdin");
    const char *m = msg.data ? msg.data : "";
    uint8_t bh[DKIM_HASH_LEN];
    dkim_body_hash(m, msg.len, bh);
    char err[200];
    for (size_t i = 0; i < ns; i++)
        if (dkim_sign(&s[i], m, msg.len, bh, ts, &hdr, err, sizeof err) != 0)
            bail("sign", err);
    if (hdr.len)
        fwrite(hdr.data, 1, hdr.len, stdout);
    fwrite(m, 1, msg.len, stdout);
    buf_free(&msg);
    buf_free(&hdr);
    for (size_t i = 0; i < ns; i++)
        dkim_key_free(keys[i]);
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "sign") == 0)
        return cmd_sign(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
        return cmd_keygen(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "pub") == 0)
        return cmd_pub(argc, argv);
    bail("usage", "dkimtool sign|keygen|pub ...");
}
