/* POSTHORN_DELIVERY=file: the mail directory as the destination (development, tests).
 * Content of each file: "Return-Path: <sender>" and "Delivered-To: <recipient>" lines,
 * as a local delivery agent would add them, then the message.
 * Files are written as hidden ".<name>.<pid>.tmp" and renamed to "<name>" (never ending in
 * .eml before they are whole); a worker killed mid-batch leaves its temporary files, which
 * the next worker to open the directory removes once they are an hour old. */
#include "worker/deliver.h"
#include "lib/buf.h"
#include "lib/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* A temporary file older than this belongs to a process that died mid-write. */
#define TMP_STALE_SECONDS 3600

typedef struct {
    deliverer base;
    char     *dir;
    int       dirfd;
} file_deliverer;

/* Delivery ids become file names: only [A-Za-z0-9_-]. */
static int safe_name(const char *s)
{
    if (!*s || strlen(s) > 128)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* Writes a temporary file in the mail directory (not yet synced); 0, or -1 with errno. */
static int write_tmp(file_deliverer *f, const char *tmp, const char *head, size_t headlen,
                     const char *mhead, size_t mheadlen, const char *body, size_t bodylen)
{
    int fd = openat(f->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    struct iovec iov[3] = {{(void *)head, headlen}, {(void *)mhead, mheadlen},
                           {(void *)body, bodylen}};
    if (write_all(fd, iov, 3) != 0) {
        int saved = errno;
        close(fd);
        unlinkat(f->dirfd, tmp, 0);
        errno = saved;
        return -1;
    }
    return close(fd);
}

/* The per-file way to make a written file durable (when syncfs is not available). */
static int sync_one(file_deliverer *f, const char *tmp)
{
    int fd = openat(f->dirfd, tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

typedef struct {
    wjob *job;
    char  name[160];
    char  tmp[200];
} pending_file;

static void defer(wjob *j, const char *what, const char *name, int err)
{
    char why[300];
    snprintf(why, sizeof why, "cannot %s %s in the mail directory: %s", what, name,
             strerror(err));
    log_fields(LOG_WARN, json_pack("{s:s, s:s}", "delivery_id", j->item.id, "message_id",
                                   j->item.message_id), "%s", why);
    wjob_set(j, QUEUE_DEFERRED, 0, NULL, why, NULL, NULL, json_pack("{s:s}", "reason", why));
}

/* A batch is written in phases so that one sync covers every file: temporary files first,
 * then one syncfs() of the mail directory's file system (per-file fsync when that fails),
 * then the renames that make them visible (atomic: never a partial file under a final
 * name), then one fsync of the directory so the names are durable before `delivered` is
 * recorded. */
static void file_deliver(deliverer *d, wbatch *b)
{
    file_deliverer *f = (file_deliverer *)d;
    pending_file *pf = xcalloc(b->njobs ? b->njobs : 1, sizeof *pf);
    size_t n = 0;
    for (size_t i = 0; i < b->njobs; i++) {
        wjob *j = &b->jobs[i];
        if (j->state != JOB_PENDING || !j->msg || !j->msg->mime)
            continue;
        if (!safe_name(j->item.id)) {
            wjob_set(j, QUEUE_FAILED, 0, NULL, "delivery id not usable as a file name", NULL,
                     NULL, json_pack("{s:s}", "reason", "delivery id not usable as a file name"));
            continue;
        }
        pending_file *p = &pf[n];
        p->job = j;
        snprintf(p->name, sizeof p->name, "%s.%d.eml", j->item.id, j->item.attempt);
        snprintf(p->tmp, sizeof p->tmp, ".%s.%d.tmp", p->name, (int)getpid());
        buf head;
        buf_init(&head, 2048);
        /* per recipient when set: VERP sender, broadcast message with its List-Unsubscribe */
        const char *sender = j->env_from ? j->env_from : j->msg->from_email;
        size_t off = j->head && j->body_off <= j->msg->mime_len ? j->body_off : 0;
        if (buf_printf(&head, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", sender,
                       j->item.recipient) != 0) {
            buf_free(&head);
            wjob_set(j, QUEUE_FAILED, 0, NULL, "address too long", NULL, NULL,
                     json_pack("{s:s}", "reason", "address too long"));
            continue;
        }
        if (write_tmp(f, p->tmp, head.data, head.len, j->head ? j->head : "", j->head_len,
                      j->msg->mime + off, j->msg->mime_len - off) != 0)
            defer(j, "write", p->name, errno);
        else
            n++;
        buf_free(&head);
    }
    int synced = n == 0 || syncfs(f->dirfd) == 0;
    size_t written = 0;
    for (size_t i = 0; i < n; i++) {
        pending_file *p = &pf[i];
        if (!synced && sync_one(f, p->tmp) != 0) {
            defer(p->job, "sync", p->name, errno);
            unlinkat(f->dirfd, p->tmp, 0);
            continue;
        }
        if (renameat(f->dirfd, p->tmp, f->dirfd, p->name) != 0) {
            defer(p->job, "rename", p->name, errno);
            unlinkat(f->dirfd, p->tmp, 0);
            continue;
        }
        char resp[200];
        snprintf(resp, sizeof resp, "written to %s", p->name);
        wjob_set(p->job, QUEUE_DELIVERED, 0, NULL, resp, NULL, NULL,
                 json_pack("{s:s}", "file", p->name));
        written++;
    }
    if (written && fsync(f->dirfd) != 0)
        log_warn("fsync of the mail directory %s: %s", f->dir, strerror(errno));
    free(pf);
}

static void file_free(deliverer *d)
{
    file_deliverer *f = (file_deliverer *)d;
    if (f->dirfd >= 0)
        close(f->dirfd);
    free(f->dir);
    free(f);
}

static const deliverer_ops file_ops = {"file", file_deliver, file_free, 0, NULL, NULL, NULL};

static int is_tmp_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] == '.' && n > 5 && strcmp(name + n - 4, ".tmp") == 0;
}

/* Removes the temporary files that dead writers left (see the top of this file). */
static void sweep_stale_tmp(int dirfd, const char *dir)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    time_t now = time(NULL);
    size_t removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (!is_tmp_name(e->d_name) ||
            fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            now - st.st_mtime < TMP_STALE_SECONDS)
            continue;
        if (unlinkat(dirfd, e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    if (removed)
        log_info("mail directory %s: removed %zu temporary file(s) left by a stopped writer",
                 dir, removed);
}

deliverer *deliver_file_new(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "POSTHORN_MAIL_DIR=%s: cannot create it: %s", dir, strerror(errno));
        return NULL;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "POSTHORN_MAIL_DIR=%s: cannot open it as a directory: %s", dir,
                 strerror(errno));
        return NULL;
    }
    if (faccessat(fd, ".", W_OK, 0) != 0) {
        snprintf(err, errlen, "POSTHORN_MAIL_DIR=%s: not writable: %s", dir, strerror(errno));
        close(fd);
        return NULL;
    }
    sweep_stale_tmp(fd, dir);
    file_deliverer *f = xcalloc(1, sizeof *f);
    f->base.ops = &file_ops;
    f->dir = xstrdup(dir);
    f->dirfd = fd;
    return &f->base;
}
