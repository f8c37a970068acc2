/* kafka_schema.c - generic schema-driven decoder/encoder (see kafka_schema.h). */
#include "brokerside/kafka_schema.h"

#include <stdlib.h>
#include <string.h>

/* ---- schema helpers ---- */

/* See kafka_schema.h. */
const bs_kafka_message *bs_kafka_message_find(int16_t api_key, bool is_request)
{
    for (size_t i = 0; i < bs_kafka_messages_count; i++)
        if (bs_kafka_messages[i].api_key == api_key &&
            bs_kafka_messages[i].is_request == is_request)
            return &bs_kafka_messages[i];
    return NULL;
}

/* See kafka_schema.h. */
bool bs_kafka_field_present(const bs_kafka_field *f, int16_t v)
{
    return v >= f->ver_min && v <= f->ver_max;
}

/* See kafka_schema.h. */
bool bs_kafka_field_nullable(const bs_kafka_field *f, int16_t v)
{
    return v >= f->null_min && v <= f->null_max;
}

/* See kafka_schema.h. */
bool bs_kafka_field_tagged(const bs_kafka_field *f, int16_t v)
{
    return f->tag >= 0 && v >= f->tag_min && v <= f->tag_max;
}

/* See kafka_schema.h. */
int bs_kafka_struct_field(const bs_kafka_struct *s, const char *name)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (strcmp(s->fields[i].name, name) == 0) return (int)i;
    return -1;
}

/* ---- arena ---- */

struct bs_kafka_arena_block {
    bs_kafka_arena_block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    max_align_t data[]; /* aligned storage */
};

#define ARENA_BLOCK_MIN (16 * 1024)

/* See kafka_schema.h. */
void bs_kafka_arena_init(bs_kafka_arena *a, size_t limit)
{
    a->head = NULL;
    a->used_total = 0;
    a->limit = limit;
}

