// kafkajs through brokerside: produce N messages, then consume them back with
// a consumer group; prints "CONSUMED <n>" and exits 0 when all came back.
// usage: node kafkajs_client.js BOOTSTRAP CA_FILE TOPIC GROUP COUNT
'use strict';
const fs = require('fs');
const path = require('path');
const { Kafka, logLevel } = require(path.join(__dirname, '..', 'node_modules', 'kafkajs'));

async function main() {
  const [bootstrap, caFile, topic, group, countText] = process.argv.slice(2);
  const count = parseInt(countText, 10);
  if (!bootstrap || !caFile || !topic || !group || !(count > 0)) {
    console.error('usage: node kafkajs_client.js BOOTSTRAP CA_FILE TOPIC GROUP COUNT');
    process.exit(2);
  }
  const kafka = new Kafka({
    clientId: 'bs-kafkajs',
    brokers: bootstrap.split(','),
    ssl: { ca: [fs.readFileSync(caFile, 'utf-8')], servername: 'localhost' },
    logLevel: logLevel.WARN,
    retry: { retries: 10 },
  });
  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let i = 0; i < count; i++) messages.push({ value: 'kafkajs-' + i });
  await producer.send({ topic, messages, acks: -1 });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: group });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = new Set();
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timeout: consumed ' + seen.size)), 90000);
    consumer.run({
      eachMessage: async ({ message }) => {
        const v = message.value.toString();
        if (v.startsWith('kafkajs-')) seen.add(v);
        if (seen.size >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  console.log('CONSUMED ' + seen.size);
}

main().then(() => process.exit(0), (e) => {
  console.error('kafkajs_client failed: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
