/* posthorn: the admin CLI. Scriptable: the value alone on stdout, messages on stderr,
 * exit 0 on success, 1 on an error, 2 on bad usage or configuration. */
#include "db/db.h"
#include "db/migrate.h"
#include "lib/apikey.h"
#include "lib/config.h"
#include "lib/ids.h"
#include "lib/log.h"
#include "lib/startup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage:\n"
    "  posthorn migrate\n"
    "  posthorn account create NAME\n"
    "  posthorn account list\n"
    "  posthorn key create --account ID --scopes send,read,admin [--name N] [--rate N/s]\n"
    "  posthorn key create --operator [--name N] [--rate N/s]\n"
    "  posthorn key list (--account ID | --operator)\n"
    "  posthorn key revoke PREFIX\n"
    "  posthorn settings [--markdown]\n";

static int usage_error(const char *msg)
{
    if (msg)
        fprintf(stderr, "posthorn: %s\n", msg);
    fputs(usage, stderr);
    return 2;
}

static db_conn *connect_or_die(void)
{
    db_conn *c = db_open(cfg.database_url, "posthorn-cli");
    if (db_connect(c) != DB_OK) {
        fprintf(stderr, "posthorn: cannot connect to PostgreSQL: %s\n", db_last_error(c));
        db_close(c);
        exit(1);
    }
    return c;
}

static int fail_db(db_conn *c, const char *what)
{
    fprintf(stderr, "posthorn: %s: %s\n", what, db_last_error(c));
    db_close(c);
    return 1;
}

static int cmd_migrate(void)
{
    db_conn *c = connect_or_die();
    int applied;
    int rc = migrate_run(c, &applied);
    db_close(c);
    if (rc != 0) {
        fprintf(stderr, "posthorn: migration failed\n");
        return 1;
    }
    fprintf(stderr, "posthorn: %d migration(s) applied; schema at version %d\n", applied,
            migrate_latest());
    return 0;
}

static int cmd_account(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[0], "create") == 0 && argc == 2) {
        size_t n = strlen(argv[1]);
        if (n < 1 || n > 200)
            return usage_error("account name must be 1 to 200 characters");
        db_conn *c = connect_or_die();
        char id[IDS_MAX];
        ids_new("acc_", id);
        const char *params[] = {id, argv[1]};
        if (db_exec(c, ST_ACCOUNT_INSERT, params, NULL) != DB_OK)
            return fail_db(c, "cannot create the account");
        db_close(c);
        puts(id);
        return 0;
    }
    if (argc == 1 && strcmp(argv[0], "list") == 0) {
        db_conn *c = connect_or_die();
        PGresult *res;
        const char *params[] = {"", "", "1000000"};
        if (db_exec(c, ST_ACCOUNT_LIST, params, &res) != DB_OK)
            return fail_db(c, "cannot list accounts");
        for (int i = 0; i < PQntuples(res); i++)
            printf("%s\t%s\t%s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
        PQclear(res);
        db_close(c);
        return 0;
    }
    return usage_error(NULL);
}

/* "N", "N/s" -> N (1..1000000); -1 when malformed. */
static int parse_rate(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || (*end && strcmp(end, "/s") != 0) || v < 1 || v > 1000000)
        return -1;
    return (int)v;
}

