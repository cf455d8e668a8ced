/* smtp/bounce.h - bounce classification: which kind of failure an SMTP reply (or a local
 * reason the engine produced with code 0) describes, from an ordered, versioned rules file
 * (etc/bounce-rules.conf is built in; POSTHORN_BOUNCE_RULES names an override; the format
 * is in docs/bounce-rules.md). Rules match on the reply code, the enhanced status code and
 * case-insensitive substrings of the text; the first matching rule wins. The classifier
 * takes text from remote servers: it never allocates, and its work is bounded by the
 * bounds on rules and on the text it looks at (BOUNCE_TEXT_MAX). */
#ifndef POSTHORN_SMTP_BOUNCE_H
#define POSTHORN_SMTP_BOUNCE_H
#include <stddef.h>

typedef enum {
    BOUNCE_HARD,          /* the address does not exist or will never work: suppress it */
    BOUNCE_SOFT,          /* a mailbox condition that may pass: full, over quota, too large */
    BOUNCE_BLOCK,         /* the sender, IP or content was refused: spam, policy, blocklist,
                           * reputation, DMARC/SPF/DKIM, rate limiting */
    BOUNCE_UNDETERMINED   /* no rule matched, or a rule said so explicitly */
} bounce_class;

typedef struct bounce_rules bounce_rules;

#define BOUNCE_TEXT_MAX 4096   /* bytes of reply text the classifier looks at */

/* path NULL or "" -> the shipped etc/bounce-rules.conf (embedded). NULL and a message with
 * the file name and line number in err on a bad or unreadable file. */
bounce_rules *bounce_rules_load(const char *path, char *err, size_t errlen);
/* The same from bytes in memory (tests, fuzzing); name is used in error messages. */
bounce_rules *bounce_rules_parse(const char *data, size_t len, const char *name, char *err,
                                 size_t errlen);
void bounce_rules_free(bounce_rules *r);
/* The "version N" of the file, as written (digits). */
const char *bounce_rules_version(const bounce_rules *r);
/* Number of rules loaded. */
size_t bounce_rules_count(const bounce_rules *r);

/* code: the reply code (0 for a local reason); enhanced: "5.1.1", or NULL/"" in which case
 * an enhanced code opening the text (after an optional "550 " or "550-") is used; text may
 * be NULL. The first matching rule wins; *rule (rule may be NULL) gets its id, or NULL when
 * no rule matched (the class is then BOUNCE_UNDETERMINED). */
bounce_class bounce_classify(const bounce_rules *r, int code, const char *enhanced,
                             const char *text, const char **rule);
/* "hard" "soft" "block" "undetermined" */
const char *bounce_class_name(bounce_class c);
#endif
