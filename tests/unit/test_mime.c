/* Unit tests of lib/mime.c: exact output for small messages (headers, RFC 2047 words,
 * quoted-printable), the wire rules for every shape (CRLF only, 7-bit, lines <= 998, header
 * lines folded at 78, body lines <= 76), the MIME structure per shape, boundaries, the
 * custom-header and header-value checks and message ids. The independent
 * oracle (Python's email package) is tests/e2e/test_mime_oracle.py. */
#include "tests/unit/unit.h"

#include "lib/buf.h"
#include "lib/crypto.h"
#include "lib/mime.h"

#define DATE 1767225600LL   /* Thu, 01 Jan 2026 00:00:00 +0000 */

static const mime_addr FROM = {"orders@shop.example", "Shop"};
static const mime_addr ANN = {"ann@example.com", "Ann"};

static mime_message base_message(void)
{
    mime_message m = {0};
    m.from = FROM;
    m.to = &ANN;
    m.nto = 1;
    m.subject = "Hello";
    m.message_id = "<m1@shop.example>";
    m.date_unix = DATE;
    return m;
}

static char *build_ok(const mime_message *m, size_t *len)
{
    buf b;
    char err[200] = "";
    buf_init(&b, (size_t)64 << 20);
    if (mime_build(m, &b, err, sizeof err) != 0)
        fail_msg("mime_build: %s", err);
    return buf_steal(&b, len);
}

static const char *HDRS =
    "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
    "From: Shop <orders@shop.example>\r\n"
    "To: Ann <ann@example.com>\r\n"
    "Subject: Hello\r\n"
    "Message-ID: <m1@shop.example>\r\n"
    "MIME-Version: 1.0\r\n";

/* --- wire rules, checked on every message built below ----------------------------------- */

/* CRLF only, lines <= 998, 7-bit (except a line starting with allow8), header lines <= 78
 * unless they hold a single unbreakable word, body lines <= 76. Returns the line count. */
