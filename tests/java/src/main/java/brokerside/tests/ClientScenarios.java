package brokerside.tests;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Kafka Java client scenarios that the integration tests run through brokerside.
 *
 * <pre>
 *   java -cp 'DIR/*' brokerside.tests.ClientScenarios SCENARIO CLIENT_PROPERTIES [name=value ...]
 * </pre>
 *
 * CLIENT_PROPERTIES is a properties file with everything a client needs to reach the cluster
 * (bootstrap.servers, security.protocol, ssl.*, sasl.*); each scenario adds its own settings.
 * Scenario options (name=value): topic, count, codec, group, protocol, partitions, rf,
 * transactional.id, pace.ms, prefix. Progress and the result are JSON lines on stdout; the
 * last line is {"event":"result","ok":...}. Exit status: 0 when ok, 1 when a check failed,
 * 2 on a usage error. Every host:port the client learned from the cluster (partition
 * leaders and replicas, describeCluster) is listed under "nodes", so a test can check that
 * only the sidecars' addresses ever reached the client.
 */
public final class ClientScenarios {
    private static final Duration WAIT = Duration.ofSeconds(90);

    private final Properties base;
    private final Map<String, String> opts;
    private final Set<String> nodes = Collections.synchronizedSet(new TreeSet<>());
    private final Map<String, Object> result = new LinkedHashMap<>();
    private boolean ok = true;

    private ClientScenarios(Properties base, Map<String, String> opts) {
        this.base = base;
        this.opts = opts;
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel",
                System.getProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn"));
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        if (args.length < 2) {
            System.err.println("usage: ClientScenarios SCENARIO CLIENT_PROPERTIES [name=value ...]");
            System.exit(2);
        }
        Properties base = new Properties();
        try (InputStream in = new FileInputStream(args[1])) {
            base.load(in);
        }
        Map<String, String> opts = new HashMap<>();
        for (int i = 2; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("bad option (want name=value): " + args[i]);
                System.exit(2);
            }
            opts.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        ClientScenarios s = new ClientScenarios(base, opts);
        try {
            switch (args[0]) {
                case "produce" -> s.produce();
                case "transactions" -> s.transactions();
                case "group" -> s.group();
                case "share" -> s.share();
                case "admin" -> s.adminScenario();
                case "failover" -> s.failover();
                default -> {
                    System.err.println("unknown scenario " + args[0]);
                    System.exit(2);
                }
            }
        } catch (Exception e) {
            e.printStackTrace();
            s.fail("exception: " + e);
        }
        s.result.put("nodes", new ArrayList<>(s.nodes));
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("event", "result");
        line.put("ok", s.ok);
        line.putAll(s.result);
        emit(line);
        System.exit(s.ok ? 0 : 1);
    }

    // ------------------------------------------------------------------ helpers

    private String opt(String name, String dflt) {
        String v = opts.get(name);
        if (v == null && dflt == null) throw new IllegalArgumentException("missing option " + name + "=");
        return v != null ? v : dflt;
    }

    private int intOpt(String name, int dflt) {
        return Integer.parseInt(opt(name, Integer.toString(dflt)));
    }

    private void fail(String why) {
        ok = false;
        @SuppressWarnings("unchecked")
        List<String> errors = (List<String>) result.computeIfAbsent("errors", k -> new ArrayList<String>());
        errors.add(why);
        System.err.println("CHECK FAILED: " + why);
    }

    private void check(boolean cond, String what) {
        if (!cond) fail(what);
    }

    private Properties props(Map<String, Object> extra) {
        Properties p = new Properties();
        p.putAll(base);
        p.putAll(extra);
        return p;
    }

    private KafkaProducer<String, String> producer(Map<String, Object> extra) {
        Map<String, Object> m = new HashMap<>();
        m.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        m.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        m.put(ProducerConfig.ACKS_CONFIG, "all");
        m.putAll(extra);
        return new KafkaProducer<>(props(m));
    }

