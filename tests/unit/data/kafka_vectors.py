#!/usr/bin/python3
"""Test vectors from a real Kafka client library (kafka-python) for test_compression and
test_record_batch, and checks of C output by the same library.

  kafka_vectors.py generate DIR        write the committed vectors (run once, by hand)
  kafka_vectors.py decode CODEC FILE   decode FILE with kafka.codec, compare with plain_text()
  kafka_vectors.py batch-compare ORIG NEW PREFIX
        both batches must pass kafka-python's CRC check and hold the same records and
        header fields, except that every non-null value of NEW is PREFIX + ORIG's value
        (PREFIX "-" = values unchanged)

Run with Debian's /usr/bin/python3 (python3-kafka, python3-snappy, python3-lz4,
python3-zstandard). Exit status 0 = success.
"""
import os
import sys

from kafka import codec
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def plain_text():
    # Mirrored by plain_text() in test_compression.c: > 2 xerial blocks, > 1 lz4 block.
    return b"".join(b"record %06d brokerside compression vector\n" % i for i in range(2000))


def build_batch(codec_id, transactional=False):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec_id,
                                  is_transactional=transactional, producer_id=4242,
                                  producer_epoch=7, base_sequence=100, batch_size=1 << 20)
    for i in range(50):
        key = None if i % 10 == 3 else b"key-%d" % i
        value = None if i % 10 == 7 else (b"value %d " % i) * 20
        headers = [("h1", b"v%d" % i), ("h2", None)] if i % 5 == 0 else []
        b.append(i, timestamp=1700000000000 + i * 3, key=key, value=value, headers=headers)
    return bytes(b.build())


def generate(out):
    text = plain_text()
    enc = {"gzip": codec.gzip_encode, "snappy": codec.snappy_encode,
           "lz4": codec.lz4_encode, "zstd": codec.zstd_encode}
    for name, fn in enc.items():
        with open(os.path.join(out, "codec_%s.bin" % name), "wb") as f:
            f.write(fn(text))
    with open(os.path.join(out, "codec_snappy_raw.bin"), "wb") as f:
        f.write(codec.snappy_encode(text, xerial_compatible=False))
    for name, cid in list(CODECS.items()) + [("none", 0)]:
        data = build_batch(cid)
        assert DefaultRecordBatch(bytearray(data)).compression_type == cid
        with open(os.path.join(out, "batch_%s.bin" % name), "wb") as f:
            f.write(data)
    with open(os.path.join(out, "batch_txn_zstd.bin"), "wb") as f:
        f.write(build_batch(4, transactional=True))


def decode(name, path):
    dec = {"gzip": codec.gzip_decode, "snappy": codec.snappy_decode,
           "lz4": codec.lz4_decode, "zstd": codec.zstd_decode}[name]
    with open(path, "rb") as f:
        data = f.read()
    got = dec(data)
    if got != plain_text():
        print("decoded %d bytes differ from the expected %d" % (len(got), len(plain_text())))
        return 1
    return 0


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    batch = DefaultRecordBatch(bytearray(data))
    if not batch.validate_crc():
        raise SystemExit("%s: CRC does not verify" % path)
    # Every header byte except batchLength (8-11) and crc (17-20) must survive a rewrite.
    head = data[0:8] + data[12:17] + data[21:61]
    recs = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in batch]
    return head, recs


def batch_compare(orig, new, prefix):
    h1, r1 = records(orig)
    h2, r2 = records(new)
    if h1 != h2:
        print("header fields differ:", h1, h2)
        return 1
    if len(r1) != len(r2):
        print("record counts differ:", len(r1), len(r2))
        return 1
    p = b"" if prefix == "-" else prefix.encode()
    for a, b in zip(r1, r2):
        want = a[3] if a[3] is None else p + a[3]
        if a[:3] != b[:3] or a[4] != b[4] or b[3] != want:
            print("record differs:", a, b)
            return 1
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "generate":
        generate(argv[2])
        return 0
    if len(argv) == 4 and argv[1] == "decode":
        return decode(argv[2], argv[3])
    if len(argv) == 5 and argv[1] == "batch-compare":
        return batch_compare(argv[2], argv[3], argv[4])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
