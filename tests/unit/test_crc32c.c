/* Unit tests for src/kafka/crc32c.c: both implementations against known vectors and each other. */
#include <stdint.h>

#include "brokerside/crc32c.h"
#include "test.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

/* Vectors: "123456789" is the standard check value; the 32-byte ones are from RFC 3720 B.4. */
static void check_vectors(crc_fn f)
{
    CHECK_EQ(f(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ(f(0, "", 0), 0);
    uint8_t zeros[32] = {0}, ones[32], inc[32], dec[32];
    memset(ones, 0xff, sizeof ones);
    for (int i = 0; i < 32; i++) {
        inc[i] = (uint8_t)i;
        dec[i] = (uint8_t)(31 - i);
    }
    CHECK_EQ(f(0, zeros, 32), 0x8A9136AAu);
    CHECK_EQ(f(0, ones, 32), 0x62A8AB43u);
    CHECK_EQ(f(0, inc, 32), 0x46DD794Eu);
    CHECK_EQ(f(0, dec, 32), 0x113FDB5Cu);
    /* Chaining across a split at every offset, including unaligned starts. */
    for (size_t cut = 0; cut <= 9; cut++)
        CHECK_EQ(f(f(0, "123456789", cut), &"123456789"[cut], 9 - cut), 0xE3069283u);
}

/* The slicing-by-8 path against the known vectors. */
static void test_portable_vectors(void)
{
    check_vectors(bs_crc32c_portable);
}

/* The SSE4.2 path (or its fallback) and the dispatcher against the known vectors. */
static void test_hw_vectors(void)
{
    if (!bs_crc32c_hw_available()) fprintf(stderr, "  (no SSE4.2 here: checking the fallback)\n");
    check_vectors(bs_crc32c_hw);
    check_vectors(bs_crc32c);
}

/* The two paths agree on every length and alignment of pseudo-random data. */
static void test_paths_agree(void)
{
    uint8_t buf[1100];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= sizeof buf; len += 37)
            CHECK_EQ(bs_crc32c_portable(0, buf + off, len), bs_crc32c_hw(0, buf + off, len));
    /* A single flipped bit changes the checksum. */
    uint32_t before = bs_crc32c(0, buf, sizeof buf);
    buf[500] ^= 0x10;
    CHECK(bs_crc32c(0, buf, sizeof buf) != before);
}

/* Run every test; non-zero exit on failure. */
int main(void)
{
    RUN(test_portable_vectors);
    RUN(test_hw_vectors);
    RUN(test_paths_agree);
    return test_report();
}
