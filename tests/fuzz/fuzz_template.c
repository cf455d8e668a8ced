/* Fuzz target: lib/template.c, the Mustache compiler and renderer. Each input is compiled
 * (tpl_check must agree) and rendered twice, plain and html-escaped strict, against fixed
 * data, with partials resolving to fixed templates and to the input itself ("self"), so
 * recursion through partials is exercised. Invariants: errors are non-empty and
 * NUL-terminated, output never passes the buf's maximum. */
#include "tests/fuzz/fuzz.h"

#include "lib/template.h"

#include <string.h>

static json_t *data;
static tpl    *fixed[3];
static const char *const FIXED_NAMES[] = {"row", "list", "loop"};
static const char *const FIXED_SRC[] = {
    "<li>{{name}} {{& html}}</li>\n",
    "{{#items}}\n  {{>row}}\n{{/items}}\n",
    "{{#a}}{{>loop}}{{/a}}",
};

typedef struct {
    const tpl *self;
} fuzz_ctx;

static int resolve(void *ctx, const char *name, size_t len, const tpl **out, char *err,
                   size_t errlen)
{
    fuzz_ctx *fc = ctx;
    *out = NULL;
    if (len == 4 && memcmp(name, "self", 4) == 0) {
        *out = fc->self;
        return 0;
    }
    if (len == 4 && memcmp(name, "fail", 4) == 0) {
        snprintf(err, errlen, "resolver failed");
        return -1;
    }
    for (size_t i = 0; i < 3; i++)
        if (strlen(FIXED_NAMES[i]) == len && memcmp(FIXED_NAMES[i], name, len) == 0)
            *out = fixed[i];
    return 0;
}

static void init(void)
{
    json_error_t jerr;
    data = json_loads("{\"name\": \"Ann\", \"html\": \"<b>&'\\\"</b>\", \"n\": 3, \"r\": 1.5,"
                      " \"t\": true, \"f\": false, \"z\": null, \"e\": \"\", \"a\": {\"a\": {}},"
                      " \"items\": [{\"name\": \"x\"}, {\"name\": \"y\", \"items\": [1, 2]}],"
                      " \"dyn\": \"row\", \"me\": \"self\", \"o\": {\"p\": {\"q\": \"deep\"}}}",
                      0, &jerr);
    CHECK(data != NULL);
    char err[256];
    for (size_t i = 0; i < 3; i++) {
        fixed[i] = tpl_compile(FIXED_SRC[i], strlen(FIXED_SRC[i]), NULL, err, sizeof err);
        CHECK(fixed[i] != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (!data)
        init();
    const char *src = (const char *)in;
    char err[256], cerr[256];
    memset(err, 'X', sizeof err);
    tpl_opts opts = {.max_steps = 200000};   /* keeps each input fast */
    tpl *t = tpl_compile(src, size, &opts, err, sizeof err);
    int crc = tpl_check(src, size, cerr, sizeof cerr);
    CHECK((t != NULL) == (crc == 0));
    if (!t) {
        CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        CHECK(strcmp(err, cerr) == 0);
        return 0;
    }
    fuzz_ctx fc = {t};
    buf out;
    buf_init(&out, 1 << 16);
    for (int mode = 0; mode < 2; mode++) {
        buf_reset(&out);
        memset(err, 'X', sizeof err);
        int rc = tpl_render_compiled(t, data, mode, mode, resolve, &fc, &out, err, sizeof err);
        CHECK(out.len <= out.max);
        CHECK(memchr(err, '\0', sizeof err) != NULL);
        CHECK(rc == 0 ? err[0] == '\0' : err[0] != '\0');
        /* rendering is deterministic */
        if (rc == 0) {
            buf again;
            buf_init(&again, 1 << 16);
            CHECK(tpl_render_compiled(t, data, mode, mode, resolve, &fc, &again, err,
                                      sizeof err) == 0);
            CHECK(again.len == out.len && memcmp(again.data ? again.data : "",
                                                 out.data ? out.data : "", out.len) == 0);
            buf_free(&again);
        }
    }
    buf_free(&out);
    tpl_free(t);
    return 0;
}
