#include "worker/deliver.h"
#include "lib/config.h"

#include <stdio.h>

deliverer *deliverer_new(char *err, size_t errlen)
{
    switch (cfg.delivery) {
    case DELIVERY_FILE:
        return deliver_file_new(cfg.mail_dir, err, errlen);
    case DELIVERY_RELAY:
        return deliver_smtp_new(1, err, errlen);
    case DELIVERY_MX:
    default:
        return deliver_smtp_new(0, err, errlen);
    }
}

void deliverer_free(deliverer *d)
{
    if (d)
        d->ops->free(d);
}