static size_t check_wire(const char *s, size_t n, const char *allow8)
{
    size_t lines = 0, i = 0;
    int in_header = 1;
    assert_true(n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n');
    while (i < n) {
        const char *cr = memchr(s + i, '\r', n - i);
        assert_non_null(cr);
        assert_true(cr + 1 < s + n && cr[1] == '\n');
        size_t len = (size_t)(cr - (s + i));
        const char *ln = s + i;
        if (memchr(ln, '\n', len))
            fail_msg("bare LF in line %zu", lines);
        if (len > 998)
            fail_msg("line %zu has %zu octets", lines, len);
        for (size_t k = 0; k < len; k++)
            if ((unsigned char)ln[k] >= 0x80 && !(allow8 && strncmp(ln, allow8, strlen(allow8)) == 0))
                fail_msg("8-bit octet in line %zu: %.*s", lines, (int)len, ln);
        if (in_header) {
            if (len == 0) {
                in_header = 0;
            } else if (len > 78 && !allow8) {
                const char *v = ln[0] == ' ' ? ln + 1 : memchr(ln, ':', len) + 2;
                if (memchr(v, ' ', len - (size_t)(v - ln)))
                    fail_msg("header line of %zu octets: %.*s", len, (int)len, ln);
            }
        } else if (len >= 6 && memcmp(ln, "--=_ph", 6) == 0) {
            in_header = !(len >= 2 && ln[len - 1] == '-' && ln[len - 2] == '-');
        } else if (len > 76) {
            fail_msg("body line of %zu octets: %.*s", len, (int)len, ln);
        }
        lines++;
        i += len + 2;
    }
    return lines;
}

/* The Content-Type values in order of appearance, joined by ',' (parameters dropped). */
static void content_types(const char *s, char *out, size_t max)
{
    size_t k = 0;
    out[0] = '\0';
    for (const char *p = s; (p = strstr(p, "Content-Type: ")) != NULL; p += 14) {
        if (p != s && p[-1] != '\n')
            continue;
        const char *v = p + 14;
        size_t l = strcspn(v, ";\r");
        assert_true(k + l + 2 < max);
        if (k)
            out[k++] = ',';
        memcpy(out + k, v, l);
        k += l;
        out[k] = '\0';
    }
}

/* --- exact output ------------------------------------------------------------------------ */

typedef struct {
    const char *text;
    size_t      len;    /* 0: strlen */
    const char *body;   /* the QP body of a single-part message */
} qp_case;

static void test_single_part_exact(void **state)
{
    static const qp_case cases[] = {
        {"Hi Ann", 0, "Hi Ann=\r\n"},
        {"Hi Ann\n", 0, "Hi Ann\r\n"},
        {"Hi Ann\r\n", 0, "Hi Ann\r\n"},
        {"a\rb\nc\r\nd", 0, "a\r\nb\r\nc\r\nd=\r\n"},
        {"\n\r\n\r", 0, "\r\n\r\n\r\n"},
        {"a \nb\t\n=\n", 0, "a=20\r\nb=09\r\n=3D\r\n"},
        {"", 0, ""},
        {"\xc3\xa9t\xc3\xa9", 0, "=C3=A9t=C3=A9=\r\n"},
        {"tab\there", 0, "tab\there=\r\n"},
        {"end ", 0, "end=20=\r\n"},
        {".\n.x\n", 0, ".\r\n.x\r\n"},
        {"nul\0byte", 8, "nul=00byte=\r\n"},
        {"From me\n", 0, "From me\r\n"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const qp_case *c = &cases[i];
        const char *want_body = c->body;
        mime_message m = base_message();
        m.text = c->text;
        m.text_len = c->len ? c->len : strlen(c->text);
        size_t n;
        char *got = build_ok(&m, &n);
        check_wire(got, n, NULL);
        char want[512];
        snprintf(want, sizeof want,
                 "%sContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: quoted-printable\r\n\r\n%s",
                 HDRS, want_body);
        assert_string_equal(got, want);
        free(got);
    }
}

static void test_qp_line_lengths(void **state)
{
    char text[400], want[600];
    size_t n;
    /* 76 characters and a newline: one line; 77: soft break after 75 */
    memset(text, 'x', 76);
    memcpy(text + 76, "\n", 2);
    mime_message m = base_message();
    m.text = text;
    m.text_len = strlen(text);
    char *got = build_ok(&m, &n);
    snprintf(want, sizeof want, "\r\n\r\n%.76s\r\n", text);
    assert_non_null(strstr(got, want));
    free(got);

    memset(text, 'x', 77);
    memcpy(text + 77, "\n", 2);
    m.text_len = strlen(text);
    got = build_ok(&m, &n);
    snprintf(want, sizeof want, "\r\n\r\n%.75s=\r\nxx\r\n", text);
    assert_non_null(strstr(got, want));
    free(got);

    /* at the very end of a single part the soft break needs its column too */
    memset(text, 'x', 76);
    text[76] = '\0';
    m.text_len = 76;
    got = build_ok(&m, &n);
    snprintf(want, sizeof want, "\r\n\r\n%.75s=\r\nx=\r\n", text);
    assert_non_null(strstr(got, want));
    check_wire(got, n, NULL);
    free(got);

    /* encoded octets are never split by a soft break */
    for (size_t i = 0; i < 120; i++)
        text[i] = (i % 2) ? (char)0xa9 : (char)0xc3;
    m.text_len = 120;
    got = build_ok(&m, &n);
    check_wire(got, n, NULL);
    for (const char *p = strstr(got, "\r\n\r\n") + 4; *p; p = strstr(p, "\r\n") + 2) {
        size_t l = strcspn(p, "\r");
        if (l && p[l - 1] == '=')
            assert_int_equal((l - 1) % 3, 0);   /* whole =XX triplets before the soft break */
    }
    free(got);
}

typedef struct {
    const char *subject;
    const char *want;   /* the Subject header as written */
} subject_case;

static void test_subject_encoding(void **state)
{
    static const subject_case cases[] = {
        {"Hello", "Subject: Hello\r\n"},
        {"", "Subject:\r\n"},
        {"Gr\xc3\xbc\xc3\x9f" "e", "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"},   /* B: shorter */
        {"Caf\xc3\xa9 au lait", "Subject: =?UTF-8?Q?Caf=C3=A9_au_lait?=\r\n"},  /* Q: shorter */
        {"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", "Subject: =?UTF-8?B?4oKs4oKs4oKs?=\r\n"},
        {"=?utf-8?q?x?=", "Subject: =?UTF-8?B?PT91dGYtOD9xP3g/PQ==?=\r\n"},
        {" lead", "Subject: =?UTF-8?Q?_lead?=\r\n"},
        {"a  b", "Subject: =?UTF-8?Q?a__b?=\r\n"},
        {"100% sure: yes (really)", "Subject: 100% sure: yes (really)\r\n"},
        {"one two three four five six seven eight nine ten eleven twelve thirteen fourteen",
         "Subject: one two three four five six seven eight nine ten eleven twelve\r\n"
         " thirteen fourteen\r\n"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        mime_message m = base_message();
        m.subject = cases[i].subject;
        m.text = "t";
        m.text_len = 1;
        size_t n;
        char *got = build_ok(&m, &n);
        check_wire(got, n, NULL);
        const char *s = strstr(got, "\r\nSubject:") + 2;
        const char *e = strstr(s, "\r\nMessage-ID:") + 2;
        if ((size_t)(e - s) != strlen(cases[i].want) || memcmp(s, cases[i].want, (size_t)(e - s)))
            fail_msg("case %zu: got %.*s want %s", i, (int)(e - s), s, cases[i].want);
        free(got);
    }
}

static void test_long_headers_fold(void **state)
{
    char subj[1000];
    size_t k = 0;
    /* 499 x "ü" = 998 octets, the limit */
    for (int i = 0; i < 499; i++)
        subj[k++] = (char)0xc3, subj[k++] = (char)0xbc;
    subj[k] = '\0';
    mime_message m = base_message();
    m.subject = subj;
    m.text = "t";
    m.text_len = 1;
    static const char *const names[] = {"X-Long", "X-LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL"
                                                   "LLLLLLLLLLLLLLLLLLLLLLLLLLLLLL"};
    const char *values[] = {subj, "Gr\xc3\xbc\xc3\x9f" "e"};
    m.hdr_names = names;
    m.hdr_values = values;
    m.nhdrs = 2;
    size_t n;
    char *got = build_ok(&m, &n);
    size_t lines = check_wire(got, n, NULL);
    assert_true(lines > 30);
    /* every encoded-word <= 75 characters */
    for (const char *p = got; (p = strstr(p, "=?UTF-8?")) != NULL;) {
        const char *e = strstr(p + 10, "?=");
        assert_non_null(e);
        assert_true(e + 2 - p <= 75);
        p = e + 2;
    }
    /* a 76-character header name leaves no room: the word goes on its line anyway */
    assert_non_null(strstr(got, "LLLL: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"));
    free(got);

    /* 999 octets: refused */
    subj[k++] = 'x';
    subj[k] = '\0';
    buf b;
    char err[200];
    buf_init(&b, 1 << 20);
    m.nhdrs = 0;
    assert_int_equal(mime_build(&m, &b, err, sizeof err), -1);
    assert_string_equal(err, "subject: invalid header value");
    buf_free(&b);
}

typedef struct {
    const char *name;
    const char *email;
    const char *want;   /* the To header as written */
} to_case;

static void test_address_headers(void **state)
{
    static const to_case cases[] = {
        {"Ann", "ann@example.com", "To: Ann <ann@example.com>\r\n"},
        {NULL, "ann@example.com", "To: ann@example.com\r\n"},
        {"", "ann@example.com", "To: ann@example.com\r\n"},
        {"Doe, Ann", "ann@example.com", "To: \"Doe, Ann\" <ann@example.com>\r\n"},
        {"J. Doe", "j@example.com", "To: \"J. Doe\" <j@example.com>\r\n"},
        {"a\"b\\c", "j@example.com", "To: \"a\\\"b\\\\c\" <j@example.com>\r\n"},
        {"Ann  Lee", "j@example.com", "To: \"Ann  Lee\" <j@example.com>\r\n"},
        {"J\xc3\xb6rg", "j@example.com", "To: =?UTF-8?B?SsO2cmc=?= <j@example.com>\r\n"},
        {"Zo\xc3\xab Smith", "j@example.com", "To: =?UTF-8?Q?Zo=C3=AB_Smith?= <j@example.com>\r\n"},
        {"=?utf-8?q?x?=", "j@example.com", "To: =?UTF-8?B?PT91dGYtOD9xP3g/PQ==?= <j@example.com>\r\n"},
        {"Ann", "\"john doe\"@example.com", "To: Ann <\"john doe\"@example.com>\r\n"},
        {"J\xc3\xb6rg", "j\xc3\xb6rg@example.com", "To: =?UTF-8?B?SsO2cmc=?= <j\xc3\xb6rg@example.com>\r\n"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        mime_addr to = {cases[i].email, cases[i].name};
        mime_message m = base_message();
        m.to = &to;
        m.text = "t";
        m.text_len = 1;
        size_t n;
        char *got = build_ok(&m, &n);
        check_wire(got, n, (unsigned char)cases[i].email[1] >= 0x80 ? "To: " : NULL);
        const char *s = strstr(got, "\r\nTo:") + 2;
        const char *e = strstr(s, "\r\nSubject:") + 2;
        if ((size_t)(e - s) != strlen(cases[i].want) || memcmp(s, cases[i].want, (size_t)(e - s)))
            fail_msg("case %zu: got %.*s want %s", i, (int)(e - s), s, cases[i].want);
        free(got);
    }
}

static void test_header_order_and_no_bcc(void **state)
{
    mime_addr reply = {"help@shop.example", "Help"};
    mime_addr to[2] = {{"a@example.com", "A"}, {"b@example.com", NULL}};
    mime_addr cc = {"c@example.com", "C"};
    static const char *const names[] = {"X-Campaign", "Precedence"};
    static const char *const values[] = {"spring", "bulk"};
    mime_message m = base_message();
    m.reply_to = &reply;
    m.to = to;
    m.nto = 2;
    m.cc = &cc;
    m.ncc = 1;
    m.hdr_names = names;
    m.hdr_values = values;
    m.nhdrs = 2;
    m.list_unsubscribe = "<https://ph.example/u/TOKEN>";
    m.list_unsubscribe_post = "List-Unsubscribe=One-Click";
    m.text = "t";
    m.text_len = 1;
    size_t n;
    char *got = build_ok(&m, &n);
    check_wire(got, n, NULL);
    assert_string_equal(got,
        "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        "From: Shop <orders@shop.example>\r\n"
        "Reply-To: Help <help@shop.example>\r\n"
        "To: A <a@example.com>, b@example.com\r\n"
        "Cc: C <c@example.com>\r\n"
        "Subject: Hello\r\n"
        "Message-ID: <m1@shop.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "X-Campaign: spring\r\n"
        "Precedence: bulk\r\n"
        "List-Unsubscribe: <https://ph.example/u/TOKEN>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "t=\r\n");
    assert_null(strstr(got, "Bcc"));
    free(got);
}

static void test_many_recipients_fold(void **state)
{
    mime_addr to[50];
    char emails[50][32], names[50][32];
    for (int i = 0; i < 50; i++) {
        snprintf(emails[i], sizeof emails[i], "user%02d@example.com", i);
        snprintf(names[i], sizeof names[i], "User Number %d", i);
        to[i].email = emails[i];
        to[i].name = names[i];
    }
    mime_message m = base_message();
    m.to = to;
    m.nto = 50;
    m.text = "t";
    m.text_len = 1;
    size_t n;
    char *got = build_ok(&m, &n);
    assert_true(check_wire(got, n, NULL) > 20);
    for (int i = 0; i < 50; i++)
        assert_non_null(strstr(got, emails[i]));
    free(got);
}

/* --- structure per shape ----------------------------------------------------------------- */

typedef struct {
    int         text, html;
    const char *atts;    /* per attachment: 'a' attachment, 'i' inline with cid, 'n' inline without */
    const char *want;    /* Content-Types in order */
} shape_case;

static void test_shapes(void **state)
{
    static const shape_case cases[] = {
        {1, 0, "", "text/plain"},
        {0, 1, "", "text/html"},
        {0, 0, "", "text/plain"},
        {1, 1, "", "multipart/alternative,text/plain,text/html"},
        {1, 0, "a", "multipart/mixed,text/plain,application/pdf"},
        {0, 1, "a", "multipart/mixed,text/html,application/pdf"},
        {1, 1, "aa", "multipart/mixed,multipart/alternative,text/plain,text/html,"
                     "application/pdf,application/pdf"},
        {0, 1, "i", "multipart/related,text/html,image/png"},
        {1, 1, "i", "multipart/alternative,text/plain,multipart/related,text/html,image/png"},
        {1, 1, "ia", "multipart/mixed,multipart/alternative,text/plain,multipart/related,"
                     "text/html,image/png,application/pdf"},
        {1, 1, "iai", "multipart/mixed,multipart/alternative,text/plain,multipart/related,"
                      "text/html,image/png,image/png,application/pdf"},
        {1, 0, "i", "multipart/mixed,text/plain,image/png"},      /* no html to relate to */
        {0, 1, "n", "multipart/mixed,text/html,image/png"},       /* inline without cid */
    };
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0xff};
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const shape_case *c = &cases[i];
        mime_attachment att[4];
        size_t na = strlen(c->atts);
        for (size_t j = 0; j < na; j++) {
            memset(&att[j], 0, sizeof att[j]);
            att[j].data = png;
            att[j].len = sizeof png;
            if (c->atts[j] == 'a') {
                att[j].filename = "invoice.pdf";
                att[j].content_type = "application/pdf";
            } else {
                att[j].filename = "logo.png";
                att[j].content_type = "image/png";
                att[j].disposition = "inline";
                att[j].content_id = c->atts[j] == 'i' ? "logo@shop.example" : NULL;
            }
        }
        mime_message m = base_message();
        if (c->text)
            m.text = "Hi\n", m.text_len = 3;
        if (c->html)
            m.html = "<p>Hi <img src=\"cid:logo@shop.example\"></p>", m.html_len = strlen(m.html);
        m.att = att;
        m.natt = na;
        size_t n;
        char *got = build_ok(&m, &n);
        check_wire(got, n, NULL);
        char types[512];
        content_types(got, types, sizeof types);
        if (strcmp(types, c->want) != 0)
            fail_msg("shape %zu: %s, want %s", i, types, c->want);
        if (strchr(c->atts, 'i') && c->html) {
            assert_non_null(strstr(got, "Content-ID: <logo@shop.example>\r\n"));
            assert_non_null(strstr(got, "multipart/related; type=\"text/html\";"));
        }
        free(got);
    }
}

static void test_attachment_encoding(void **state)
{
    unsigned char data[1000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7);
    mime_attachment att[3] = {
        {"r\xc3\xa9sum\xc3\xa9.pdf", "application/pdf", NULL, NULL, data, sizeof data},
        {"plain.txt", NULL, "attachment", NULL, (const unsigned char *)"", 0},
        {"a\"q\".bin", "application/octet-stream", NULL, NULL, data, 1},
    };
    mime_message m = base_message();
    m.text = "t";
    m.text_len = 1;
    m.att = att;
    m.natt = 3;
    size_t n;
    char *got = build_ok(&m, &n);
    check_wire(got, n, NULL);
    assert_non_null(strstr(got, "Content-Type: application/pdf;"
                                " name=\"=?UTF-8?B?csOpc3Vtw6kucGRm?=\"\r\n"));
    assert_non_null(strstr(got, "Content-Disposition: attachment;"
                                " filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"));
    assert_non_null(strstr(got, "Content-Type: application/octet-stream; name=\"plain.txt\"\r\n"
                                "Content-Transfer-Encoding: base64\r\n"
                                "Content-Disposition: attachment; filename=\"plain.txt\"\r\n"
                                "\r\n\r\n--=_ph"));
    assert_non_null(strstr(got, "filename*=utf-8''a%22q%22.bin\r\n"));
    /* base64 of the first attachment: 76-character lines that decode to the data */
    const char *p = strstr(got, "filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n\r\n") + 41;
    const char *e = strstr(p, "\r\n--=_ph");
    char joined[2000];
    size_t jl = 0;
    for (const char *q = p; q < e; q++)
        if (*q != '\r' && *q != '\n')
            joined[jl++] = *q;
    unsigned char back[sizeof data + 8];
    assert_int_equal(crypto_b64_decode(joined, jl, back, sizeof back), sizeof data);
    assert_memory_equal(back, data, sizeof data);
    assert_int_equal(strcspn(p, "\r"), 76);
    free(got);
}

static void test_boundaries(void **state)
{
    mime_attachment att = {"a.bin", NULL, NULL, NULL, (const unsigned char *)"--=_ph0_", 8};
    mime_message m = base_message();
    m.text = "--=_ph0_ --=_ph1_\n";
    m.text_len = strlen(m.text);
    m.html = "<p>=_ph</p>";
    m.html_len = strlen(m.html);
    m.att = &att;
    m.natt = 1;
    char seen[4][64];
    for (int r = 0; r < 2; r++) {
        size_t n;
        char *got = build_ok(&m, &n);
        check_wire(got, n, NULL);
        for (int lvl = 0; lvl < 2; lvl++) {
            char key[32];
            snprintf(key, sizeof key, "boundary=\"=_ph%d_", lvl);
            const char *b = strstr(got, key);
            assert_non_null(b);
            b += 10;
            size_t bl = strcspn(b, "\"");
            assert_int_equal(bl, 6 + 24);
            memcpy(seen[r * 2 + lvl], b, bl);
            seen[r * 2 + lvl][bl] = '\0';
            /* the boundary occurs only in its parameter and on delimiter lines */
            size_t count = 0;
            for (const char *q = got; (q = strstr(q, seen[r * 2 + lvl])) != NULL; q += bl) {
                count++;
                assert_true(q[-1] == '"' || (q[-1] == '-' && q[-2] == '-' && q[-3] == '\n'));
            }
            assert_int_equal(count, 1 + (lvl == 0 ? 3 : 3));
        }
        free(got);
    }
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            assert_string_not_equal(seen[i], seen[j]);
}

/* --- refusals ---------------------------------------------------------------------------- */

static void test_refusals(void **state)
{
    static const char *const bad_names[] = {"Bcc"};
    static const char *const bad_values[] = {"x@example.com"};
    static const char *const ok_names[] = {"X-Ok"};
    static const char *const crlf_values[] = {"a\r\nBcc: x@example.com"};
    static const char *const ew_values[] = {"=?utf-8?q?a=0D=0Ab?="};
    mime_addr bad_to = {"ann@example.com", "Ann\r\nBcc: x@example.com"};
    mime_addr bad_email = {"ann@exa mple.com>", NULL};
    mime_addr ew_to = {"ann@example.com", "=?utf-8?b?YQ0KYg==?="};
    mime_attachment bad_fn = {"a\nb", NULL, NULL, NULL, (const unsigned char *)"x", 1};
    mime_attachment bad_ct = {"a", "text/plain; charset=x", NULL, NULL, (const unsigned char *)"x", 1};
    mime_attachment bad_disp = {"a", NULL, "form-data", NULL, (const unsigned char *)"x", 1};
    mime_attachment bad_cid = {"a", NULL, "inline", "a b", (const unsigned char *)"x", 1};
    for (int i = 0; i < 12; i++) {
        mime_message m = base_message();
        m.text = "t";
        m.text_len = 1;
        const char *want = NULL;
        switch (i) {
        case 0: m.subject = "a\r\nBcc: x"; want = "subject: invalid header value"; break;
        case 1: m.subject = "=?utf-8?q?a=0D=0Ab?="; want = "subject: invalid header value"; break;
        case 2: m.hdr_names = bad_names, m.hdr_values = bad_values, m.nhdrs = 1;
                want = "headers[0]: header must be given through its own field, not in headers"; break;
        case 3: m.hdr_names = ok_names, m.hdr_values = crlf_values, m.nhdrs = 1;
                want = "headers[0]: invalid header value"; break;
        case 4: m.hdr_names = ok_names, m.hdr_values = ew_values, m.nhdrs = 1;
                want = "headers[0]: invalid header value"; break;
        case 5: m.to = &bad_to; want = "to[0]: invalid display name"; break;
        case 6: m.cc = &bad_email, m.ncc = 1; want = "cc[0]: invalid email address"; break;
        case 7: m.reply_to = &ew_to; want = "reply_to[0]: invalid display name"; break;
        case 8: m.att = &bad_fn, m.natt = 1; want = "attachments[0]: invalid filename"; break;
        case 9: m.att = &bad_ct, m.natt = 1; want = "attachments[0]: content_type must be type/subtype"; break;
        case 10: m.att = &bad_disp, m.natt = 1; want = "attachments[0]: disposition must be attachment or inline"; break;
        case 11: m.att = &bad_cid, m.natt = 1; want = "attachments[0]: invalid content_id"; break;
        }
        buf b;
        char err[200] = "";
        buf_init(&b, 1 << 20);
        buf_appendz(&b, "kept");
        assert_int_equal(mime_build(&m, &b, err, sizeof err), -1);
        assert_string_equal(err, want);
        assert_int_equal(b.len, 4);
        assert_string_equal(b.data, "kept");
        buf_free(&b);
    }
}

static void test_output_limit(void **state)
{
    mime_message m = base_message();
    char text[5000];
    memset(text, 'x', sizeof text);
    m.text = text;
    m.text_len = sizeof text;
    buf b;
    char err[200];
    buf_init(&b, 2000);
    buf_appendz(&b, "prefix");
    assert_int_equal(mime_build(&m, &b, err, sizeof err), -1);
    assert_string_equal(err, "message larger than the limit");
    assert_int_equal(b.len, 6);
    assert_string_equal(b.data, "prefix");
    buf_free(&b);
}

static void test_generated_message_id_and_date(void **state)
{
    mime_message m = base_message();
    m.message_id = NULL;
    m.date_unix = 0;
    m.text = "t";
    m.text_len = 1;
    size_t n;
    char *got = build_ok(&m, &n);
    check_wire(got, n, NULL);
    const char *mid = strstr(got, "\r\nMessage-ID: <");
    assert_non_null(mid);
    assert_int_equal(strcspn(mid + 15, "@"), 32);
    assert_int_equal(strncmp(mid + 15 + 32, "@shop.example>\r\n", 16), 0);
    assert_int_equal(strncmp(got, "Date: ", 6), 0);
    assert_non_null(strstr(got, " +0000\r\nFrom: "));
    free(got);
}

/* --- checks ------------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    const char *why;   /* NULL: allowed */
} hname_case;

#define OWN "header must be given through its own field, not in headers"
#define RES "header is reserved (written by Posthorn or the transport)"
#define BADCH "header name must be printable ASCII without ':' or space"

static void test_custom_header_check(void **state)
{
    static const hname_case cases[] = {
        {"X-Campaign", NULL}, {"Precedence", NULL}, {"List-Id", NULL}, {"X-Content-Type", NULL},
        {"Contents", NULL}, {"Received-SPF", NULL}, {"X", NULL}, {"Keywords", NULL},
        {"x!#$%&'*+-.^_`|~0", NULL},
        {"", "empty header name"},
        {"X Bad", BADCH}, {"X:Bad", BADCH}, {"X\x7f", BADCH}, {"X\xc3\xa9", BADCH},
        {"X\tY", BADCH}, {"X\r\nBcc", BADCH},
        {"From", OWN}, {"sender", OWN}, {"REPLY-TO", OWN}, {"To", OWN}, {"cc", OWN},
        {"Bcc", OWN}, {"Subject", OWN}, {"date", OWN}, {"Message-Id", OWN},
        {"In-Reply-To", OWN}, {"references", OWN},
        {"MIME-Version", RES}, {"Content-Type", RES}, {"content-transfer-encoding", RES},
        {"Content-", RES}, {"DKIM-Signature", RES}, {"ARC-Seal", RES},
        {"arc-message-signature", RES}, {"Authentication-Results", RES}, {"Received", RES},
        {"Return-Path", RES}, {"Resent-From", RES}, {"resent-message-id", RES},
        {"List-Unsubscribe", RES}, {"List-Unsubscribe-Post", RES},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const char *why = mime_custom_header_check(cases[i].name, strlen(cases[i].name));
        if (!cases[i].why != !why || (why && strcmp(why, cases[i].why) != 0))
            fail_msg("\"%s\": %s, want %s", cases[i].name, why ? why : "allowed",
                     cases[i].why ? cases[i].why : "allowed");
    }
    char name[80];
    memset(name, 'X', sizeof name);
    assert_null(mime_custom_header_check(name, 76));
    assert_string_equal(mime_custom_header_check(name, 77), "header name longer than 76 characters");
}

static void test_header_value_valid(void **state)
{
    static const struct {
        const char *v;
        int         ok;
    } cases[] = {
        {"spring", 1}, {"", 1}, {"Gr\xc3\xbc\xc3\x9f" "e", 1}, {"=?utf-8?q?ok?=", 1},
        {"a\rb", 0}, {"a\nb", 0}, {"a\tb", 0}, {"\x7f", 0}, {"\xc2\x80", 0}, {"\xff", 0},
        {"\xed\xa0\x80", 0}, {"=?utf-8?q?a=0D=0Ab?=", 0}, {"=?utf-8?b?YQ0KYg==?=", 0},
        {"=?utf-8?B?YQpi?=", 0}, {"x=?us-ascii?Q?=00?=", 0},
        {"=?utf-8?b?YQ==DQo=?=", 0},   /* CRLF after padding, for decoders that go on */
        {"=?utf-8?b?YQ==YQ==?=", 1},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        if (mime_header_value_valid(cases[i].v, strlen(cases[i].v)) != cases[i].ok)
            fail_msg("\"%s\": want %d", cases[i].v, cases[i].ok);
    assert_int_equal(mime_header_value_valid("a\0b", 3), 0);
    char big[1000];
    memset(big, 'v', sizeof big);
    assert_int_equal(mime_header_value_valid(big, 998), 1);
    assert_int_equal(mime_header_value_valid(big, 999), 0);
    assert_int_equal(mime_text_valid(big, 256, 256), 1);
    assert_int_equal(mime_text_valid(big, 257, 256), 0);
    assert_int_equal(mime_utf8_valid("\xf0\x9f\x90\x8d", 4), 1);
    assert_int_equal(mime_utf8_valid("\xf0\x9f\x90", 3), 0);
    assert_int_equal(mime_utf8_valid("\xc1\xbf", 2), 0);
}

static void test_message_id(void **state)
{
    char a[MIME_MESSAGE_ID_MAX], b[MIME_MESSAGE_ID_MAX];
    mime_message_id("shop.example", a);
    mime_message_id("shop.example", b);
    assert_int_equal(strlen(a), 1 + 32 + 1 + 12 + 1);
    assert_int_equal(a[0], '<');
    assert_string_equal(a + 33, "@shop.example>");
    assert_int_equal(strspn(a + 1, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
    mime_message_id("bad domain", a);
    assert_string_equal(a + 33, "@posthorn.invalid>");
    mime_message_id(NULL, a);
    assert_string_equal(a + 33, "@posthorn.invalid>");
    char longd[120];
    memset(longd, 'd', sizeof longd);
    memcpy(longd + 88, ".example", 9);   /* 96 octets: too long for 128 with the rest */
    mime_message_id(longd, a);
    assert_string_equal(a + 33, "@posthorn.invalid>");
    longd[84] = '.';
    memcpy(longd + 85, "example", 8);    /* 92 octets: fits exactly */
    mime_message_id(longd, a);
    assert_int_equal(strlen(a), MIME_MESSAGE_ID_MAX - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_part_exact),
        cmocka_unit_test(test_qp_line_lengths),
        cmocka_unit_test(test_subject_encoding),
        cmocka_unit_test(test_long_headers_fold),
        cmocka_unit_test(test_address_headers),
        cmocka_unit_test(test_header_order_and_no_bcc),
        cmocka_unit_test(test_many_recipients_fold),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_attachment_encoding),
        cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_generated_message_id_and_date),
        cmocka_unit_test(test_custom_header_check),
        cmocka_unit_test(test_header_value_valid),
        cmocka_unit_test(test_message_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