    private KafkaConsumer<String, String> consumer(Map<String, Object> extra) {
        Map<String, Object> m = new HashMap<>();
        m.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        m.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        m.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        m.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        m.putAll(extra);
        return new KafkaConsumer<>(props(m));
    }

    private Admin admin() {
        return Admin.create(props(Map.of()));
    }

    private void noteNode(Node n) {
        if (n != null && !n.isEmpty()) nodes.add(n.host() + ":" + n.port());
    }

    private void notePartitions(List<PartitionInfo> parts) {
        for (PartitionInfo p : parts) {
            noteNode(p.leader());
            if (p.replicas() != null) for (Node n : p.replicas()) noteNode(n);
        }
    }

    private void noteCluster(Admin admin) throws Exception {
        DescribeClusterResult dc = admin.describeCluster();
        for (Node n : dc.nodes().get(60, TimeUnit.SECONDS)) noteNode(n);
        noteNode(dc.controller().get(60, TimeUnit.SECONDS));
    }

    private static void emit(Map<String, Object> m) {
        StringBuilder b = new StringBuilder();
        json(b, m);
        synchronized (System.out) {
            System.out.println(b);
            System.out.flush();
        }
    }

    private static void json(StringBuilder b, Object v) {
        if (v == null) {
            b.append("null");
        } else if (v instanceof Boolean || v instanceof Number) {
            b.append(v);
        } else if (v instanceof Map<?, ?> m) {
            b.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (!first) b.append(',');
                first = false;
                json(b, String.valueOf(e.getKey()));
                b.append(':');
                json(b, e.getValue());
            }
            b.append('}');
        } else if (v instanceof Collection<?> c) {
            b.append('[');
            boolean first = true;
            for (Object o : c) {
                if (!first) b.append(',');
                first = false;
                json(b, o);
            }
            b.append(']');
        } else {
            String s = v.toString();
            b.append('"');
            for (int i = 0; i < s.length(); i++) {
                char ch = s.charAt(i);
                if (ch == '"' || ch == '\\') b.append('\\').append(ch);
                else if (ch < 0x20) b.append(String.format("\\u%04x", (int) ch));
                else b.append(ch);
            }
            b.append('"');
        }
    }

    /** Creates the topic unless it exists (partitions, rf options). */
    private void ensureTopic(Admin admin, String topic) throws Exception {
        NewTopic nt = new NewTopic(topic, intOpt("partitions", 1), (short) intOpt("rf", 1));
        try {
            admin.createTopics(List.of(nt)).all().get(60, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            if (!(e.getCause() instanceof TopicExistsException)) throw e;
        }
    }

    /** Sends `values` (keys "k0", "k1", ...: never a substring of a value, so a test can look
     *  for values on the broker's disk) and waits for every acknowledgement. */
    private void sendAll(KafkaProducer<String, String> p, String topic, List<String> values) throws Exception {
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        int i = 0;
        for (String v : values) fs.add(p.send(new ProducerRecord<>(topic, "k" + i++, v)));
        p.flush();
        for (Future<RecordMetadata> f : fs) f.get(120, TimeUnit.SECONDS);
    }

    /** Every value in the topic from the beginning up to the end offsets (as the isolation
     *  level sees them), read by partition assignment. */
    private List<String> readAll(String topic, String isolation) {
        List<String> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation))) {
            List<PartitionInfo> infos = c.partitionsFor(topic, WAIT);
            notePartitions(infos);
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : infos) tps.add(new TopicPartition(topic, pi.partition()));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, WAIT);
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (System.nanoTime() < deadline) {
                boolean done = true;
                for (TopicPartition tp : tps) done &= c.position(tp, WAIT) >= end.get(tp);
                if (done) break;
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) out.add(r.value());
            }
        }
        return out;
    }

    private static List<String> values(String prefix, int from, int count) {
        List<String> v = new ArrayList<>();
        for (int i = from; i < from + count; i++) v.add(prefix + "-" + i);
        return v;
    }

    // ------------------------------------------------------------------ scenarios

    /** An idempotent producer per compression codec (codec=a,b,...: topic "TOPIC-CODEC" each
     *  when several); the records are read back, each exactly once. */
    private void produce() throws Exception {
        String topic = opt("topic", null);
        String[] codecs = opt("codec", "none").split(",");
        int count = intOpt("count", 100);
        Map<String, Object> perCodec = new LinkedHashMap<>();
        for (String codec : codecs) {
            String t = codecs.length > 1 ? topic + "-" + codec : topic;
            String prefix = opt("prefix", "value") + "-" + codec;
            try (Admin a = admin()) {
                ensureTopic(a, t);
            }
            List<String> sent = values(prefix, 0, count);
            try (KafkaProducer<String, String> p = producer(Map.of(
                    ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true",
                    ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
                    ProducerConfig.LINGER_MS_CONFIG, "20"))) {
                sendAll(p, t, sent);
                notePartitions(p.partitionsFor(t));
            }
            List<String> mine = new ArrayList<>();
            for (String v : readAll(t, "read_uncommitted")) if (v.startsWith(prefix + "-")) mine.add(v);
            Set<String> distinct = new HashSet<>(mine);
            perCodec.put(codec, Map.of("topic", t, "produced", count, "read", mine.size()));
            check(distinct.equals(new HashSet<>(sent)), codec + ": read back " + distinct.size() + " of " + count + " values");
            check(mine.size() == count, codec + ": duplicates: read " + mine.size() + " records for " + count + " sent");
        }
        result.put("codecs", perCodec);
    }

    /** Commit, abort, commit; read_committed sees only the committed records. */
    private void transactions() throws Exception {
        String topic = opt("topic", null);
        int n = intOpt("count", 10);
        try (Admin a = admin()) {
            ensureTopic(a, topic);
        }
        try (KafkaProducer<String, String> p = producer(Map.of(
                ProducerConfig.TRANSACTIONAL_ID_CONFIG, opt("transactional.id", "bs-txn-" + topic)))) {
            p.initTransactions();
            p.beginTransaction();
            sendAll(p, topic, values("committed-a", 0, n));
            p.commitTransaction();
            p.beginTransaction();
            sendAll(p, topic, values("aborted", 0, n));
            p.abortTransaction();
            p.beginTransaction();
            sendAll(p, topic, values("committed-b", 0, n));
            p.commitTransaction();
            notePartitions(p.partitionsFor(topic));
        }
        List<String> committed = readAll(topic, "read_committed");
        List<String> all = readAll(topic, "read_uncommitted");
        List<String> want = values("committed-a", 0, n);
        want.addAll(values("committed-b", 0, n));
        result.put("read_committed", committed.size());
        result.put("read_uncommitted", all.size());
        check(new TreeSet<>(committed).equals(new TreeSet<>(want)) && committed.size() == 2 * n,
                "read_committed saw " + committed);
        check(all.containsAll(values("aborted", 0, n)), "read_uncommitted misses the aborted records");
    }

    /** Two members of one consumer group (group.protocol = protocol) share the partitions
     *  and together read every record once; the group is described through AdminClient. */
    private void group() throws Exception {
        String topic = opt("topic", null), group = opt("group", null), protocol = opt("protocol", "consumer");
        int count = intOpt("count", 60);
        try (Admin a = admin()) {
            ensureTopic(a, topic);
        }
        List<String> sent = values("group-" + protocol, 0, count);
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            sendAll(p, topic, sent);
        }
        Map<String, Integer> seen = new ConcurrentHashMap<>();
        List<AtomicReference<Set<TopicPartition>>> assigned = new ArrayList<>();
        AtomicBoolean stop = new AtomicBoolean();
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
        int members = intOpt("members", 2);
        for (int m = 0; m < members; m++) {
            AtomicReference<Set<TopicPartition>> mine = new AtomicReference<>(Set.of());
            assigned.add(mine);
            Thread t = new Thread(() -> {
                Map<String, Object> extra = new HashMap<>();
                extra.put(ConsumerConfig.GROUP_ID_CONFIG, group);
                extra.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
                try (KafkaConsumer<String, String> c = consumer(extra)) {
                    c.subscribe(List.of(topic));
                    while (!stop.get()) {
                        ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(300));
                        for (ConsumerRecord<String, String> r : rs) seen.merge(r.value(), 1, Integer::sum);
                        if (!rs.isEmpty()) c.commitSync();
                        mine.set(new HashSet<>(c.assignment()));
                    }
                    c.commitSync();
                    notePartitions(c.partitionsFor(topic));
                } catch (Throwable e) {
                    errors.add(e);
                    e.printStackTrace();
                }
            }, "member-" + m);
            threads.add(t);
            t.start();
        }
        int partitions = intOpt("partitions", 1);
        long deadline = System.nanoTime() + WAIT.toNanos();
        boolean balanced = false;
        while (System.nanoTime() < deadline && errors.isEmpty()) {
            Set<TopicPartition> union = new HashSet<>();
            int total = 0, busy = 0;
            for (AtomicReference<Set<TopicPartition>> r : assigned) {
                union.addAll(r.get());
                total += r.get().size();
                if (!r.get().isEmpty()) busy++;
            }
            balanced = union.size() == partitions && total == partitions && busy == Math.min(members, partitions);
            if (balanced && seen.keySet().containsAll(sent)) break;
            Thread.sleep(200);
        }
        List<Object> view = new ArrayList<>();
        for (AtomicReference<Set<TopicPartition>> r : assigned) {
            List<Integer> ps = new ArrayList<>();
            for (TopicPartition tp : r.get()) ps.add(tp.partition());
            Collections.sort(ps);
            view.add(ps);
        }
        result.put("assignments", view);
        check(balanced, "partitions not split between the members: " + view);
        check(seen.keySet().containsAll(sent), "members read " + seen.size() + " of " + count + " values");
        try (Admin a = admin()) {
            ConsumerGroupDescription d = a.describeConsumerGroups(List.of(group)).all()
                    .get(60, TimeUnit.SECONDS).get(group);
            result.put("group_type", d.type().toString());
            result.put("group_members", d.members().size());
            check(d.type().toString().equalsIgnoreCase(protocol), "group type " + d.type() + ", want " + protocol);
            check(d.members().size() == members, "described members " + d.members().size());
            noteNode(d.coordinator());
            stop.set(true);
            for (Thread t : threads) t.join(60_000);
            long committed = 0;
            for (OffsetAndMetadata om : a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
                    .get(60, TimeUnit.SECONDS).values())
                if (om != null) committed += om.offset();
            result.put("committed", committed);
            check(committed == count, "committed offsets sum " + committed + ", want " + count);
        } finally {
            stop.set(true);
        }
        check(errors.isEmpty(), "member errors: " + errors);
    }

    /** A share-group consumer (KIP-932) reads and acknowledges every record. */
    private void share() throws Exception {
        String topic = opt("topic", null), group = opt("group", null);
        int count = intOpt("count", 30);
        try (Admin a = admin()) {
            ensureTopic(a, topic);
            ConfigResource gr = new ConfigResource(ConfigResource.Type.GROUP, group);
            a.incrementalAlterConfigs(Map.of(gr, List.of(new AlterConfigOp(
                    new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET))))
                    .all().get(60, TimeUnit.SECONDS);
        }
        List<String> sent = values("share", 0, count);
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            sendAll(p, topic, sent);
        }
        Set<String> seen = new HashSet<>();
        Map<String, Object> extra = new HashMap<>();
        extra.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        extra.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        extra.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        extra.put("share.acknowledgement.mode", "explicit");
        try (KafkaShareConsumer<String, String> c = new KafkaShareConsumer<>(props(extra))) {
            c.subscribe(List.of(topic));
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (System.nanoTime() < deadline && !seen.containsAll(sent)) {
                ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(500));
                for (ConsumerRecord<String, String> r : rs) {
                    seen.add(r.value());
                    c.acknowledge(r, AcknowledgeType.ACCEPT);
                }
                if (!rs.isEmpty()) c.commitSync(Duration.ofSeconds(60));
            }
        }
        result.put("read", seen.size());
        check(seen.containsAll(sent), "share consumer read " + seen.size() + " of " + count);
        try (Admin a = admin()) {
            Set<String> shareGroups = new TreeSet<>();
            for (GroupListing g : a.listGroups().all().get(60, TimeUnit.SECONDS))
                if (g.type().isPresent() && g.type().get().toString().equalsIgnoreCase("share"))
                    shareGroups.add(g.groupId());
            result.put("share_groups", new ArrayList<>(shareGroups));
            check(shareGroups.contains(group), "listGroups has no share group " + group);
        }
    }

    /** AdminClient: topics and configs created, described, altered and deleted; the cluster
     *  described and the groups listed. */
    private void adminScenario() throws Exception {
        String topic = opt("topic", null);
        try (Admin a = admin()) {
            a.createTopics(List.of(new NewTopic(topic, 2, (short) intOpt("rf", 1))
                    .configs(Map.of("cleanup.policy", "compact")))).all().get(60, TimeUnit.SECONDS);
            TopicDescription td = a.describeTopics(List.of(topic)).allTopicNames().get(60, TimeUnit.SECONDS).get(topic);
            check(td.partitions().size() == 2, "described " + td.partitions().size() + " partitions");
            td.partitions().forEach(p -> {
                noteNode(p.leader());
                p.replicas().forEach(this::noteNode);
                p.isr().forEach(this::noteNode);
            });
            ConfigResource tr = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            a.incrementalAlterConfigs(Map.of(tr, List.of(new AlterConfigOp(
                    new ConfigEntry("retention.ms", "4321000"), AlterConfigOp.OpType.SET))))
                    .all().get(60, TimeUnit.SECONDS);
            // the broker serves describeConfigs from its metadata cache, which may trail the
            // controller's commit for a moment
            Config cfg = awaitConfig(a, tr, c -> "4321000".equals(c.get("retention.ms").value()));
            check("4321000".equals(cfg.get("retention.ms").value()), "retention.ms = " + cfg.get("retention.ms").value());
            check("compact".equals(cfg.get("cleanup.policy").value()), "cleanup.policy = " + cfg.get("cleanup.policy").value());
            a.incrementalAlterConfigs(Map.of(tr, List.of(new AlterConfigOp(
                    new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE))))
                    .all().get(60, TimeUnit.SECONDS);
            Config after = awaitConfig(a, tr,
                    c -> c.get("retention.ms").source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG);
            check(after.get("retention.ms").source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "retention.ms still set on the topic after DELETE");
            a.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all().get(60, TimeUnit.SECONDS);
            long deadline = System.nanoTime() + WAIT.toNanos();
            int parts = 0;
            while (System.nanoTime() < deadline && parts != 3) {
                parts = a.describeTopics(List.of(topic)).allTopicNames().get(60, TimeUnit.SECONDS).get(topic).partitions().size();
                if (parts != 3) Thread.sleep(200);
            }
            check(parts == 3, "partitions after createPartitions: " + parts);
            DescribeClusterResult dc = a.describeCluster();
            List<String> clusterNodes = new ArrayList<>();
            for (Node n : dc.nodes().get(60, TimeUnit.SECONDS)) {
                clusterNodes.add(n.id() + "@" + n.host() + ":" + n.port());
                noteNode(n);
            }
            noteNode(dc.controller().get(60, TimeUnit.SECONDS));
            result.put("cluster_id", dc.clusterId().get(60, TimeUnit.SECONDS));
            result.put("cluster_nodes", clusterNodes);
            Set<String> groups = new TreeSet<>();
            for (GroupListing g : a.listGroups().all().get(60, TimeUnit.SECONDS)) groups.add(g.groupId());
            result.put("groups", new ArrayList<>(groups));
            a.deleteTopics(List.of(topic)).all().get(60, TimeUnit.SECONDS);
            boolean gone = false;
            while (System.nanoTime() < deadline && !gone) {
                try {
                    a.describeTopics(List.of(topic)).allTopicNames().get(60, TimeUnit.SECONDS);
                    Thread.sleep(200);
                } catch (ExecutionException e) {
                    gone = e.getCause() instanceof UnknownTopicOrPartitionException;
                    if (!gone) throw e;
                }
            }
            check(gone, "topic still described after deleteTopics");
            check(!a.listTopics().names().get(60, TimeUnit.SECONDS).contains(topic), "topic still listed");
        }
    }

    /** describeConfigs of `r` until `done` holds (or the wait ends); the last answer. */
    private Config awaitConfig(Admin a, ConfigResource r, java.util.function.Predicate<Config> done) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        Config c = a.describeConfigs(List.of(r)).all().get(60, TimeUnit.SECONDS).get(r);
        while (!done.test(c) && System.nanoTime() < deadline) {
            Thread.sleep(200);
            c = a.describeConfigs(List.of(r)).all().get(60, TimeUnit.SECONDS).get(r);
        }
        return c;
    }

    /** Produces `count` records one every pace.ms with an idempotent acks=all producer while
     *  the test stops a leader; every acknowledged record must be readable afterwards. The
     *  client's view of the partition leaders is sampled all along. */
    private void failover() throws Exception {
        String topic = opt("topic", null);
        int count = intOpt("count", 300), pace = intOpt("pace.ms", 20);
        List<String> acked = Collections.synchronizedList(new ArrayList<>());
        List<String> failed = Collections.synchronizedList(new ArrayList<>());
        Map<String, Object> extra = new HashMap<>();
        extra.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        extra.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        extra.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        extra.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        Set<String> leaders = new TreeSet<>();
        try (KafkaProducer<String, String> p = producer(extra)) {
            long lastView = 0;
            for (int i = 0; i < count; i++) {
                String v = "failover-" + i;
                p.send(new ProducerRecord<>(topic, "k" + i, v), (md, e) -> {
                    if (e == null) acked.add(v);
                    else failed.add(v + ": " + e);
                });
                if (i % 25 == 0) emit(Map.of("event", "progress", "sent", i, "acked", acked.size()));
                if (System.nanoTime() - lastView > 250_000_000L) {
                    lastView = System.nanoTime();
                    List<PartitionInfo> infos = p.partitionsFor(topic);
                    notePartitions(infos);
                    for (PartitionInfo pi : infos) if (pi.leader() != null) leaders.add(pi.partition() + "@" + pi.leader().id());
                }
                Thread.sleep(pace);
            }
            p.flush();
            notePartitions(p.partitionsFor(topic));
        }
        List<String> got = readAll(topic, "read_uncommitted");
        Set<String> have = new HashSet<>(got);
        List<String> lost = new ArrayList<>();
        synchronized (acked) {
            for (String v : acked) if (!have.contains(v)) lost.add(v);
        }
        try (Admin a = admin()) {
            noteCluster(a);
        }
        result.put("acked", acked.size());
        result.put("failed", failed.size());
        result.put("leaders_seen", new ArrayList<>(leaders));
        result.put("read", got.size());
        check(failed.isEmpty(), "sends failed: " + (failed.size() > 5 ? failed.subList(0, 5) : failed));
        check(acked.size() == count, "acked " + acked.size() + " of " + count);
        check(lost.isEmpty(), "acknowledged but not readable: " + lost.size());
        check(got.size() == new HashSet<>(got).size(), "duplicates in the log: " + (got.size() - have.size()));
    }
}
