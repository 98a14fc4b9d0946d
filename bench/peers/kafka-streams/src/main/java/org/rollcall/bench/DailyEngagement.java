package org.rollcall.bench;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneId;
import java.time.zone.ZoneRules;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import java.util.stream.Stream;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TopologyConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;

/**
 * Daily engagement, the Kafka Streams peer of rollcall's daily-engagement policy.
 *
 * <p>Reads lms.activity.v1 (key student_id, value an Avro single-object encoded
 * ActivityEvent), keeps the engagement events, counts them per student in a
 * one-day tumbling window on the school-local date of occurred_at, and emits one
 * PRESENT record per (student, day) once the window closes
 * (TimeWindows.ofSizeAndGrace + suppress(untilWindowCloses)). exactly_once_v2,
 * default RocksDB window store with its changelog.
 *
 * <p>The last line printed is exactly
 * {@code kafka-streams: <N> events in <S> s = <R> events/s}, timed from the first
 * input record deserialized to the moment the group's committed offsets cover
 * every processed record (a transaction commits the offsets with the outputs).
 */
public final class DailyEngagement {
  private static final long DAY_MS = 86_400_000L;
  private static final byte[] MARKER = {(byte) 0xC3, (byte) 0x01};
  /**
   * The fingerprint rollcall writes into the single-object header: CRC-64-AVRO
   * of the canonical form computed by the Rust apache-avro crate 0.17, which
   * keeps a logical-typed primitive as {"type":"long"} instead of "long". The
   * Avro specification's fingerprint (what SchemaNormalization computes) is
   * accepted as well.
   */
  private static final long ROLLCALL_FINGERPRINT = 0xdc0356b7d21edf42L;

  private DailyEngagement() {}

  // ---------------------------------------------------------------- options

  static final class Options {
    String brokers;
    String input = "lms.activity.v1";
    String output = "peer.daily.v1";
    String appId;
    long expected = -1;
    String tz = "America/Chicago";
    String grace = "1h";
    String engagement = "simple";
    int threads = 1;
    Long commitIntervalMs; // null: the Kafka Streams default (100 ms under exactly-once)
    String stateDir;

    static Options parse(String[] args) {
      Options o = new Options();
      for (int i = 0; i < args.length; i++) {
        String a = args[i];
        if (a.equals("-h") || a.equals("--help")) {
          usage(null);
        }
        String v;
        int eq = a.indexOf('=');
        if (a.startsWith("--") && eq > 0) {
          v = a.substring(eq + 1);
          a = a.substring(0, eq);
        } else {
          if (i + 1 >= args.length) {
            usage("missing value for " + a);
          }
          v = args[++i];
        }
        switch (a) {
          case "--brokers" -> o.brokers = v;
          case "--input" -> o.input = v;
          case "--output" -> o.output = v;
          case "--app-id" -> o.appId = v;
          case "--expected" -> o.expected = Long.parseLong(v);
          case "--tz" -> o.tz = v;
          case "--grace" -> o.grace = v;
          case "--engagement" -> o.engagement = v;
          case "--threads" -> o.threads = Integer.parseInt(v);
          case "--commit-interval-ms" -> o.commitIntervalMs = Long.parseLong(v);
          case "--state-dir" -> o.stateDir = v;
          default -> usage("unknown option " + a);
        }
      }
      if (o.brokers == null) {
        usage("--brokers is required");
      }
      if (o.expected <= 0) {
        usage("--expected N (N > 0) is required");
      }
      if (!o.engagement.equals("simple") && !o.engagement.equals("rollcall")) {
        usage("--engagement is simple or rollcall");
      }
      if (o.appId == null) {
        o.appId = "peer-kstreams-" + UUID.randomUUID().toString().substring(0, 8);
      }
      return o;
    }

