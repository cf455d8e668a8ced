/* Unit tests of smtp/bounce.c: the shipped rules against a corpus of real-world replies,
 * the rules file syntax and its errors, and the path override. */
#include "tests/unit/unit.h"

#include "smtp/bounce.h"

#include <fcntl.h>
#include <unistd.h>

#define H BOUNCE_HARD
#define S BOUNCE_SOFT
#define B BOUNCE_BLOCK
#define U BOUNCE_UNDETERMINED

/* Replies as providers send them (IPs and hosts replaced); enhanced "" means the session
 * found none apart from the text. */
static const struct {
    int          code;
    const char  *enhanced;
    const char  *text;
    bounce_class want;
} corpus[] = {
    /* Gmail */
    {550, "5.1.1", "5.1.1 The email account that you tried to reach does not exist. Please try\n"
                   "5.1.1 double-checking the recipient's email address for typos or\n"
                   "5.1.1 unnecessary spaces. Learn more at\n"
                   "5.1.1  https://support.google.com/mail/?p=NoSuchUser a640c23a62f3a-a7a3bb6a3d5si1.256 - gsmtp", H},
    {421, "4.7.28", "4.7.28 [192.0.2.1      15] Our system has detected an unusual rate of\n"
                    "4.7.28 unsolicited mail originating from your IP address. To protect our\n"
                    "4.7.28 users from spam, mail sent from your IP address has been temporarily\n"
                    "4.7.28 rate limited. Please visit\n"
                    "4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError - gsmtp", B},
    {550, "5.7.26", "5.7.26 This mail is unauthenticated, which poses a security risk to the\n"
                    "5.7.26 sender and Gmail users, and has been blocked. The sender must\n"
                    "5.7.26 authenticate with at least one of SPF or DKIM. - gsmtp", B},
    {550, "5.7.26", "5.7.26 Unauthenticated email from example.com is not accepted due to domain's\n"
                    "5.7.26 DMARC policy. Please contact the administrator of example.com domain", B},
    {452, "4.2.2", "4.2.2 The email account that you tried to reach is over quota. Please direct\n"
                   "4.2.2 the recipient to\n"
                   "4.2.2  https://support.google.com/mail/?p=OverQuotaTemp - gsmtp", S},
    {550, "5.2.1", "5.2.1 The email account that you tried to reach is disabled. Learn more at\n"
                   "5.2.1  https://support.google.com/mail/?p=DisabledUser - gsmtp", H},
    {552, "5.2.3", "5.2.3 Your message exceeded Google's message size limits. Please visit\n"
                   "5.2.3  https://support.google.com/mail/?p=MaxSizeError to view our size\n"
                   "5.2.3 guidelines. - gsmtp", S},
    {550, "5.7.1", "5.7.1 [192.0.2.1] Our system has detected that this message is\n"
                   "5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail,\n"
                   "5.7.1 this message has been blocked. - gsmtp", B},
    {421, "4.7.0", "4.7.0 [192.0.2.1] Our system has detected an unusual rate of\n"
                   "4.7.0 unsolicited mail originating from your IP address. - gsmtp", B},
    /* Microsoft */
    {550, "5.7.708", "5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. "
                     "For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653 "
                     "AS(830) [DM6NAM12FT013.eop-nam12.prod.protection.outlook.com]", B},
    {550, "5.5.0", "Requested action not taken: mailbox unavailable (S2017062302). "
                   "[AM4PEPF00027A6C.eurprd04.prod.outlook.com]", H},
    {550, "5.1.10", "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", H},
    {550, "5.4.1", "5.4.1 Recipient address rejected: Access denied. For more information see "
                   "https://aka.ms/EXOSmtpErrors [BN1NAM02FT052.eop-nam02.prod.protection.outlook.com]", H},
    {550, "5.7.1", "5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
                   "Internet service provider since part of their network is on our block list (S3150). "
                   "You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.", B},
    {451, "4.7.650", "4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP "
                     "reputation. For e-mail delivery information, see https://postmaster.live.com (S775)", B},
    {550, "5.7.520", "5.7.520 Access denied, Your organization does not allow external forwarding.", B},
    {554, "5.2.2", "5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded", S},
    {550, "5.7.509", "5.7.509 Access denied, sending domain example.com does not pass DMARC verification "
                     "and has a DMARC policy of reject.", B},
    {550, "", "5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus. To request "
              "removal from this list see https://www.spamhaus.org/query/ip/192.0.2.1 (AS3130).", B},
    /* Yahoo / AOL */
    {421, "4.7.0", "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume "
                   "or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", B},
    {421, "4.7.0", "4.7.0 [TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will "
                   "NOT succeed. See https://postmaster.yahooinc.com/error-codes", B},
    {554, "", "delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) [0] - "
              "mta1234.mail.bf1.yahoo.com", H},
    {554, "", "delivery error: dd Not a valid recipient - atlas123.free.mail.bf1.yahoo.com", H},
    {553, "5.7.1", "5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is in "
                   "Spamhaus's list; see http://postmaster.yahoo.com/550-bl23.html", B},
    {554, "5.7.9", "5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes", B},
    {552, "", "1 Requested mail action aborted, mailbox not found", H},
    /* Apple iCloud, Comcast, Orange, Mail.ru */
    {550, "5.1.1", "5.1.1 <bob@icloud.com>: user does not exist", H},
    {554, "5.7.1", "5.7.1 [CS01] Message rejected due to local policy. Please visit "
                   "https://support.apple.com/en-us/HT204137", B},
    {554, "5.7.1", "5.7.1 resimta-po-12v.sys.comcast.net comcast 192.0.2.1 Comcast block for spam. "
                   "Please see http://postmaster.comcast.net/smtp-error-codes.php#BL000000", B},
    {550, "5.1.1", "5.1.1 <bob@comcast.net> Not our Customer", H},
    {550, "5.7.1", "5.7.1 Service refused, please contact the helpdesk OFR004_104 [104]", B},
    {550, "", "Message was not accepted -- invalid mailbox. Local mailbox bob@mail.ru is unavailable: "
              "account is disabled", H},
    /* Blocklists, authentication, rate limiting */
    {554, "5.7.1", "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; "
                   "https://www.spamhaus.org/query/ip/192.0.2.1", B},
    {550, "5.7.1", "5.7.1 Message rejected as spam", B},
    {550, "5.7.1", "5.7.1 Email rejected per DMARC policy for example.com", B},
    {550, "5.7.23", "5.7.23 The message was rejected because of Sender Policy Framework violation", B},
    {550, "", "SPF check failed", B},
    {421, "", "Too many concurrent SMTP connections from this IP address; please try again later.", B},
    {550, "", "5.7.1 Your message was rejected by the recipient's spam filter", B},
    {550, "5.7.1", "Client host rejected: cannot find your reverse hostname, [192.0.2.1]", B},
    /* Our sender address */
    {450, "4.1.8", "<s@nx.example>: Sender address rejected: Domain not found", B},
    {553, "5.1.8", "5.1.8 <s@nx.example>: Sender address rejected: Domain not found", B},
    {550, "", "Sender verify failed", B},
    /* The recipient does not exist */
    {550, "5.1.1", "5.1.1 User unknown", H},
    {550, "", "No such user", H},
    {550, "", "No such user here", H},
    {550, "5.1.2", "5.1.2 bad destination system/host unknown", H},
    {550, "5.1.1", "<bob@example.org>: Recipient address rejected: User unknown in virtual mailbox table", H},
    {550, "5.1.1", "<bob@example.org>: Recipient address rejected: User unknown in local recipient table", H},
    {550, "", "Unrouteable address", H},
    {550, "", "Requested action not taken: mailbox unavailable", H},
    {550, "", "Mailbox does not exist", H},
    {553, "", "sorry, no mailbox here by that name. (#5.1.1)", H},
    {554, "5.7.1", "<bob@example.org>: Relay access denied", H},
    {550, "5.1.6", "5.1.6 Recipient addresses in this domain no longer accepted", H},
    {550, "5.1.1", "<bob@example.org>: Recipient address rejected: User unknown (in reply to RCPT TO "
                   "command) - filter01.spamexperts.com", H},
    {550, "", "550 5.1.1 No such recipient here. Barracuda Networks", H},
    /* Mailbox full, too large */
    {552, "5.2.2", "5.2.2 Mailbox full", S},
    {452, "4.2.2", "4.2.2 The email account that you tried to reach is over quota.", S},
    {552, "5.3.4", "5.3.4 Message size exceeds fixed limit", S},
    {552, "", "Requested mail action aborted: exceeded storage allocation", S},
    {550, "", "Mailbox quota exceeded", S},
    {552, "", "Message too large", S},
    {550, "5.2.1", "5.2.1 Mailbox temporarily unable to accept messages", S},
    /* Local reasons (code 0) */
    {0, "5.1.10", "example.com has a null MX (RFC 7505): it accepts no mail", H},
    {0, "5.1.2", "example.com: no such domain", H},
    {0, "5.3.4", "message larger than the SIZE limit the server announced", S},
    {0, "5.6.7", "the recipient needs SMTPUTF8 and the server does not offer it", U},
    /* Nothing to go on */
    {450, "4.2.0", "<bob@example.org>: Recipient address rejected: Greylisted, see "
                   "http://postgrey.schweikert.ch/help/example.org.html", U},
    {451, "4.7.1", "Greylisting in action, please come back later", U},
    {452, "4.5.3", "4.5.3 Too many recipients", U},
    {554, "5.4.14", "5.4.14 Hop count exceeded - possible mail loop ATTR34", U},
    {451, "4.3.0", "4.3.0 Temporary System Problem. Try again later", U},
    {554, "", "mail server permanently rejected message (#5.3.0)", U},
    {550, "", "Access denied", U},
    {550, "", "Administrative prohibition", U},
    {421, "", "Service not available, closing transmission channel", U},
    {450, "4.1.1", "<bob@example.org>: Recipient address rejected: unverified address: host "
                   "mx.example.org[192.0.2.2] said: 550 5.1.1 user unknown", U},
};