static int cmd_key_create(int argc, char **argv)
{
    const char *account = NULL, *scopes = NULL, *name = NULL;
    int operator = 0, rate = cfg.default_key_rate;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--operator") == 0)
            operator = 1;
        else if (i + 1 < argc && strcmp(argv[i], "--account") == 0)
            account = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--scopes") == 0)
            scopes = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--name") == 0)
            name = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--rate") == 0) {
            if ((rate = parse_rate(argv[++i])) < 0)
                return usage_error("--rate takes N or N/s with N from 1 to 1000000");
        } else
            return usage_error(NULL);
    }
    if (operator && (account || scopes))
        return usage_error("--operator keys have no account and no other scopes");
    if (!operator && (!account || !scopes))
        return usage_error("key create needs --account and --scopes (or --operator)");
    unsigned bits = 0;
    if (!operator && apikey_parse_scopes(scopes, &bits) != 0)
        return usage_error("--scopes takes a comma-separated list of send, read, admin");
    if (name && (strlen(name) > 100 || strpbrk(name, "\r\n\t")))
        return usage_error("--name must be at most 100 characters with no control characters");

    char canon[64] = "";
    size_t cl = 0;
    for (int s = SCOPE_SEND; s <= SCOPE_OPERATOR; s++)
        if ((operator && s == SCOPE_OPERATOR) || (bits & SCOPE_BIT(s)))
            cl += (size_t)snprintf(canon + cl, sizeof canon - cl, "%s%s", cl ? "," : "",
                                   apikey_scope_name((scope)s));

    db_conn *c = connect_or_die();
    if (!operator) {
        const char *p1[] = {account};
        PGresult *res;
        if (db_exec(c, ST_ACCOUNT_GET, p1, &res) != DB_OK)
            return fail_db(c, "cannot look up the account");
        int found = PQntuples(res) == 1;
        PQclear(res);
        if (!found) {
            fprintf(stderr, "posthorn: no account %s\n", account);
            db_close(c);
            return 1;
        }
    }
    char key[APIKEY_LEN + 1], prefix[APIKEY_PREFIX_LEN + 1];
    uint8_t hash[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1], rs[16];
    apikey_generate(key, prefix, hash);
    crypto_hex(hash, sizeof hash, hex);
    snprintf(rs, sizeof rs, "%d", rate);
    const char *params[] = {prefix, operator ? NULL : account, operator ? "true" : "false", name,
                            canon, rs, hex};
    if (db_exec(c, ST_KEY_INSERT, params, NULL) != DB_OK)
        return fail_db(c, "cannot create the key");
    db_close(c);
    puts(key);
    fprintf(stderr, "posthorn: key %s created; it is shown only now\n", prefix);
    return 0;
}

static int cmd_key(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "create") == 0)
        return cmd_key_create(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[0], "list") == 0) {
        int op = strcmp(argv[1], "--operator") == 0 && argc == 2;
        if (!op && !(strcmp(argv[1], "--account") == 0 && argc == 3))
            return usage_error(NULL);
        db_conn *c = connect_or_die();
        PGresult *res;
        const char *params[] = {op ? NULL : argv[2]};
        if (db_exec(c, op ? ST_KEY_LIST_OPERATOR : ST_KEY_LIST_ACCOUNT, op ? NULL : params, &res) != DB_OK)
            return fail_db(c, "cannot list keys");
        for (int i = 0; i < PQntuples(res); i++)
            printf("%s\t%s\t%s\t%s\t%s\t%s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                   PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
                   PQgetvalue(res, i, 5));
        PQclear(res);
        db_close(c);
        return 0;
    }
    if (argc == 2 && strcmp(argv[0], "revoke") == 0) {
        if (!apikey_prefix_valid(argv[1]))
            return usage_error("revoke takes a key prefix (the part between ph_ and the next _)");
        db_conn *c = connect_or_die();
        PGresult *res;
        const char *params[] = {argv[1]};
        if (db_exec(c, ST_KEY_REVOKE, params, &res) != DB_OK)
            return fail_db(c, "cannot revoke the key");
        int n = (int)strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        db_close(c);
        if (n != 1) {
            fprintf(stderr, "posthorn: no active key with prefix %s\n", argv[1]);
            return 1;
        }
        fprintf(stderr, "posthorn: key %s revoked\n", argv[1]);
        return 0;
    }
    return usage_error(NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "settings") == 0) {
        startup("posthorn", 0);
        config_print(stdout, argc > 2 && strcmp(argv[2], "--markdown") == 0);
        config_free();
        return 0;
    }
    startup("posthorn", 1);
    int rc;
    if (strcmp(cmd, "migrate") == 0 && argc == 2)
        rc = cmd_migrate();
    else if (strcmp(cmd, "account") == 0)
        rc = cmd_account(argc - 2, argv + 2);
    else if (strcmp(cmd, "key") == 0)
        rc = cmd_key(argc - 2, argv + 2);
    else
        rc = usage_error("unknown command");
    config_free();
    return rc;
}
