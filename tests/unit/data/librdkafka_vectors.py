#!/usr/bin/python3
"""Record batches written by librdkafka (the C client under confluent-kafka, kcat and most
non-Java clients), for test_record_batch and test_envelope.

  librdkafka_vectors.py DIR    write DIR/rdk_batch_<codec>.bin for none, gzip, snappy, lz4, zstd

librdkafka's built-in mock cluster (rd_kafka_mock_cluster_new, reached through ctypes)
plays the broker: the confluent_kafka producer sends it one batch of 50 records per codec
(idempotent, so producer id and sequence are set), and kafka-python's low-level client
fetches that batch back verbatim (the mock broker only rewrites baseOffset, outside the
CRC). Records follow build_batch() in kafka_vectors.py. librdkafka writes raw snappy
(no xerial framing) and LZ4 frames with its own settings, which is why these vectors
exist next to kafka-python's. Run by hand with Debian's /usr/bin/python3; the output is
committed.
"""
import ctypes
import os
import sys

from confluent_kafka import Producer
from kafka.client_async import KafkaClient
from kafka.protocol.fetch import FetchRequest
from kafka.record.default_records import DefaultRecordBatch


def mock_cluster():
    lib = ctypes.CDLL("librdkafka.so.1")
    lib.rd_kafka_conf_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
    lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
    err = ctypes.create_string_buffer(512)
    rk = lib.rd_kafka_new(0, lib.rd_kafka_conf_new(), err, len(err))
    mc = lib.rd_kafka_mock_cluster_new(rk, 1)
    # rk and mc stay alive until the process exits.
    return lib.rd_kafka_mock_cluster_bootstraps(mc).decode()


def produce(bootstrap, topic, codec):
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                  "enable.idempotence": True, "linger.ms": 500})
    for i in range(50):
        key = None if i % 10 == 3 else b"key-%d" % i
        value = None if i % 10 == 7 else (b"value %d " % i) * 20
        headers = [("h1", b"v%d" % i), ("h2", None)] if i % 5 == 0 else None
        p.produce(topic, partition=0, key=key, value=value, headers=headers,
                  timestamp=1700000000000 + i * 3)
    if p.flush(30) != 0:
        raise SystemExit("%s: not all records were delivered" % topic)


def fetch(bootstrap, topic):
    c = KafkaClient(bootstrap_servers=bootstrap, api_version=(2, 0))
    node = 1
    for _ in range(100):
        if c.ready(node):
            break
        c.poll(timeout_ms=100)
    f = c.send(node, FetchRequest[4](-1, 1000, 1, 10 << 20, 0, [(topic, [(0, 0, 10 << 20)])]))
    while not f.is_done:
        c.poll(timeout_ms=100)
    part = f.value.topics[0][1][0]
    c.close()
    if part[1] != 0:
        raise SystemExit("%s: fetch error %d" % (topic, part[1]))
    return part[-1]


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    bootstrap = mock_cluster()
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        topic = "vectors-" + codec
        produce(bootstrap, topic, codec)
        data = fetch(bootstrap, topic)
        batch = DefaultRecordBatch(bytearray(data))
        crc_ok = batch.validate_crc()
        n = len(list(batch))
        length = int.from_bytes(data[8:12], "big")
        if len(data) != length + 12 or n != 50 or not crc_ok:
            raise SystemExit("%s: expected one valid batch of 50 records" % topic)
        with open(os.path.join(argv[1], "rdk_batch_%s.bin" % codec), "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
