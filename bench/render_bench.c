/* bench/render_bench.c - the render stage's CPU cost per message on one thread, for the
 * `render` bench scenario (bench/scenarios/render.py; `make build/rel/bench/render_bench`).
 *
 * What worker/render.c does for each message with a stored template and a signing domain,
 * through the same library calls: the template (subject + a 10 KB html body with 10
 * variables) is compiled once; then for every message, with that message's data: render
 * subject and html (html-escaped), html2text for the text part (html-only content), mime_build,
 * dkim_body_hash once, dkim_sign, and the signature + message copied into the buffer handed
 * to delivery (sign_into). Keys come from dkim_keygen and dkim_key_load_pem, as the worker
 * loads them.
 *
 *   render_bench [--alg rsa|ed25519|none] [--seconds S] [--emit DIR]
 *
 * Runs for S seconds (wall clock) and prints one JSON object: messages, elapsed and CPU
 * seconds (user + system, this process), messages per CPU second (what `openssl speed`
 * reports: it divides by CPU time) and per wall-clock second, the bytes of the template
 * and of a signed message, and the wall-clock microseconds per message in each step. --emit writes the last signed
 * message (DIR/message.eml) and the key's p= value (DIR/public.txt) for a verifier.
 * Exit 0, or 2 with a reason on stderr. */
#include "lib/buf.h"
#include "lib/dkim.h"
#include "lib/html2text.h"
#include "lib/mime.h"
#include "lib/template.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define HTML_BYTES  10240u
#define NDATA       256u            /* distinct data objects, used in turn */
#define MSG_MAX     (40u * 1024 * 1024)

enum { ST_RENDER, ST_TEXT, ST_MIME, ST_BODYHASH, ST_SIGN, ST_COPY, ST_N };
static const char *const stage_names[ST_N] = {
    "render_subject_html", "html2text", "mime_build", "body_hash", "dkim_sign", "copy_out"};

static _Noreturn void bail(const char *what, const char *why)
{
    fprintf(stderr, "render_bench: %s: %s\n", what, why);
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A receipt of exactly HTML_BYTES bytes with ten {{variables}}, the way ESP templates look:
 * a styled table layout, then paragraphs of boilerplate to the size. */
static void make_html(buf *b)
{
    static const char head[] =
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Your receipt</title>"
        "<style>body{font-family:Arial,sans-serif;color:#222}td{padding:4px 8px}"
        ".muted{color:#888;font-size:12px}</style></head><body>"
        "<table width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"max-width:640px\">"
        "<tr><td><h1>Thank you, {{name}}!</h1>"
        "<p>Your order <strong>{{order_id}}</strong> of {{date}} has been received.</p>"
        "<table style=\"border:1px solid #ddd\"><tr><td>Total</td><td>{{total}}</td></tr>"
        "<tr><td>Ship to</td><td>{{street}}<br>{{zip}} {{city}}</td></tr>"
        "<tr><td>Account</td><td>{{email}}</td></tr></table>"
        "<p><a href=\"{{tracking_url}}\">Track your parcel</a></p>"
        "<p>Your code for next time: <code>{{coupon}}</code></p>";
    static const char filler[] =
        "<p class=\"muted\">We are preparing your items for shipping and will write again "
        "when the parcel leaves our warehouse. Returns are free within 30 days: reply to this "
        "message or visit the help centre, where you will also find our terms of sale and "
        "privacy notice.</p>";
    static const char tail[] = "</td></tr></table></body></html>";
    buf_appendz(b, head);
    while (b->len + sizeof filler - 1 + sizeof tail - 1 <= HTML_BYTES)
        buf_appendz(b, filler);
    while (b->len + sizeof tail - 1 < HTML_BYTES)
        buf_appendz(b, " ");
    buf_appendz(b, tail);
}

static json_t *make_data(unsigned i)
{
    char name[64], order[32], date[32], total[32], street[64], zip[16], email[64], url[96],
         coupon[32];
    snprintf(name, sizeof name, "Customer %u & Sons", i);
    snprintf(order, sizeof order, "A-%06u", 100000 + i * 7);
    snprintf(date, sizeof date, "2026-11-%02u", 1 + i % 28);
    snprintf(total, sizeof total, "EUR %u.%02u", 10 + i % 90, i % 100);
    snprintf(street, sizeof street, "%u Rue de l'Église", 1 + i % 120);
    snprintf(zip, sizeof zip, "%05u", 75000 + i % 20);
    snprintf(email, sizeof email, "customer%u@example.com", i);
    snprintf(url, sizeof url, "https://track.example.com/p/%08x?lang=fr&ref=mail", i * 2654435761u);
    snprintf(coupon, sizeof coupon, "SAVE-%04X", i * 40503u & 0xffff);
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "name", name,
                          "order_id", order, "date", date, "total", total, "street", street,
                          "city", "Paris", "zip", zip, "email", email, "tracking_url", url,
                          "coupon", coupon);
    if (!d)
        bail("data", "json_pack failed");
    return d;
}

static void write_file(const char *dir, const char *name, const char *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        bail(path, strerror(errno));
}