    static void usage(String error) {
      String text = """
          usage: java -jar daily-engagement-kstreams.jar --brokers HOST:PORT --expected N [options]
            --input TOPIC            input topic (default lms.activity.v1)
            --output TOPIC           output topic (default peer.daily.v1; created if missing)
            --app-id ID              application.id (default: a fresh one)
            --expected N             input records to process; exits once they are committed
            --tz ZONE                IANA zone or fixed offset such as -06:00 (default America/Chicago)
            --grace DURATION         window grace, e.g. 1h, 30m, PT1H (default 1h)
            --engagement MODE        simple: every kind but LOGOUT and LIVE_LEAVE (default);
                                     rollcall: the engine's own engagement test
            --threads N              num.stream.threads (default 1)
            --commit-interval-ms MS  commit.interval.ms (default: Kafka Streams' 100 under EOS)
            --state-dir DIR          state.dir (default: state/<app-id> beside the jar, removed at the end)
          """;
      if (error != null) {
        System.err.println("kafka-streams: " + error);
        System.err.print(text);
        System.exit(2);
      }
      System.out.print(text);
      System.exit(0);
    }
  }

  static long parseDurationMs(String text) {
    String t = text.trim().toUpperCase(Locale.ROOT);
    if (t.startsWith("P")) {
      return Duration.parse(t).toMillis();
    }
    String[][] units = {{"MS", "1"}, {"S", "1000"}, {"M", "60000"}, {"H", "3600000"}, {"D", "86400000"}};
    for (String[] u : units) {
      if (t.endsWith(u[0])) {
        String num = t.substring(0, t.length() - u[0].length());
        if (num.matches("\\d+(\\.\\d+)?")) {
          return (long) (Double.parseDouble(num) * Long.parseLong(u[1]));
        }
      }
    }
    return Long.parseLong(t);
  }

  // ---------------------------------------------------------------- time zone

  /**
   * UTC instant (ms) to the same wall-clock time in the school's zone, as epoch
   * ms, so that the epoch-aligned one-day windows are local days.
   */
  static final class LocalTime {
    private final ZoneRules rules;
    private final long fixedMs;

    LocalTime(String tz) {
      if ((tz.startsWith("+") || tz.startsWith("-")) && tz.contains(":")) {
        rules = null;
        fixedMs = ZoneId.of(tz).getRules().getOffset(Instant.EPOCH).getTotalSeconds() * 1000L;
      } else {
        rules = ZoneId.of(tz).getRules();
        fixedMs = 0;
      }
    }

    long shift(long utcMs) {
      if (rules == null) {
        return utcMs + fixedMs;
      }
      return utcMs + rules.getOffset(Instant.ofEpochMilli(utcMs)).getTotalSeconds() * 1000L;
    }
  }

  // ---------------------------------------------------------------- decoding

  /** Avro single-object encoding of ActivityEvent, decoded with Avro's GenericDatumReader. */
  static final class ActivityDeserializer implements Deserializer<GenericRecord> {
    private final GenericDatumReader<GenericRecord> reader;
    private final Set<Long> fingerprints;
    private final Stats stats;
    private final ThreadLocal<BinaryDecoder> decoder = new ThreadLocal<>();

    ActivityDeserializer(Schema schema, Set<Long> fingerprints, Stats stats) {
      this.reader = new GenericDatumReader<>(schema);
      this.fingerprints = fingerprints;
      this.stats = stats;
    }

    @Override
    public GenericRecord deserialize(String topic, byte[] data) {
      stats.first();
      if (data == null || data.length < 10 || data[0] != MARKER[0] || data[1] != MARKER[1]) {
        throw new IllegalArgumentException("not Avro single-object encoding (no C3 01 marker)");
      }
      long fp = ByteBuffer.wrap(data, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
      if (!fingerprints.contains(fp)) {
        throw new IllegalArgumentException(String.format("schema fingerprint %016x is not ActivityEvent's", fp));
      }
      BinaryDecoder d = DecoderFactory.get().binaryDecoder(data, 10, data.length - 10, decoder.get());
      decoder.set(d);
      try {
        GenericRecord r = reader.read(null, d);
        if (!d.isEnd()) {
          throw new IllegalArgumentException("trailing bytes after the datum");
        }
        return r;
      } catch (IOException e) {
        throw new IllegalArgumentException("malformed datum: " + e.getMessage(), e);
      }
    }
  }

