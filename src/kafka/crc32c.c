/* crc32c.c - CRC-32C with an SSE4.2 path and a slicing-by-8 fallback (see crc32c.h). */
#include "brokerside/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

/* Build the eight 256-entry tables: table[k][b] is the CRC of byte b followed
 * by k zero bytes, which lets the loop fold 8 input bytes per step. */
static void crc_table_init(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int i = 0; i < 8; i++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = crc_table[0][b];
        for (int k = 1; k < 8; k++) {
            c = crc_table[0][c & 0xff] ^ (c >> 8);
            crc_table[k][b] = c;
        }
    }
}

/* Read 4 little-endian bytes; memcpy-free byte assembly keeps this independent
 * of host endianness and alignment. */
static inline uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Contract in crc32c.h. */
uint32_t bs_crc32c_portable(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_table_once, crc_table_init);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (len >= 8) {
        uint32_t lo = load_le32(p) ^ c;
        uint32_t hi = load_le32(p + 4);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
            crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^
            crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

#if defined(__x86_64__)
/* Contract in crc32c.h. */
bool bs_crc32c_hw_available(void)
{
    return __builtin_cpu_supports("sse4.2");
}

/* The instruction computes exactly CRC-32C; compiled for SSE4.2 only in this function. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p,
                                                               size_t len)
{
    uint64_t c = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8); /* aligned here; memcpy keeps strict aliasing rules happy */
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}

/* Contract in crc32c.h. */
uint32_t bs_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    if (!bs_crc32c_hw_available()) return bs_crc32c_portable(crc, data, len);
    return crc32c_sse42(crc, data, len);
}
#else
/* Contract in crc32c.h: no hardware path on this architecture. */
bool bs_crc32c_hw_available(void)
{
    return false;
}

/* Contract in crc32c.h. */
uint32_t bs_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    return bs_crc32c_portable(crc, data, len);
}
#endif

/* Contract in crc32c.h. The CPU check is cheap (a cached cpuid result). */
uint32_t bs_crc32c(uint32_t crc, const void *data, size_t len)
{
    return bs_crc32c_hw(crc, data, len);
}