int main(int argc, char **argv)
{
    const char *alg_name = "rsa", *emit = NULL;
    double seconds = 5.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--alg") == 0 && i + 1 < argc)
            alg_name = argv[++i];
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--emit") == 0 && i + 1 < argc)
            emit = argv[++i];
        else
            bail("usage", "render_bench [--alg rsa|ed25519|none] [--seconds S] [--emit DIR]");
    }
    int alg = strcmp(alg_name, "rsa") == 0 ? DKIM_RSA
              : strcmp(alg_name, "ed25519") == 0 ? DKIM_ED25519 : 0;
    if (!alg && strcmp(alg_name, "none") != 0)
        bail("--alg", "must be rsa, ed25519 or none");
    if (!(seconds > 0 && seconds < 3600))
        bail("--seconds", "must be between 0 and 3600");

    char err[512];
    dkim_key *key = NULL;
    buf pem, pub;
    buf_init(&pem, 1 << 16);
    buf_init(&pub, 1 << 16);
    if (alg) {
        if (dkim_keygen(alg, &pem, &pub, err, sizeof err) != 0)
            bail("keygen", err);
        key = dkim_key_load_pem(pem.data, pem.len, err, sizeof err);
        if (!key)
            bail("key", err);
    }
    dkim_signer signer = {"shop.example", "bench", key};

    buf src;
    buf_init(&src, TPL_MAX_BYTES);
    make_html(&src);
    static const char subject_src[] = "Your order {{order_id}}, {{name}}";
    tpl *t_html = tpl_compile(src.data, src.len, NULL, err, sizeof err);
    tpl *t_subj = tpl_compile(subject_src, sizeof subject_src - 1, NULL, err, sizeof err);
    if (!t_html || !t_subj)
        bail("template", err);
    json_t *data[NDATA];
    for (unsigned i = 0; i < NDATA; i++)
        data[i] = make_data(i);

    mime_addr to = {"customer@example.net", "A Customer"};
    double stage[ST_N] = {0};
    unsigned long n = 0;
    size_t last_len = 0;
    char *last = NULL;
    double cpu0 = cpu_s(), t0 = now_s(), t = t0, end = t0 + seconds;
    while (t < end) {
        const json_t *d = data[n % NDATA];
        buf subj, html, text, msg, out;
        buf_init(&subj, MIME_HEADER_VALUE_MAX);
        buf_init(&html, MSG_MAX);
        buf_init(&text, MSG_MAX);
        buf_init(&msg, MSG_MAX);
        buf_init(&out, MSG_MAX + 16384);
        double a = t, b;
        if (tpl_render_compiled(t_subj, d, 0, 0, NULL, NULL, &subj, err, sizeof err) != 0 ||
            tpl_render_compiled(t_html, d, 1, 0, NULL, NULL, &html, err, sizeof err) != 0)
            bail("render", err);
        b = now_s(), stage[ST_RENDER] += b - a, a = b;
        if (html2text(html.data, html.len, &text) != 0)
            bail("html2text", "output too large");
        b = now_s(), stage[ST_TEXT] += b - a, a = b;

        char mid[MIME_MESSAGE_ID_MAX];
        snprintf(mid, sizeof mid, "<msg_%016lx@shop.example>", n);
        mime_message mm;
        memset(&mm, 0, sizeof mm);
        mm.from = (mime_addr){"orders@shop.example", "Shop"};
        mm.to = &to;
        mm.nto = 1;
        mm.subject = subj.data;
        mm.text = text.data;
        mm.text_len = text.len;
        mm.html = html.data;
        mm.html_len = html.len;
        mm.message_id = mid;
        mm.date_unix = 1795000000;
        if (mime_build(&mm, &msg, err, sizeof err) != 0)
            bail("mime", err);
        b = now_s(), stage[ST_MIME] += b - a, a = b;

        if (alg) {
            uint8_t bh[DKIM_HASH_LEN];
            dkim_body_hash(msg.data, msg.len, bh);
            b = now_s(), stage[ST_BODYHASH] += b - a, a = b;
            if (dkim_sign(&signer, msg.data, msg.len, bh, 1795000000, &out, err, sizeof err) != 0)
                bail("dkim_sign", err);
            b = now_s(), stage[ST_SIGN] += b - a, a = b;
        }
        if (buf_append(&out, msg.data, msg.len) != 0)
            bail("copy", "message too large");
        b = now_s(), stage[ST_COPY] += b - a;
        t = b;
        n++;
        buf_free(&subj);
        buf_free(&html);
        buf_free(&text);
        buf_free(&msg);
        if (t >= end) {
            free(last);
            last = buf_steal(&out, &last_len);
        }
        buf_free(&out);
    }
    double elapsed = t - t0, cpu = cpu_s() - cpu0;

    if (emit && last) {
        write_file(emit, "message.eml", last, last_len);
        write_file(emit, "public.txt", pub.data ? pub.data : "", pub.len);
    }
    json_t *st = json_object();
    for (int i = 0; i < ST_N; i++)
        json_object_set_new(st, stage_names[i], json_real(n ? stage[i] / (double)n * 1e6 : 0));
    json_t *res = json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:I, s:I, s:i, s:I, s:o}",
                            "alg", alg_name, "messages", (json_int_t)n, "elapsed_s", elapsed,
                            "cpu_s", cpu, "msgs_per_cpu_s", cpu > 0 ? (double)n / cpu : 0.0,
                            "msgs_per_s", elapsed > 0 ? (double)n / elapsed : 0.0,
                            "template_bytes", (json_int_t)src.len,
                            "subject_template_bytes", (json_int_t)(sizeof subject_src - 1),
                            "variables", 10, "message_bytes", (json_int_t)last_len,
                            "us_per_message", st);
    char *txt = json_dumps(res, JSON_COMPACT);
    printf("%s\n", txt);
    free(txt);
    json_decref(res);
    free(last);
    for (unsigned i = 0; i < NDATA; i++)
        json_decref(data[i]);
    tpl_free(t_html);
    tpl_free(t_subj);
    buf_free(&src);
    buf_free(&pem);
    buf_free(&pub);
    dkim_key_free(key);
    return 0;
}