  static final class Unsupported<T> implements Serializer<T> {
    @Override
    public byte[] serialize(String topic, T data) {
      throw new UnsupportedOperationException("input events are never written");
    }
  }

  // ---------------------------------------------------------------- progress

  static final class Stats {
    final AtomicLong firstNanos = new AtomicLong();
    final AtomicLong processed = new AtomicLong();
    final AtomicLong emitted = new AtomicLong();
    final Map<Integer, Long> lastOffsets = new ConcurrentHashMap<>();
    final CountDownLatch allProcessed = new CountDownLatch(1);
    long expected;

    void first() {
      if (firstNanos.get() == 0) {
        firstNanos.compareAndSet(0, System.nanoTime());
      }
    }
  }

  /** Counts input records and remembers the last offset per partition. */
  static final class Progress implements FixedKeyProcessor<String, GenericRecord, GenericRecord> {
    private final Stats stats;
    private FixedKeyProcessorContext<String, GenericRecord> context;

    Progress(Stats stats) {
      this.stats = stats;
    }

    @Override
    public void init(FixedKeyProcessorContext<String, GenericRecord> context) {
      this.context = context;
    }

    @Override
    public void process(FixedKeyRecord<String, GenericRecord> record) {
      context.recordMetadata().ifPresent(m -> stats.lastOffsets.merge(m.partition(), m.offset(), Math::max));
      if (stats.processed.incrementAndGet() == stats.expected) {
        stats.allProcessed.countDown();
      }
      context.forward(record);
    }
  }

  // ---------------------------------------------------------------- engagement

  private static final Set<String> NOT_ENGAGEMENT = Set.of("LOGOUT", "LIVE_LEAVE");
  private static final Set<String> ROLLCALL_ENGAGEMENT = Set.of("SUBMISSION", "MESSAGE", "LIVE_JOIN",
      "CONTENT_ACCESS", "RECORDING_VIEW", "TWO_WAY_CONTACT", "OFFLINE_WORK_RETURNED");

  static Predicate<GenericRecord> engagement(String mode) {
    if (mode.equals("rollcall")) {
      return e -> {
        String k = e.get("kind").toString();
        if (!ROLLCALL_ENGAGEMENT.contains(k)) {
          return false;
        }
        Object dir = e.get("direction");
        return !k.equals("MESSAGE") || (dir != null && dir.toString().equals("FROM_STUDENT"));
      };
    }
    return e -> !NOT_ENGAGEMENT.contains(e.get("kind").toString());
  }

  static String json(String s) {
    StringBuilder b = new StringBuilder(s.length() + 2).append('"');
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        default -> {
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"').toString();
  }

  // ---------------------------------------------------------------- main

  public static void main(String[] args) throws Exception {
    System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
    // Late records are counted (dropped-records-total), not logged one by one.
    System.setProperty("org.slf4j.simpleLogger.log.org.apache.kafka.streams.kstream.internals", "error");
    // Kafka Streams 4.x warns about the GlobalThread's exception handler; there is no global state here.
    System.setProperty("org.slf4j.simpleLogger.log.org.apache.kafka.streams.StreamsConfig", "error");
    Options o = Options.parse(args);
    long startNanos = System.nanoTime();

    Schema schema;
    try (InputStream in = DailyEngagement.class.getResourceAsStream("/activity_event.avsc")) {
      schema = new Schema.Parser().parse(in);
    }
    Set<Long> fingerprints = new HashSet<>(List.of(SchemaNormalization.parsingFingerprint64(schema),
        ROLLCALL_FINGERPRINT));

    Map<Integer, Long> outputStart = prepareTopics(o);

    Stats stats = new Stats();
    stats.expected = o.expected;
    LocalTime local = new LocalTime(o.tz);
    long graceMs = parseDurationMs(o.grace);

    Serde<GenericRecord> events = Serdes.serdeFrom(new Unsupported<>(),
        new ActivityDeserializer(schema, fingerprints, stats));
    TimestampExtractor eventTime = (ConsumerRecord<Object, Object> rec, long partitionTime) ->
        local.shift((Long) ((GenericRecord) rec.value()).get("occurred_at") / 1000L);

    boolean tempState = o.stateDir == null;
    // Default: state/<app-id> beside the jar (not the OS temp dir, which Kafka Streams warns about).
    Path stateDir = tempState ? jarDir().resolve("state").resolve(o.appId) : Path.of(o.stateDir);
    Files.createDirectories(stateDir);

    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, o.appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, o.brokers);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, o.threads);
    p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    if (o.commitIntervalMs != null) {
      p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, o.commitIntervalMs);
    }

