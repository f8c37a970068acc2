/* kafka_answer.c - responses the sidecar writes itself (see kafka_answer.h). */
#include "brokerside/kafka_answer.h"

#include <stdint.h>

#include "brokerside/kafka.h"

/* The value of field `name` in `o` (NULL if the schema has no such field). */
static bs_kafka_val *fld(const bs_kafka_obj *o, const char *name)
{
    int i = bs_kafka_struct_field(o->schema, name);
    return i < 0 ? NULL : &o->vals[i];
}

/* See kafka_answer.h. Fill `o` as a default `s` at `ver`: every non-tagged field present, numbers
 * 0, nullable strings/bytes null, others empty, arrays empty, structs
 * recursively. Memory from `a`. */
bs_status bs_kafka_obj_default(const bs_kafka_struct *s, int16_t ver, bs_kafka_arena *a,
                               bs_kafka_obj *o)
{
    static const uint8_t zero[16];
    o->schema = s;
    o->unknown = NULL;
    o->nunknown = 0;
    BS_GUARD(bs_kafka_arena_alloc(a, (s->nfields ? s->nfields : 1) * sizeof *o->vals,
                                  (void **)&o->vals));
    for (size_t k = 0; k < s->nfields; k++) {
        const bs_kafka_field *f = &s->fields[k];
        bs_kafka_val *v = &o->vals[k];
        v->present = bs_kafka_field_present(f, ver) && !bs_kafka_field_tagged(f, ver);
        switch (f->type) {
        case BS_KT_STRING:
        case BS_KT_BYTES:
        case BS_KT_RECORDS:
            v->null = bs_kafka_field_nullable(f, ver);
            v->p = zero;
            break;
        case BS_KT_UUID:
            v->p = zero;
            break;
        case BS_KT_ARRAY:
            v->count = 0;
            v->p = zero;
            break;
        case BS_KT_STRUCT:
            BS_GUARD(bs_kafka_arena_alloc(a, sizeof *v->items, (void **)&v->items));
            BS_GUARD(bs_kafka_obj_default(f->sub, ver, a, v->items));
            break;
        default:
            break;
        }
    }
    return BS_OK;
}

/* See kafka_answer.h. Append a size-prefixed frame to `out`: 4-byte size, `hdr` (hdr_len bytes),
 * then the encoding of `body` (message `m` at `ver`). */
bs_status bs_kafka_put_frame(bs_wbuf *out, const uint8_t *hdr, size_t hdr_len,
                             const bs_kafka_message *m, int16_t ver, const bs_kafka_obj *body)
{
    size_t start = out->len;
    bs_wbuf_put_be32(out, 0);
    bs_wbuf_put(out, hdr, hdr_len);
    BS_GUARD(bs_kafka_encode(m, ver, body, out));
    BS_GUARD(bs_wbuf_status(out));
    size_t n = out->len - start - 4;
    BS_ENSURE(n <= INT32_MAX, BS_E_TOO_LARGE);
    bs_wbuf_patch_be32(out, start, (uint32_t)n);
    return BS_OK;
}

/* See kafka_answer.h. The answer to a refused Produce request (`req`, `ver`, correlation id
 * `corr`): one PartitionResponse per partition with perr[i] (0 there becomes
 * KAFKA_STORAGE_ERROR: nothing of the request was written). */
bs_status bs_kafka_produce_answer(const bs_kafka_obj *req, int16_t ver, int32_t corr,
                                  const int16_t *perr, int16_t dflt, bs_kafka_arena *a,
                                  bs_wbuf *out)
{
    const bs_kafka_message *m = bs_kafka_message_find(BS_KAFKA_PRODUCE, false);
    BS_ENSURE(m, BS_E_UNSUPPORTED);
    bs_kafka_obj *resp;
    BS_GUARD(bs_kafka_arena_alloc(a, sizeof *resp, (void **)&resp));
    BS_GUARD(bs_kafka_obj_default(m->body, ver, a, resp));
    const bs_kafka_val *td = fld(req, "TopicData");
    bs_kafka_val *rs = fld(resp, "Responses");
    BS_ENSURE(td && rs, BS_E_STATE);
    const bs_kafka_field *rsf = &m->body->fields[rs - resp->vals];
    int32_t nt = td->count < 0 ? 0 : td->count;
    rs->count = nt;
    if (nt > 0)
        BS_GUARD(
            bs_kafka_arena_alloc(a, (size_t)nt * sizeof *rs->items, (void **)&rs->items));
    size_t k = 0;
    for (int32_t t = 0; t < nt; t++) {
        const bs_kafka_obj *tin = &td->items[t];
        bs_kafka_obj *tout = &rs->items[t];
        BS_GUARD(bs_kafka_obj_default(rsf->sub, ver, a, tout));
        bs_kafka_val *name = fld(tout, "Name"), *pr = fld(tout, "PartitionResponses");
        const bs_kafka_val *iname = fld(tin, "Name"), *pd = fld(tin, "PartitionData");
        BS_ENSURE(name && pr && iname && pd, BS_E_STATE);
        *name = *iname;
        /* v13+ name the topic by id: answer with the request's id */
        bs_kafka_val *tid = fld(tout, "TopicId");
        const bs_kafka_val *itid = fld(tin, "TopicId");
        if (tid && itid) *tid = *itid;
        const bs_kafka_field *prf = &rsf->sub->fields[pr - tout->vals];
        int32_t np = pd->count < 0 ? 0 : pd->count;
        pr->count = np;
        if (np > 0)
            BS_GUARD(bs_kafka_arena_alloc(a, (size_t)np * sizeof *pr->items,
                                          (void **)&pr->items));
        for (int32_t i = 0; i < np; i++, k++) {
            bs_kafka_obj *po = &pr->items[i];
            BS_GUARD(bs_kafka_obj_default(prf->sub, ver, a, po));
            bs_kafka_val *idx = fld(po, "Index"), *ec = fld(po, "ErrorCode"),
                         *bo = fld(po, "BaseOffset"), *lat = fld(po, "LogAppendTimeMs"),
                         *lso = fld(po, "LogStartOffset");
            const bs_kafka_val *iidx = fld(&pd->items[i], "Index");
            BS_ENSURE(idx && ec && bo && iidx, BS_E_STATE);
            idx->i = iidx->i;
            ec->i = perr && perr[k] ? perr[k] : dflt;
            bo->i = -1;
            if (lat) lat->i = -1;
            if (lso) lso->i = -1;
        }
    }
    uint8_t hdr[5] = {(uint8_t)((uint32_t)corr >> 24), (uint8_t)((uint32_t)corr >> 16),
                      (uint8_t)((uint32_t)corr >> 8), (uint8_t)corr, 0};
    /* Flexible Produce responses (v9+) use response header v1: an empty tag section. */
    return bs_kafka_put_frame(out, hdr, ver >= m->flex_min ? 5 : 4, m, ver, resp);
}

