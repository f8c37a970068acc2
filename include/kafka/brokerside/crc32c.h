/*
 * crc32c.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of Kafka record batch v2.
 *
 * bs_crc32c() picks the fastest implementation once per process: the SSE4.2
 * `crc32` instruction when the CPU has it, otherwise a table-driven
 * slicing-by-8 loop. Both explicit paths are exported so tests can check each
 * against known vectors. All functions are thread-safe and never fail.
 */
#ifndef BROKERSIDE_CRC32C_H
#define BROKERSIDE_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Extend the checksum `crc` (0 to start) over `len` bytes at `data` and return it.
 * Chaining holds: crc(a||b) == bs_crc32c(bs_crc32c(0, a), b). */
uint32_t bs_crc32c(uint32_t crc, const void *data, size_t len);

/* The portable slicing-by-8 implementation; same contract as bs_crc32c(). */
uint32_t bs_crc32c_portable(uint32_t crc, const void *data, size_t len);

/* True when this CPU can run bs_crc32c_hw() (x86-64 with SSE4.2). */
bool bs_crc32c_hw_available(void);

/* The SSE4.2 implementation; same contract as bs_crc32c(). Only call it when
 * bs_crc32c_hw_available() is true (it falls back to the portable code otherwise). */
uint32_t bs_crc32c_hw(uint32_t crc, const void *data, size_t len);

#endif
