// kafkajs with every compression codec it can use here, for test_encryption.py.
//   node kafkajs_codecs.js produce BOOTSTRAP CA_FILE TOPIC PER_CODEC
//     sends, per codec (none gzip snappy lz4 zstd), one batch of PER_CODEC
//     records: value "kjs-<codec>-<i> secret payload " x8, key
//     "kjsk-<codec>-<i>", headers trace=t<i>, codec=<codec>; then one
//     tombstone (key "kjs-deleted", no headers). Prints "PRODUCED <n>".
//   node kafkajs_codecs.js consume BOOTSTRAP CA_FILE TOPIC COUNT
//     reads the first COUNT records of partition 0 and prints one JSON line
//     per record: {"value": hex|null, "key": hex|null, "headers": [[k, hex]]}.
// Exit 0 on success, 1 on any failure (the error on stderr), 2 on bad usage.
//
// Codecs: snappy comes from kafkajs-snappy (pure JS, snappyjs). lz4 and zstd
// have no pure-JS kafkajs codec package (kafkajs-lz4 and @kafkajs/zstd build
// native addons), so they are wired here on lz4js (pure JS, LZ4 frame format,
// which is what Kafka's lz4 codec uses) and @bokuweb/zstd-wasm (wasm).
'use strict';
const fs = require('fs');
const path = require('path');
const nm = path.join(__dirname, '..', 'node_modules');
const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = require(path.join(nm, 'kafkajs'));
const SnappyCodec = require(path.join(nm, 'kafkajs-snappy'));
const lz4js = require(path.join(nm, 'lz4js'));
const zstd = require(path.join(nm, '@bokuweb', 'zstd-wasm'));

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};

// Registers the non-built-in codecs with kafkajs. zstd's wasm module must be
// initialised (async) before the first compress/decompress.
async function registerCodecs() {
  await zstd.init();
  CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
  CompressionCodecs[CompressionTypes.LZ4] = () => ({
    // kafkajs hands an Encoder (its bytes in .buffer) to compress and a Buffer
    // to decompress; both must resolve to a Buffer.
    async compress(encoder) { return Buffer.from(lz4js.compress(encoder.buffer)); },
    async decompress(buffer) { return Buffer.from(lz4js.decompress(buffer)); },
  });
  CompressionCodecs[CompressionTypes.ZSTD] = () => ({
    async compress(encoder) { return Buffer.from(zstd.compress(new Uint8Array(encoder.buffer), 3)); },
    async decompress(buffer) { return Buffer.from(zstd.decompress(new Uint8Array(buffer))); },
  });
}

function client(bootstrap, caFile) {
  return new Kafka({
    clientId: 'bs-kafkajs-codecs',
    brokers: bootstrap.split(','),
    ssl: { ca: [fs.readFileSync(caFile, 'utf-8')], servername: 'localhost' },
    logLevel: logLevel.WARN,
    retry: { retries: 10 },
  });
}

async function produce(kafka, topic, perCodec) {
  const producer = kafka.producer();
  await producer.connect();
  let n = 0;
  try {
    for (const [name, type] of Object.entries(CODECS)) {
      const messages = [];
      for (let i = 0; i < perCodec; i++) {
        messages.push({
          value: ('kjs-' + name + '-' + i + ' secret payload ').repeat(8),
          key: 'kjsk-' + name + '-' + i,
          headers: { trace: 't' + i, codec: name },
        });
      }
      // one send per codec: each becomes its own batch with that codec
      await producer.send({ topic, messages, acks: -1, compression: type });
      n += messages.length;
    }
    await producer.send({ topic, messages: [{ key: 'kjs-deleted', value: null }], acks: -1 });
    n += 1;
  } finally {
    await producer.disconnect();
  }
  console.log('PRODUCED ' + n);
}

async function consume(kafka, topic, count) {
  const consumer = kafka.consumer({ groupId: 'kjs-' + process.pid + '-' + Date.now() });
  await consumer.connect();
  const got = [];
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timeout: consumed ' + got.length)), 90000);
      consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          if (partition !== 0 || got.length >= count) return;
          const hex = (b) => (b === null || b === undefined ? null : Buffer.from(b).toString('hex'));
          got.push({
            value: hex(message.value),
            key: hex(message.key),
            headers: Object.entries(message.headers || {}).map(([k, v]) => [k, hex(v)]),
          });
          if (got.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  for (const r of got) console.log(JSON.stringify(r));
}

async function main() {
  const [mode, bootstrap, caFile, topic, nText] = process.argv.slice(2);
  const n = parseInt(nText, 10);
  if (!['produce', 'consume'].includes(mode) || !bootstrap || !caFile || !topic || !(n > 0)) {
    console.error('usage: node kafkajs_codecs.js produce|consume BOOTSTRAP CA_FILE TOPIC N');
    process.exit(2);
  }
  await registerCodecs();
  const kafka = client(bootstrap, caFile);
  if (mode === 'produce') await produce(kafka, topic, n);
  else await consume(kafka, topic, n);
}

main().then(() => process.exit(0), (e) => {
  console.error('kafkajs_codecs failed: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