    Predicate<GenericRecord> engaged = engagement(o.engagement);
    StreamsBuilder builder = new StreamsBuilder(new TopologyConfig(new StreamsConfig(p)));
    builder.stream(o.input, Consumed.with(Serdes.String(), events).withTimestampExtractor(eventTime))
        .processValues(() -> new Progress(stats))
        .filter((student, e) -> engaged.test(e))
        .groupByKey(Grouped.with(Serdes.String(), events))
        .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(DAY_MS), Duration.ofMillis(graceMs)))
        .count(Materialized.as("daily-engagement"))
        .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()).withName("day-close"))
        .toStream()
        .map((w, n) -> {
          stats.emitted.incrementAndGet();
          String student = w.key();
          String date = LocalDate.ofEpochDay(Math.floorDiv(w.window().start(), DAY_MS)).toString();
          String value = "{\"student_id\":" + json(student) + ",\"date\":\"" + date
              + "\",\"status\":\"PRESENT\",\"events\":" + n + "}";
          return KeyValue.pair(student + "|" + date, value);
        })
        .to(o.output, Produced.with(Serdes.String(), Serdes.String()));

    System.out.printf("kafka-streams: app id %s, %s -> %s, tz %s, grace %d ms, engagement %s, %d thread(s), "
        + "commit interval %s%n", o.appId, o.input, o.output, o.tz, graceMs, o.engagement, o.threads,
        o.commitIntervalMs == null ? "default" : o.commitIntervalMs + " ms");
    System.out.flush();

    KafkaStreams streams = new KafkaStreams(builder.build(p), p);
    Throwable[] failure = new Throwable[1];
    streams.setUncaughtExceptionHandler(e -> {
      failure[0] = e;
      stats.allProcessed.countDown();
      return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse
          .SHUTDOWN_CLIENT;
    });
    long endNanos;
    double late;
    try (Admin admin = Admin.create(adminProps(o.brokers))) {
      streams.start();
      stats.allProcessed.await();
      if (failure[0] != null) {
        throw new IllegalStateException("the stream thread failed", failure[0]);
      }
      Map<Integer, Long> target = new HashMap<>(stats.lastOffsets);
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      while (true) {
        Map<TopicPartition, OffsetAndMetadata> committed =
            admin.listConsumerGroupOffsets(o.appId).partitionsToOffsetAndMetadata().get();
        boolean done = target.entrySet().stream().allMatch(t -> {
          OffsetAndMetadata c = committed.get(new TopicPartition(o.input, t.getKey()));
          return c != null && c.offset() > t.getValue();
        });
        if (done) {
          endNanos = System.nanoTime();
          break;
        }
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("offsets not committed within 120 s: " + committed);
        }
        Thread.sleep(5);
      }
      late = metricSum(streams, "dropped-records-total");
    } finally {
      streams.close(Duration.ofSeconds(60));
      if (tempState) {
        streams.cleanUp();
        deleteTree(stateDir);
      }
    }

    long out = countCommittedOutput(o, outputStart);
    long n = stats.processed.get();
    long first = stats.firstNanos.get() == 0 ? startNanos : stats.firstNanos.get();
    double secs = (endNanos - first) / 1e9;
    System.out.printf("kafka-streams: startup %.2f s; committed offsets cover all %d records; %.0f late events "
        + "dropped; %d present days emitted, %d read back from %s (read_committed)%n",
        (first - startNanos) / 1e9, n, late, stats.emitted.get(), out, o.output);
    System.out.printf(Locale.ROOT, "kafka-streams: %d events in %.2f s = %.0f events/s%n", n, secs, n / secs);
    System.out.flush();
    System.exit(0);
  }

  static Path jarDir() {
    try {
      return Path.of(DailyEngagement.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getParent();
    } catch (Exception e) {
      return Path.of(".");
    }
  }

  static Properties adminProps(String brokers) {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    return p;
  }

  static double metricSum(KafkaStreams streams, String name) {
    double sum = 0;
    for (Map.Entry<MetricName, ? extends Metric> e : streams.metrics().entrySet()) {
      if (e.getKey().name().equals(name) && e.getValue().metricValue() instanceof Number v) {
        sum += v.doubleValue();
      }
    }
    return sum;
  }

  /**
   * Checks the input topic, creates the output topic (as many partitions as the
   * input) if missing, and returns the output's end offsets now, so that only
   * this run's records are counted at the end.
   */
  static Map<Integer, Long> prepareTopics(Options o) throws Exception {
    try (Admin admin = Admin.create(adminProps(o.brokers))) {
      Set<String> names = admin.listTopics().names().get();
      if (!names.contains(o.input)) {
        System.err.println("kafka-streams: input topic " + o.input + " does not exist");
        System.exit(1);
      }
      TopicDescription in = admin.describeTopics(List.of(o.input)).allTopicNames().get().get(o.input);
      if (!names.contains(o.output)) {
        try {
          admin.createTopics(List.of(new NewTopic(o.output, in.partitions().size(), (short) -1))).all().get();
        } catch (java.util.concurrent.ExecutionException e) {
          if (!(e.getCause() instanceof TopicExistsException)) {
            throw e;
          }
        }
      }
      TopicDescription out = null;
      for (int i = 0; i < 100 && out == null; i++) {
        try {
          out = admin.describeTopics(List.of(o.output)).allTopicNames().get().get(o.output);
        } catch (java.util.concurrent.ExecutionException e) {
          Thread.sleep(100);
        }
      }
      List<TopicPartition> parts = new ArrayList<>();
      out.partitions().forEach(pi -> parts.add(new TopicPartition(o.output, pi.partition())));
      try (KafkaConsumer<byte[], byte[]> c = consumer(o.brokers)) {
        Map<Integer, Long> start = new HashMap<>();
        c.endOffsets(parts).forEach((tp, off) -> start.put(tp.partition(), off));
        return start;
      }
    }
  }

  static KafkaConsumer<byte[], byte[]> consumer(String brokers) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
  }

  /** Records written to the output since `start`, as a read_committed reader sees them. */
  static long countCommittedOutput(Options o, Map<Integer, Long> start) {
    try (KafkaConsumer<byte[], byte[]> c = consumer(o.brokers)) {
      List<TopicPartition> parts = new ArrayList<>();
      start.keySet().forEach(p -> parts.add(new TopicPartition(o.output, p)));
      c.assign(parts);
      start.forEach((p, off) -> c.seek(new TopicPartition(o.output, p), off));
      Map<TopicPartition, Long> end = c.endOffsets(parts);
      long n = 0;
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      while (parts.stream().anyMatch(tp -> c.position(tp) < end.get(tp)) && System.nanoTime() < deadline) {
        ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(500));
        n += recs.count();
      }
      return n;
    }
  }

  static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> walk = Files.walk(dir)) {
      for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }
}