static bounce_rules *shipped(void)
{
    char err[256];
    bounce_rules *r = bounce_rules_load(NULL, err, sizeof err);
    if (!r)
        fail_msg("shipped rules: %s", err);
    return r;
}

static void test_corpus(void **state)
{
    bounce_rules *r = shipped();
    assert_true(N_ELEMS(corpus) >= 40);
    int bad = 0;
    for (size_t i = 0; i < N_ELEMS(corpus); i++) {
        const char *rule = "unset";
        bounce_class got = bounce_classify(r, corpus[i].code, corpus[i].enhanced,
                                           corpus[i].text, &rule);
        if (got != corpus[i].want) {
            print_error("corpus[%zu] %d %s \"%.60s...\": %s (rule %s), want %s\n", i,
                        corpus[i].code, corpus[i].enhanced, corpus[i].text,
                        bounce_class_name(got), rule ? rule : "(none)",
                        bounce_class_name(corpus[i].want));
            bad++;
        }
        /* a class other than undetermined always names its rule */
        if (got != BOUNCE_UNDETERMINED && !rule)
            bad++;
    }
    assert_int_equal(bad, 0);
    bounce_rules_free(r);
}

static void test_shipped(void **state)
{
    bounce_rules *r = shipped();
    assert_string_equal(bounce_rules_version(r), "1");
    assert_true(bounce_rules_count(r) > 20);
    const char *rule = NULL;
    assert_int_equal(bounce_classify(r, 550, "5.1.1", "5.1.1 user unknown", &rule), BOUNCE_HARD);
    assert_string_equal(rule, "enh-no-such-mailbox");
    assert_int_equal(bounce_classify(r, 550, "", "No such user", &rule), BOUNCE_HARD);
    assert_string_equal(rule, "no-such-user");
    assert_int_equal(bounce_classify(r, 0, "5.6.7", "x", &rule), BOUNCE_UNDETERMINED);
    assert_string_equal(rule, "local-smtputf8");
    assert_int_equal(bounce_classify(r, 250, "2.0.0", "ok", &rule), BOUNCE_UNDETERMINED);
    assert_null(rule);
    /* NULL text and enhanced, odd codes, NULL rule pointer */
    assert_int_equal(bounce_classify(r, 550, NULL, NULL, NULL), BOUNCE_UNDETERMINED);
    assert_int_equal(bounce_classify(r, -1, "5.1.1", NULL, NULL), BOUNCE_HARD);
    assert_int_equal(bounce_classify(r, 123456, "", "user unknown", NULL), BOUNCE_UNDETERMINED);
    assert_int_equal(bounce_classify(NULL, 550, "5.1.1", "", &rule), BOUNCE_UNDETERMINED);
    assert_null(rule);
    bounce_rules_free(r);
    bounce_rules_free(NULL);
}

