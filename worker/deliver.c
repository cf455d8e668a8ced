#include "worker/deliver.h"
#include "lib/config.h"

#include <stdio.h>

deliverer *deliverer_new(char *err, size_t errlen)
{
    switch (cfg.delivery) {
    case DELIVERY_FILE:
        return deliver_file_new(cfg.mail_dir, err, errlen);
    case DELIVERY_MX:
    case DELIVERY_RELAY:
    default:
        snprintf(err, errlen, "POSTHORN_DELIVERY=%s is not available yet (the SMTP delivery "
                 "engine is not built); set POSTHORN_DELIVERY=file and POSTHORN_MAIL_DIR to "
                 "write each message to a file", cfg.delivery == DELIVERY_RELAY ? "relay" : "mx");
        return NULL;
    }
}

void deliverer_free(deliverer *d)
{
    if (d)
        d->ops->free(d);
}
