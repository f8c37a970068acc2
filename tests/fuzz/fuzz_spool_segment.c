/* libFuzzer target for spool recovery and reading: the input becomes the
 * only segment of a spool directory. Opening must recover (cut a bad tail,
 * skip corrupt regions) without crashing; every record a reader returns must
 * lie in the file; a second open must find nothing more to cut. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerside/log.h"
#include "brokerside/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

/* Remove the scratch spool at exit. */
static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/bs-fuzz-spool-XXXXXX");
        if (!mkdtemp(dir)) abort();
        atexit(cleanup);
        bs_log_set_level(BS_LOG_ERROR);
    }
    char seg[128], id[128];
    snprintf(seg, sizeof seg, "%s/00000000000000000001.seg", dir);
    snprintf(id, sizeof id, "%s/spool.id", dir);
    int fd = open(seg, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) abort();
    close(fd);
    bs_spool_options o;
    bs_spool_options_default(&o);
    o.dir = dir;
    o.max_record_bytes = 1 << 20;
    bs_spool *sp;
    if (bs_spool_open(&o, &sp) != BS_OK) abort();
    for (int s = 0; s < BS_STREAM_COUNT; s++) {
        bs_spool_reader *r;
        if (bs_spool_reader_open_at(sp, (bs_stream)s, 0, &r) != BS_OK) abort();
        bs_spool_record rec;
        uint64_t last = 0;
        while (bs_spool_read(r, &rec) == BS_OK) {
            if (rec.len > size || rec.stream != (bs_stream)s) abort();
            if (rec.len) (void)((volatile const uint8_t *)rec.payload)[rec.len - 1];
            last = rec.seq;
        }
        (void)last;
        bs_spool_reader_close(r);
    }
    bs_spool_close(sp);
    if (bs_spool_open(&o, &sp) != BS_OK) abort();
    bs_spool_stats st;
    bs_spool_get_stats(sp, &st);
    if (st.truncated_bytes != 0) abort();
    bs_spool_close(sp);
    return 0;
}
