/* Fuzz target: smtp/bounce.c bounce_classify with the shipped rules on replies taken from
 * the input (the text a remote server sends us), and bounce_rules_parse on the input as a
 * rules file. The first two bytes choose the reply code; the rest is the text, optionally
 * preceded by an enhanced code up to the first space. Every answer is one of the classes. */
#include "tests/fuzz/fuzz.h"

#include "smtp/bounce.h"

#include <stdlib.h>
#include <string.h>

static bounce_rules *shipped;

static void check_class(bounce_class c)
{
    CHECK(c == BOUNCE_HARD || c == BOUNCE_SOFT || c == BOUNCE_BLOCK || c == BOUNCE_UNDETERMINED);
    CHECK(bounce_class_name(c) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (!shipped) {
        shipped = bounce_rules_load(NULL, err, sizeof err);
        CHECK(shipped != NULL);
    }
    if (size < 2)
        return 0;
    int code = (data[0] | data[1] << 8) % 700;
    char *text = malloc(size - 1);
    CHECK(text != NULL);
    memcpy(text, data + 2, size - 2);
    text[size - 2] = '\0';
    char enh[16] = "";
    const char *sp = memchr(text, ' ', strlen(text));
    if (sp && (size_t)(sp - text) < sizeof enh) {
        memcpy(enh, text, (size_t)(sp - text));
        enh[sp - text] = '\0';
    }
    const char *rule = NULL;
    check_class(bounce_classify(shipped, code, enh, text, &rule));
    check_class(bounce_classify(shipped, code, "", text, NULL));
    free(text);

    memset(err, 0, sizeof err);
    bounce_rules *r = bounce_rules_parse((const char *)data, size, "fuzz", err, sizeof err);
    if (!r) {
        CHECK(strncmp(err, "fuzz", 4) == 0);
        return 0;
    }
    check_class(bounce_classify(r, 550, "5.1.1", "user unknown", NULL));
    bounce_rules_free(r);
    return 0;
}