/* See kafka_schema.h. Keeps the oldest block, which is the one reused. */
void bs_kafka_arena_reset(bs_kafka_arena *a)
{
    bs_kafka_arena_block *b = a->head;
    while (b && b->next) {
        bs_kafka_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = b;
    if (b) {
        /* only the handed-out part can be dirty: allocations promise zeroed memory */
        memset(b->data, 0, b->used);
        b->used = 0;
    }
    a->used_total = 0;
}

/* See kafka_schema.h. */
void bs_kafka_arena_free(bs_kafka_arena *a)
{
    bs_kafka_arena_block *b = a->head;
    while (b) {
        bs_kafka_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used_total = 0;
}

/* See kafka_schema.h. Blocks are calloc'ed (and reset re-zeroes), so memory is zeroed. */
bs_status bs_kafka_arena_alloc(bs_kafka_arena *a, size_t n, void **out)
{
    size_t need = (n + 15) & ~(size_t)15;
    BS_ENSURE(need >= n, BS_E_TOO_LARGE);
    if (a->limit && (need > a->limit || a->used_total > a->limit - need)) return BS_E_TOO_LARGE;
    bs_kafka_arena_block *b = a->head;
    if (!b || b->size - b->used < need) {
        size_t size = need > ARENA_BLOCK_MIN ? need : ARENA_BLOCK_MIN;
        b = calloc(1, sizeof *b + size);
        BS_ENSURE(b, BS_E_NOMEM);
        b->size = size;
        b->next = a->head;
        a->head = b;
    }
    *out = (uint8_t *)b->data + b->used;
    b->used += need;
    a->used_total += need;
    return BS_OK;
}

/* ---- decoding ---- */

typedef struct dctx {
    int16_t v;
    bool flex;
    bs_kafka_arena *a;    /* NULL in scan mode */
    bs_kafka_visit_fn fn; /* scan mode visitor */
    void *arg;
} dctx;

static bs_status decode_into(const bs_kafka_struct *s, dctx *x, bs_cursor *c, int depth,
                             bs_kafka_obj *o);

/* The fewest bytes one value of `type` (or struct `sub`) takes on the wire at
 * this version: used to reject element counts a frame cannot hold. */
static size_t min_wire_size(uint8_t type, const bs_kafka_struct *sub, const dctx *x, int depth)
{
    switch (type) {
    case BS_KT_BOOL:
    case BS_KT_INT8:
        return 1;
    case BS_KT_INT16:
    case BS_KT_UINT16:
        return 2;
    case BS_KT_INT32:
    case BS_KT_UINT32:
        return 4;
    case BS_KT_INT64:
    case BS_KT_FLOAT64:
        return 8;
    case BS_KT_UUID:
        return 16;
    case BS_KT_STRING:
        return x->flex ? 1 : 2;
    case BS_KT_BYTES:
    case BS_KT_RECORDS:
    case BS_KT_ARRAY:
        return x->flex ? 1 : 4;
    case BS_KT_STRUCT: {
        size_t n = x->flex ? 1 : 0; /* the tagged-field count */
        if (!sub || depth > BS_KAFKA_MAX_DEPTH) return n ? n : 1;
        for (size_t i = 0; i < sub->nfields; i++) {
            const bs_kafka_field *f = &sub->fields[i];
            if (!bs_kafka_field_present(f, x->v) || bs_kafka_field_tagged(f, x->v)) continue;
            /* a null nullable struct is its one-byte marker */
            n += f->type == BS_KT_STRUCT && bs_kafka_field_nullable(f, x->v)
                     ? 1
                     : min_wire_size(f->type, f->sub, x, depth + 1);
        }
        return n ? n : 1;
    }
    }
    return 1;
}

/* Reads one value of `type` (for arrays: the element type is f->elem). */
static bs_status read_value(const bs_kafka_field *f, uint8_t type, dctx *x, bs_cursor *c, int depth,
                            bs_kafka_val *val)
{
    bs_kafka_slice sl;
    bool nullable = bs_kafka_field_nullable(f, x->v);
    switch (type) {
    case BS_KT_BOOL:
    case BS_KT_INT8: {
        uint8_t u;
        BS_GUARD(bs_read_u8(c, &u));
        val->i = type == BS_KT_INT8 ? (int8_t)u : u;
        return BS_OK;
    }
    case BS_KT_INT16: {
        int16_t v;
        BS_GUARD(bs_read_i16(c, &v));
        val->i = v;
        return BS_OK;
    }
    case BS_KT_UINT16: {
        uint16_t v;
        BS_GUARD(bs_read_be16(c, &v));
        val->i = v;
        return BS_OK;
    }
    case BS_KT_INT32: {
        int32_t v;
        BS_GUARD(bs_read_i32(c, &v));
        val->i = v;
        return BS_OK;
    }
    case BS_KT_UINT32: {
        uint32_t v;
        BS_GUARD(bs_read_be32(c, &v));
        val->i = v;
        return BS_OK;
    }
    case BS_KT_INT64:
    case BS_KT_FLOAT64: {
        int64_t v;
        BS_GUARD(bs_read_i64(c, &v));
        val->i = v;
        return BS_OK;
    }
    case BS_KT_UUID:
        BS_GUARD(bs_kafka_read_uuid(c, &val->p));
        val->n = 16;
        return BS_OK;
    case BS_KT_STRING:
    case BS_KT_BYTES:
    case BS_KT_RECORDS:
        if (type == BS_KT_STRING)
            BS_GUARD(bs_kafka_read_string(c, x->flex, nullable, &sl));
        else
            BS_GUARD(bs_kafka_read_bytes(c, x->flex, nullable, &sl));
        val->p = sl.p;
        val->null = sl.len < 0;
        val->n = sl.len < 0 ? 0 : (size_t)sl.len;
        return BS_OK;
    case BS_KT_STRUCT: {
        BS_ENSURE(f->sub, BS_E_MALFORMED);
        if (nullable) {
            /* Kafka writes a nullable struct as an int8 marker, -1 null or 1, then the struct */
            uint8_t marker;
            BS_GUARD(bs_read_u8(c, &marker));
            BS_ENSURE(marker == 0xff || marker == 1, BS_E_MALFORMED);
            if (marker == 0xff) {
                val->null = true;
                return BS_OK; /* no items; scan mode: nothing to enter */
            }
        }
        if (!x->a) {
            BS_GUARD(x->fn(x->arg, f, NULL, BS_KAFKA_VISIT_ENTER));
            BS_GUARD(decode_into(f->sub, x, c, depth + 1, NULL));
            return x->fn(x->arg, f, NULL, BS_KAFKA_VISIT_LEAVE);
        }
        void *mem;
        BS_GUARD(bs_kafka_arena_alloc(x->a, sizeof(bs_kafka_obj), &mem));
        val->items = mem;
        return decode_into(f->sub, x, c, depth + 1, val->items);
    }
    case BS_KT_ARRAY: {
        int32_t count;
        BS_ENSURE(f->elem != BS_KT_ARRAY && f->elem != BS_KT_NONE, BS_E_MALFORMED);
        BS_GUARD(bs_kafka_read_array_len(c, x->flex, nullable,
                                         min_wire_size(f->elem, f->sub, x, depth), &count));
        val->count = count;
        val->null = count < 0;
        if (f->elem == BS_KT_STRUCT) {
            BS_ENSURE(f->sub, BS_E_MALFORMED);
            if (!x->a) {
                for (int32_t k = 0; k < count; k++) {
                    BS_GUARD(x->fn(x->arg, f, NULL, BS_KAFKA_VISIT_ENTER));
                    BS_GUARD(decode_into(f->sub, x, c, depth + 1, NULL));
                    BS_GUARD(x->fn(x->arg, f, NULL, BS_KAFKA_VISIT_LEAVE));
                }
                return BS_OK;
            }
            if (count > 0) {
                void *mem;
                BS_GUARD(bs_kafka_arena_alloc(x->a, (size_t)count * sizeof(bs_kafka_obj), &mem));
                val->items = mem;
            }
            for (int32_t k = 0; k < count; k++)
                BS_GUARD(decode_into(f->sub, x, c, depth + 1, &val->items[k]));
            return BS_OK;
        }
        /* Primitive arrays are never rewritten: validate them and keep the raw bytes. */
        size_t start = c->pos;
        for (int32_t k = 0; k < count; k++) {
            bs_kafka_val tmp = {0};
            BS_GUARD(read_value(f, f->elem, x, c, depth + 1, &tmp));
        }
        val->p = c->data + start;
        val->n = c->pos - start;
        return BS_OK;
    }
    }
    return BS_E_MALFORMED;
}

/* Reads field `f` into `val` (tree mode) or hands it to the visitor (scan mode). */
static bs_status read_field(const bs_kafka_field *f, dctx *x, bs_cursor *c, int depth,
                            bs_kafka_val *val)
{
    bs_kafka_val tmp = {0};
    bs_kafka_val *dst = x->a ? val : &tmp;
    BS_GUARD(read_value(f, f->type, x, c, depth, dst));
    dst->present = true;
    if (!x->a && f->type != BS_KT_STRUCT) return x->fn(x->arg, f, dst, BS_KAFKA_VISIT_VALUE);
    return BS_OK;
}

/* Decodes the fields of struct `s` (and, if flexible, its tagged-field section)
 * into `o` (tree mode; `o` is zeroed arena memory) or the visitor (o == NULL). */
static bs_status decode_into(const bs_kafka_struct *s, dctx *x, bs_cursor *c, int depth,
                             bs_kafka_obj *o)
{
    BS_ENSURE(depth <= BS_KAFKA_MAX_DEPTH, BS_E_MALFORMED);
    if (o) {
        void *mem = NULL;
        o->schema = s;
        if (s->nfields)
            BS_GUARD(bs_kafka_arena_alloc(x->a, s->nfields * sizeof(bs_kafka_val), &mem));
        o->vals = mem;
    }
    for (size_t i = 0; i < s->nfields; i++) {
        const bs_kafka_field *f = &s->fields[i];
        if (!bs_kafka_field_present(f, x->v) || bs_kafka_field_tagged(f, x->v)) continue;
        BS_GUARD(read_field(f, x, c, depth, o ? &o->vals[i] : NULL));
    }
    if (!x->flex) return BS_OK;
    uint32_t ntags, prev = 0;
    BS_GUARD(bs_kafka_read_tag_count(c, &ntags));
    for (uint32_t t = 0; t < ntags; t++) {
        bs_kafka_tag tag;
        BS_GUARD(bs_kafka_read_tag(c, &tag));
        BS_ENSURE(t == 0 || tag.tag > prev, BS_E_MALFORMED);
        prev = tag.tag;
        size_t k = 0;
        while (k < s->nfields && !(bs_kafka_field_present(&s->fields[k], x->v) &&
                                   bs_kafka_field_tagged(&s->fields[k], x->v) &&
                                   (uint32_t)s->fields[k].tag == tag.tag))
            k++;
        if (k < s->nfields) {
            bs_cursor sub;
            bs_cursor_init(&sub, tag.p, tag.n);
            BS_GUARD(read_field(&s->fields[k], x, &sub, depth, o ? &o->vals[k] : NULL));
            /* a known tag's value must fill exactly the size it declared */
            BS_ENSURE(bs_cursor_remaining(&sub) == 0, BS_E_MALFORMED);
        } else if (o) {
            if (!o->unknown) {
                void *mem;
                BS_GUARD(bs_kafka_arena_alloc(x->a, ntags * sizeof(bs_kafka_tag), &mem));
                o->unknown = mem;
            }
            o->unknown[o->nunknown++] = tag;
        }
    }
    return BS_OK;
}

/* See kafka_schema.h. */
bs_status bs_kafka_decode_struct(const bs_kafka_struct *s, int16_t version, bool flexible,
                                 bs_cursor *c, bs_kafka_arena *a, int depth, bs_kafka_obj **out)
{
    dctx x = {.v = version, .flex = flexible, .a = a};
    void *mem;
    BS_ENSURE(a, BS_E_STATE);
    BS_GUARD(bs_kafka_arena_alloc(a, sizeof(bs_kafka_obj), &mem));
    bs_status st = decode_into(s, &x, c, depth, mem);
    if (st == BS_E_SHORT) st = BS_E_MALFORMED; /* a struct inside a complete body: truncated */
    if (st == BS_OK) *out = mem;
    return st;
}

/* Shared body of decode and scan: version check, whole-body consumption. */
static bs_status decode_body(const bs_kafka_message *m, dctx *x, const uint8_t *body, size_t len,
                             bs_kafka_obj *o)
{
    bs_cursor c;
    bs_cursor_init(&c, body, len);
    bs_status st = decode_into(m->body, x, &c, 0, o);
    if (st == BS_E_SHORT) st = BS_E_MALFORMED; /* the body is complete: running out is malformed */
    if (st == BS_OK && bs_cursor_remaining(&c) != 0) st = BS_E_MALFORMED;
    return st;
}

/* See kafka_schema.h. */
bs_status bs_kafka_decode(const bs_kafka_message *m, int16_t version, const uint8_t *body,
                          size_t len, bs_kafka_arena *a, bs_kafka_obj **out)
{
    BS_ENSURE(version >= m->min_version && version <= m->max_version, BS_E_UNSUPPORTED);
    dctx x = {.v = version, .flex = version >= m->flex_min, .a = a};
    void *mem;
    BS_GUARD(bs_kafka_arena_alloc(a, sizeof(bs_kafka_obj), &mem));
    BS_GUARD(decode_body(m, &x, body, len, mem));
    *out = mem;
    return BS_OK;
}

/* See kafka_schema.h. */
bs_status bs_kafka_scan(const bs_kafka_message *m, int16_t version, const uint8_t *body, size_t len,
                        bs_kafka_visit_fn fn, void *arg)
{
    BS_ENSURE(version >= m->min_version && version <= m->max_version, BS_E_UNSUPPORTED);
    dctx x = {.v = version, .flex = version >= m->flex_min, .a = NULL, .fn = fn, .arg = arg};
    return decode_body(m, &x, body, len, NULL);
}

/* ---- encoding ---- */

static bs_status encode_obj(const bs_kafka_struct *s, int16_t v, bool flex, const bs_kafka_obj *o,
                            bs_wbuf *w, int depth);

/* Writes one value of `type` (arrays: elements of f->elem). */
static bs_status encode_value(const bs_kafka_field *f, uint8_t type, int16_t v, bool flex,
                              const bs_kafka_val *val, bs_wbuf *w, int depth)
{
    bool nullable = bs_kafka_field_nullable(f, v);
    switch (type) {
    case BS_KT_BOOL:
    case BS_KT_INT8:
        bs_wbuf_put_u8(w, (uint8_t)val->i);
        break;
    case BS_KT_INT16:
    case BS_KT_UINT16:
        bs_wbuf_put_be16(w, (uint16_t)val->i);
        break;
    case BS_KT_INT32:
    case BS_KT_UINT32:
        bs_wbuf_put_be32(w, (uint32_t)val->i);
        break;
    case BS_KT_INT64:
    case BS_KT_FLOAT64:
        bs_wbuf_put_be64(w, (uint64_t)val->i);
        break;
    case BS_KT_UUID: {
        static const uint8_t zero[16];
        bs_wbuf_put(w, val->p && val->n == 16 ? val->p : zero, 16);
        break;
    }
    case BS_KT_STRING:
    case BS_KT_BYTES:
    case BS_KT_RECORDS: {
        size_t max = type == BS_KT_STRING ? BS_KAFKA_MAX_STRING : INT32_MAX;
        BS_ENSURE(!val->null || nullable, BS_E_MALFORMED);
        BS_ENSURE(val->null || val->n <= max, BS_E_MALFORMED);
        int32_t len = val->null ? -1 : (int32_t)val->n;
        if (type == BS_KT_STRING)
            bs_kafka_put_string(w, flex, val->p, len);
        else
            bs_kafka_put_bytes(w, flex, val->p, len);
        break;
    }
    case BS_KT_STRUCT:
        BS_ENSURE(f->sub && (val->items || val->null), BS_E_MALFORMED);
        BS_ENSURE(!val->null || nullable, BS_E_MALFORMED);
        if (nullable) bs_wbuf_put_u8(w, val->null ? 0xff : 1);
        if (!val->null) BS_GUARD(encode_obj(f->sub, v, flex, val->items, w, depth + 1));
        break;
    case BS_KT_ARRAY:
        BS_ENSURE(val->count >= -1, BS_E_MALFORMED);
        BS_ENSURE(val->count >= 0 || nullable, BS_E_MALFORMED);
        bs_kafka_put_array_len(w, flex, val->count);
        if (f->elem == BS_KT_STRUCT) {
            BS_ENSURE(f->sub && (val->count <= 0 || val->items), BS_E_MALFORMED);
            for (int32_t k = 0; k < val->count; k++)
                BS_GUARD(encode_obj(f->sub, v, flex, &val->items[k], w, depth + 1));
        } else if (val->count > 0) {
            bs_wbuf_put(w, val->p, val->n);
        }
        break;
    default:
        return BS_E_MALFORMED;
    }
    return BS_OK;
}

#define MAX_TAGGED_PER_STRUCT 32

/* Writes struct `o`: its untagged fields, then (flexible) the tagged section
 * with known present tags and preserved unknown tags merged in ascending order. */
static bs_status encode_obj(const bs_kafka_struct *s, int16_t v, bool flex, const bs_kafka_obj *o,
                            bs_wbuf *w, int depth)
{
    BS_ENSURE(depth <= BS_KAFKA_MAX_DEPTH, BS_E_MALFORMED);
    BS_ENSURE(o->schema == s && (o->vals || s->nfields == 0), BS_E_MALFORMED);
    size_t known[MAX_TAGGED_PER_STRUCT], nknown = 0;
    for (size_t i = 0; i < s->nfields; i++) {
        const bs_kafka_field *f = &s->fields[i];
        if (!bs_kafka_field_present(f, v)) continue;
        if (bs_kafka_field_tagged(f, v)) {
            if (!o->vals[i].present) continue;
            BS_ENSURE(nknown < MAX_TAGGED_PER_STRUCT, BS_E_MALFORMED);
            /* insertion sort by tag: the schema lists fields, not tags, in order */
            size_t j = nknown++;
            while (j > 0 && s->fields[known[j - 1]].tag > f->tag) {
                known[j] = known[j - 1];
                j--;
            }
            known[j] = i;
            continue;
        }
        BS_GUARD(encode_value(f, f->type, v, flex, &o->vals[i], w, depth));
    }
    if (!flex) return BS_OK;
    bs_wbuf_put_uvarint(w, (uint32_t)(nknown + o->nunknown));
    size_t ki = 0, ui = 0;
    bs_status st = BS_OK;
    bs_wbuf tmp;
    bs_wbuf_init(&tmp, 0);
    while (st == BS_OK && (ki < nknown || ui < o->nunknown)) {
        bool take_known = ui >= o->nunknown ||
                          (ki < nknown && (uint32_t)s->fields[known[ki]].tag < o->unknown[ui].tag);
        if (take_known) {
            const bs_kafka_field *f = &s->fields[known[ki++]];
            /* the size prefix needs the encoded length: encode aside first */
            bs_wbuf_reset(&tmp);
            st = encode_value(f, f->type, v, flex, &o->vals[f - s->fields], &tmp, depth);
            if (st == BS_OK) st = bs_wbuf_status(&tmp);
            if (st == BS_OK && tmp.len > UINT32_MAX) st = BS_E_TOO_LARGE;
            if (st != BS_OK) break;
            bs_wbuf_put_uvarint(w, (uint32_t)f->tag);
            bs_wbuf_put_uvarint(w, (uint32_t)tmp.len);
            bs_wbuf_put(w, tmp.data, tmp.len);
        } else {
            const bs_kafka_tag *t = &o->unknown[ui++];
            if (t->n > UINT32_MAX) {
                st = BS_E_TOO_LARGE;
                break;
            }
            bs_wbuf_put_uvarint(w, t->tag);
            bs_wbuf_put_uvarint(w, (uint32_t)t->n);
            bs_wbuf_put(w, t->p, t->n);
        }
    }
    bs_wbuf_free(&tmp);
    return st;
}

/* See kafka_schema.h. */
bs_status bs_kafka_encode_struct(const bs_kafka_struct *s, int16_t version, bool flexible,
                                 const bs_kafka_obj *o, bs_wbuf *w, int depth)
{
    BS_GUARD(encode_obj(s, version, flexible, o, w, depth));
    return bs_wbuf_status(w);
}

/* See kafka_schema.h. */
bs_status bs_kafka_encode(const bs_kafka_message *m, int16_t version, const bs_kafka_obj *o,
                          bs_wbuf *w)
{
    BS_ENSURE(version >= m->min_version && version <= m->max_version, BS_E_UNSUPPORTED);
    return bs_kafka_encode_struct(m->body, version, version >= m->flex_min, o, w, 0);
}