static void test_class_names(void **state)
{
    assert_string_equal(bounce_class_name(BOUNCE_HARD), "hard");
    assert_string_equal(bounce_class_name(BOUNCE_SOFT), "soft");
    assert_string_equal(bounce_class_name(BOUNCE_BLOCK), "block");
    assert_string_equal(bounce_class_name(BOUNCE_UNDETERMINED), "undetermined");
    assert_string_equal(bounce_class_name((bounce_class)42), "undetermined");
}

static bounce_rules *parse(const char *s, char *err, size_t errlen)
{
    return bounce_rules_parse(s, strlen(s), "t.conf", err, errlen);
}

/* The matching semantics, on a small file. */
static void test_matching(void **state)
{
    char err[256];
    bounce_rules *r = parse(
        "# comment\n"
        "\n"
        "version 7   # trailing comment\n"
        "rule star block text=\"messages from * deferred\"\n"
        "rule both hard code=550,551 enhanced=5.1.* text=\"unknown\" text=\"no such\"\n"
        "rule wild soft code=55x\n"
        "rule five undetermined code=5xx\n"
        "rule enh block enhanced=*.7.*\n"
        "rule local hard code=0\n"
        "rule esc hard text=\"say \\\"hi\\\" \\\\ now\"\n",
        err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    assert_string_equal(bounce_rules_version(r), "7");
    assert_int_equal(bounce_rules_count(r), 7);
    const char *id;
    /* '*' spans anything; case and white space runs do not matter */
    assert_int_equal(bounce_classify(r, 421, "", "MESSAGES  from 1.2.3.4\n\ttemporarily DEFERRED", &id), B);
    assert_string_equal(id, "star");
    assert_int_equal(bounce_classify(r, 421, "", "deferred messages from x", &id), U);
    assert_null(id);
    /* all keys must match; values of one key are alternatives */
    assert_int_equal(bounce_classify(r, 551, "5.1.3", "No Such mailbox", &id), H);
    assert_string_equal(id, "both");
    assert_int_equal(bounce_classify(r, 550, "5.2.1", "no such mailbox", &id), S);
    assert_string_equal(id, "wild");
    assert_int_equal(bounce_classify(r, 553, "5.1.1", "gone", &id), S);
    assert_int_equal(bounce_classify(r, 504, "5.1.1", "unknown", &id), U);
    assert_string_equal(id, "five");
    /* the enhanced code is taken from the text when the argument has none */
    assert_int_equal(bounce_classify(r, 550, NULL, "550-5.1.1 unknown", &id), H);
    assert_int_equal(bounce_classify(r, 550, "", "5.1.1 unknown", &id), H);
    assert_int_equal(bounce_classify(r, 550, "", "5.1.1x unknown", &id), S);
    assert_int_equal(bounce_classify(r, 421, "", "421 4.7.0 try later", &id), B);
    assert_string_equal(id, "enh");
    /* a given enhanced code wins over the text's */
    assert_int_equal(bounce_classify(r, 421, "4.2.0", "4.7.0 try later", &id), U);
    assert_int_equal(bounce_classify(r, 0, "", "", &id), H);
    assert_string_equal(id, "local");
    assert_int_equal(bounce_classify(r, 250, "", "Say \"HI\" \\ now", &id), H);
    assert_string_equal(id, "esc");
    bounce_rules_free(r);
}

/* Reply text past BOUNCE_TEXT_MAX is not looked at. */
static void test_long_text(void **state)
{
    char err[256];
    bounce_rules *r = parse("version 1\nrule x hard text=\"needle\"\n", err, sizeof err);
    assert_non_null(r);
    size_t n = 3 * BOUNCE_TEXT_MAX;
    char *t = malloc(n + 1);
    assert_non_null(t);
    memset(t, 'a', n);
    t[n] = '\0';
    memcpy(t + 10, "needle", 6);
    assert_int_equal(bounce_classify(r, 550, "", t, NULL), H);
    memset(t, ' ', n);   /* only white space: normalised to nothing */
    memcpy(t + 10, "needle", 6);
    assert_int_equal(bounce_classify(r, 550, "", t, NULL), H);
    memset(t, 'a', n);
    memcpy(t + BOUNCE_TEXT_MAX + 10, "needle", 6);
    assert_int_equal(bounce_classify(r, 550, "", t, NULL), U);
    free(t);
    bounce_rules_free(r);
}

static void test_load_errors(void **state)
{
    static const struct { const char *text; const char *want; } cases[] = {
        {"", "t.conf: no version line"},
        {"# only a comment\n", "t.conf: no version line"},
        {"rule a hard code=550\nversion 1\n", "t.conf:1: rule before the version line"},
        {"version 1\nversion 2\n", "t.conf:2: second version line"},
        {"version 0\n", "t.conf:1: version wants a positive integer"},
        {"version x1\n", "t.conf:1: version wants a positive integer"},
        {"version\n", "t.conf:1: version wants a positive integer"},
        {"version 1 2\n", "t.conf:1: unexpected \"2\" after version"},
        {"version 1\nbogus line\n", "t.conf:2: unknown directive \"bogus\" (version, rule)"},
        {"version 1\n\nrule a hardest code=550\n", "t.conf:3: unknown class \"hardest\""},
        {"version 1\nrule a\n", "t.conf:2: rule a without a class"},
        {"version 1\nrule\n", "t.conf:2: rule without an id"},
        {"version 1\nrule A hard code=550\n", "t.conf:2: bad rule id \"A\""},
        {"version 1\nrule a hard\n", "t.conf:2: rule a has no condition"},
        {"version 1\nrule a hard code=550\nrule a soft code=552\n", "t.conf:3: duplicate rule id \"a\""},
        {"version 1\nrule a hard colour=red\n", "t.conf:2: unknown key \"colour\""},
        {"version 1\nrule a hard code\n", "t.conf:2: expected key=value, got \"code\""},
        {"version 1\nrule a hard code=\n", "t.conf:2: empty code="},
        {"version 1\nrule a hard code=650\n", "t.conf:2: bad code= value \"650\""},
        {"version 1\nrule a hard code=5x0\n", "t.conf:2: bad code= value \"5x0\""},
        {"version 1\nrule a hard code=5500\n", "t.conf:2: bad code= value \"5500\""},
        {"version 1\nrule a hard code=550,,551\n", "t.conf:2: bad code= value \"\""},
        {"version 1\nrule a hard enhanced=5.1\n", "t.conf:2: bad enhanced= value \"5.1\""},
        {"version 1\nrule a hard enhanced=3.1.1\n", "t.conf:2: bad enhanced= value \"3.1.1\""},
        {"version 1\nrule a hard enhanced=5.1.1000\n", "t.conf:2: bad enhanced= value \"5.1.1000\""},
        {"version 1\nrule a hard enhanced=5.1.1x\n", "t.conf:2: bad enhanced= value \"5.1.1x\""},
        {"version 1\nrule a hard text=\"abc\n", "t.conf:2: unterminated quote"},
        {"version 1\nrule a hard text=\"a\\nb\"\n", "t.conf:2: bad escape"},
        {"version 1\nrule a hard text=\"*\"\n", "t.conf:2: text= must contain something"},
        {"version 1\nrule a hard text=\n", "t.conf:2: text= must contain something"},
        {"version 1\nrule a hard text=\"a\x01\"\n", "t.conf:2: control character in line"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char err[256] = "";
        bounce_rules *r = parse(cases[i].text, err, sizeof err);
        if (r)
            fail_msg("case %zu accepted: %s", i, cases[i].text);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("case %zu: error \"%s\", want \"%s...\"", i, err, cases[i].want);
    }
    /* bounds: 33 text= values, 17 codes, a NUL byte, a line past 4096 bytes */
    char big[8192];
    size_t n = (size_t)snprintf(big, sizeof big, "version 1\nrule a hard");
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, " text=t%d", i);
    char err[256];
    assert_null(parse(big, err, sizeof err));
    assert_non_null(strstr(err, "more than 32 text="));
    n = (size_t)snprintf(big, sizeof big, "version 1\nrule a hard code=");
    for (int i = 0; i < 17; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s55%d", i ? "," : "", i % 10);
    assert_null(parse(big, err, sizeof err));
    assert_non_null(strstr(err, "more than 16 code="));
    static const char nul[] = "version 1\nrule a hard code=550\0\n";
    assert_null(bounce_rules_parse(nul, sizeof nul - 1, "t.conf", err, sizeof err));
    assert_string_equal(err, "t.conf:2: NUL byte in line");
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "version 1\n", 10);
    big[sizeof big - 1] = '\0';
    assert_null(parse(big, err, sizeof err));
    assert_string_equal(err, "t.conf:2: line longer than 4096 bytes");
    /* NULL err is allowed */
    assert_null(parse("bogus\n", NULL, 0));
}

static void test_path_override(void **state)
{
    char path[] = "/tmp/posthorn-bounce-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char body[] = "version 42\nrule only soft code=5xx\n";
    assert_int_equal(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    close(fd);
    char err[256];
    bounce_rules *r = bounce_rules_load(path, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    assert_string_equal(bounce_rules_version(r), "42");
    const char *id;
    assert_int_equal(bounce_classify(r, 550, "5.1.1", "user unknown", &id), BOUNCE_SOFT);
    assert_string_equal(id, "only");
    bounce_rules_free(r);
    /* a bad file names itself and the line */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    static const char bad[] = "version 1\nrule only sometimes code=5xx\n";
    assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
    close(fd);
    assert_null(bounce_rules_load(path, err, sizeof err));
    char want[128];
    snprintf(want, sizeof want, "%s:2: unknown class", path);
    assert_true(strncmp(err, want, strlen(want)) == 0);
    unlink(path);
    assert_null(bounce_rules_load(path, err, sizeof err));
    assert_non_null(strstr(err, "No such file"));
    /* "" is the shipped file, like NULL */
    r = bounce_rules_load("", err, sizeof err);
    assert_non_null(r);
    assert_string_equal(bounce_rules_version(r), "1");
    bounce_rules_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_shipped),
        cmocka_unit_test(test_class_names),
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_long_text),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_path_override),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
