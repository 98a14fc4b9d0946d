package org.rollcall.bench;

import java.io.IOException;
import java.io.InputStream;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
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
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Daily engagement, the Apache Flink peer of rollcall's daily-engagement policy.
 *
 * <p>Reads lms.activity.v1 (key student_id, value an Avro single-object encoded
 * ActivityEvent) with a KafkaSource, keeps the engagement events, counts them
 * per student in a one-day event-time tumbling window on the school-local date
 * of occurred_at, and emits one PRESENT record per (student, day) once the
 * watermark passes the day's end plus the grace period. It runs on a local
 * MiniCluster in this JVM, with the RocksDB state backend, exactly-once
 * checkpoints every --commit-interval-ms and a transactional KafkaSink.
 *
 * <p>The last line printed is exactly
 * {@code flink: <N> events in <S> s = <R> events/s}, timed from the first input
 * record deserialized to the completion of the first checkpoint taken after
 * every one of the N records had been processed (the checkpoint whose
 * completion commits the offsets and the output transactions).
 */
public final class DailyEngagementFlink {
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

  private DailyEngagementFlink() {}

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
    int parallelism = Runtime.getRuntime().availableProcessors();
    long commitIntervalMs = 1000;
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
          case "--parallelism" -> o.parallelism = Integer.parseInt(v);
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
      if (o.parallelism <= 0) {
        usage("--parallelism N (N > 0)");
      }
      if (o.commitIntervalMs <= 0) {
        usage("--commit-interval-ms MS (MS > 0)");
      }
      if (o.appId == null) {
        o.appId = "peer-flink-" + UUID.randomUUID().toString().substring(0, 8);
      }
      return o;
    }

    static void usage(String error) {
      String text = """
          usage: java -jar daily-engagement-flink.jar --brokers HOST:PORT --expected N [options]
            --input TOPIC            input topic (default lms.activity.v1)
            --output TOPIC           output topic (default peer.daily.v1; created if missing)
            --app-id ID              consumer group id and transactional id prefix (default: a fresh one)
            --expected N             input records to process; exits once a checkpoint covers them
            --tz ZONE                IANA zone or fixed offset such as -06:00 (default America/Chicago)
            --grace DURATION         watermark out-of-orderness, e.g. 1h, 30m, PT1H (default 1h)
            --engagement MODE        simple: every kind but LOGOUT and LIVE_LEAVE (default);
                                     rollcall: the engine's own engagement test
            --parallelism N          job parallelism (default: the number of cores; the source
                                     uses at most one subtask per input partition)
            --commit-interval-ms MS  checkpoint interval, the commit cadence (default 1000)
            --state-dir DIR          RocksDB and checkpoint directory (default: state/<app-id>
                                     beside the jar, removed at the end)
          """;
      if (error != null) {
        System.err.println("flink: " + error);
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
  static final class LocalTime implements Serializable {
    private static final long serialVersionUID = 1L;
    private final String tz;
    private transient ZoneRules rules;
    private transient Long fixedMs;

    LocalTime(String tz) {
      this.tz = tz;
      init();
    }

    private void init() {
      if ((tz.startsWith("+") || tz.startsWith("-")) && tz.contains(":")) {
        rules = null;
        fixedMs = ZoneId.of(tz).getRules().getOffset(Instant.EPOCH).getTotalSeconds() * 1000L;
      } else {
        rules = ZoneId.of(tz).getRules();
        fixedMs = 0L;
      }
    }

    long shift(long utcMs) {
      if (fixedMs == null) {
        init();
      }
      if (rules == null) {
        return utcMs + fixedMs;
      }
      return utcMs + rules.getOffset(Instant.ofEpochMilli(utcMs)).getTotalSeconds() * 1000L;
    }
  }

  // ---------------------------------------------------------------- progress

  /**
   * Progress shared by the operators and the main thread. The job runs on a
   * MiniCluster in this JVM, and its classes come from the application class
   * loader, so these are the same static fields everywhere.
   */
  static final class Stats {
    static final AtomicLong FIRST_NANOS = new AtomicLong();
    static final AtomicLong END_NANOS = new AtomicLong();
    static final AtomicLong PROCESSED = new AtomicLong();
    static final AtomicLong EMITTED = new AtomicLong();
    static final AtomicLong LATE = new AtomicLong();
    static final AtomicLong COVERING_CHECKPOINT = new AtomicLong(-1);
    /** Checkpoint id to the number of progress subtasks that snapshot it after all records. */
    static final Map<Long, AtomicInteger> SNAPSHOTS_AFTER_ALL = new ConcurrentHashMap<>();
    static final CountDownLatch DONE = new CountDownLatch(1);

    static void first() {
      if (FIRST_NANOS.get() == 0) {
        FIRST_NANOS.compareAndSet(0, System.nanoTime());
      }
    }
  }

  /** An input event: (student_id, shifted occurred_at in ms, engagement?). */
  static TypeInformation<Tuple3<String, Long, Boolean>> eventType() {
    return Types.TUPLE(Types.STRING, Types.LONG, Types.BOOLEAN);
  }

  // ---------------------------------------------------------------- decoding

  /**
   * Avro single-object encoding of ActivityEvent: the marker and fingerprint
   * are checked, then the whole datum is decoded with Avro's
   * GenericDatumReader and a reused BinaryDecoder.
   */
  static final class ActivityDeserializer implements KafkaRecordDeserializationSchema<Tuple3<String, Long, Boolean>> {
    private static final long serialVersionUID = 1L;
    private final String schemaJson;
    private final HashSet<Long> fingerprints;
    private final LocalTime local;
    private final boolean rollcallEngagement;
    private transient GenericDatumReader<GenericRecord> reader;
    private transient BinaryDecoder decoder;
    private transient GenericRecord reuse;

    ActivityDeserializer(String schemaJson, Set<Long> fingerprints, LocalTime local, String engagement) {
      this.schemaJson = schemaJson;
      this.fingerprints = new HashSet<>(fingerprints);
      this.local = local;
      this.rollcallEngagement = engagement.equals("rollcall");
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Tuple3<String, Long, Boolean>> out)
        throws IOException {
      Stats.first();
      if (reader == null) {
        reader = new GenericDatumReader<>(new Schema.Parser().parse(schemaJson));
      }
      byte[] data = record.value();
      if (data == null || data.length < 10 || data[0] != MARKER[0] || data[1] != MARKER[1]) {
        throw new IllegalArgumentException("not Avro single-object encoding (no C3 01 marker)");
      }
      long fp = ByteBuffer.wrap(data, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
      if (!fingerprints.contains(fp)) {
        throw new IllegalArgumentException(String.format("schema fingerprint %016x is not ActivityEvent's", fp));
      }
      decoder = DecoderFactory.get().binaryDecoder(data, 10, data.length - 10, decoder);
      GenericRecord e;
      try {
        e = reader.read(reuse, decoder);
        reuse = e;
        if (!decoder.isEnd()) {
          throw new IllegalArgumentException("trailing bytes after the datum");
        }
      } catch (IOException ex) {
        throw new IllegalArgumentException("malformed datum: " + ex.getMessage(), ex);
      }
      String student = record.key() == null ? e.get("student_id").toString()
          : new String(record.key(), StandardCharsets.UTF_8);
      long time = local.shift((Long) e.get("occurred_at") / 1000L);
      out.collect(Tuple3.of(student, time, engagement(e)));
    }

    private boolean engagement(GenericRecord e) {
      String k = e.get("kind").toString();
      if (rollcallEngagement) {
        if (!ROLLCALL_ENGAGEMENT.contains(k)) {
          return false;
        }
        Object dir = e.get("direction");
        return !k.equals("MESSAGE") || (dir != null && dir.toString().equals("FROM_STUDENT"));
      }
      return !NOT_ENGAGEMENT.contains(k);
    }

    @Override
    public TypeInformation<Tuple3<String, Long, Boolean>> getProducedType() {
      return eventType();
    }
  }

  private static final Set<String> NOT_ENGAGEMENT = Set.of("LOGOUT", "LIVE_LEAVE");
  private static final Set<String> ROLLCALL_ENGAGEMENT = Set.of("SUBMISSION", "MESSAGE", "LIVE_JOIN",
      "CONTENT_ACCESS", "RECORDING_VIEW", "TWO_WAY_CONTACT", "OFFLINE_WORK_RETURNED");

  /**
   * Counts input records (chained to the source, so a checkpoint barrier
   * reaches it after every record read before it). A checkpoint that every
   * subtask snapshots after all N records were counted, once complete, covers
   * them all: the clock stops at its completion notice.
   */
  static final class Progress extends RichMapFunction<Tuple3<String, Long, Boolean>, Tuple3<String, Long, Boolean>>
      implements CheckpointedFunction, CheckpointListener {
    private static final long serialVersionUID = 1L;
    private final long expected;
    private transient int subtasks;

    Progress(long expected) {
      this.expected = expected;
    }

    @Override
    public void open(OpenContext context) {
      subtasks = getRuntimeContext().getTaskInfo().getNumberOfParallelSubtasks();
    }

    @Override
    public Tuple3<String, Long, Boolean> map(Tuple3<String, Long, Boolean> e) {
      Stats.PROCESSED.incrementAndGet();
      return e;
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) {
      if (Stats.PROCESSED.get() >= expected) {
        Stats.SNAPSHOTS_AFTER_ALL.computeIfAbsent(context.getCheckpointId(), id -> new AtomicInteger())
            .incrementAndGet();
      }
    }

    @Override
    public void initializeState(FunctionInitializationContext context) {}

    @Override
    public void notifyCheckpointComplete(long checkpointId) {
      AtomicInteger n = Stats.SNAPSHOTS_AFTER_ALL.get(checkpointId);
      if (n != null && n.get() >= subtasks && Stats.END_NANOS.compareAndSet(0, System.nanoTime())) {
        Stats.COVERING_CHECKPOINT.set(checkpointId);
        Stats.DONE.countDown();
      }
    }
  }

  /**
   * Bounded out-of-orderness watermarks, like
   * WatermarkStrategy.forBoundedOutOfOrderness(grace), except that the
   * watermark is also emitted at once when an event moves it past a day's end.
   * A day then closes right after the event that closes it, not at the next
   * periodic emission, which could come after the next checkpoint barrier.
   */
  static final class DayClose implements WatermarkGenerator<Tuple3<String, Long, Boolean>> {
    private final long graceMs;
    private long maxTs = Long.MIN_VALUE;
    private long emittedDay = Long.MIN_VALUE;

    DayClose(long graceMs) {
      this.graceMs = graceMs;
    }

    private long watermark() {
      return maxTs - graceMs - 1;
    }

    @Override
    public void onEvent(Tuple3<String, Long, Boolean> e, long ts, WatermarkOutput out) {
      if (ts > maxTs) {
        maxTs = ts;
        long day = Math.floorDiv(watermark() + 1, DAY_MS);
        if (day > emittedDay) {
          emittedDay = day;
          out.emitWatermark(new Watermark(watermark()));
        }
      }
    }

      @Override
    public void onPeriodicEmit(WatermarkOutput out) {
      if (maxTs != Long.MIN_VALUE) {
        out.emitWatermark(new Watermark(watermark()));
      }
    }
  }

  static final class Count implements AggregateFunction<Tuple3<String, Long, Boolean>, Long, Long> {
    private static final long serialVersionUID = 1L;

    @Override
    public Long createAccumulator() {
      return 0L;
    }

    @Override
    public Long add(Tuple3<String, Long, Boolean> e, Long n) {
      return n + 1;
    }

    @Override
    public Long getResult(Long n) {
      return n;
    }

    @Override
    public Long merge(Long a, Long b) {
      return a + b;
    }
  }

  /** One closed (student, day) window to (key, JSON value). */
  static final class Present extends ProcessWindowFunction<Long, Tuple2<String, String>, String, TimeWindow> {
    private static final long serialVersionUID = 1L;

    @Override
    public void process(String student, Context context, Iterable<Long> counts,
        Collector<Tuple2<String, String>> out) {
      long n = counts.iterator().next();
      String date = LocalDate.ofEpochDay(Math.floorDiv(context.window().getStart(), DAY_MS)).toString();
      String value = "{\"student_id\":" + json(student) + ",\"date\":\"" + date
          + "\",\"status\":\"PRESENT\",\"events\":" + n + "}";
      Stats.EMITTED.incrementAndGet();
      out.collect(Tuple2.of(student + "|" + date, value));
    }
  }

  static final class Output implements KafkaRecordSerializationSchema<Tuple2<String, String>> {
    private static final long serialVersionUID = 1L;
    private final String topic;

    Output(String topic) {
      this.topic = topic;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(Tuple2<String, String> kv, KafkaSinkContext context,
        Long timestamp) {
      return new ProducerRecord<>(topic, kv.f0.getBytes(StandardCharsets.UTF_8),
          kv.f1.getBytes(StandardCharsets.UTF_8));
    }
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
    // Flink's start-up warnings (no delegation tokens, no log file, metric name
    // collisions, RocksDB log paths) are noise here; its errors still show.
    System.setProperty("org.slf4j.simpleLogger.log.org.apache.flink", "error");
    Options o = Options.parse(args);
    long startNanos = System.nanoTime();

    String schemaJson;
    try (InputStream in = DailyEngagementFlink.class.getResourceAsStream("/activity_event.avsc")) {
      schemaJson = new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
    Schema schema = new Schema.Parser().parse(schemaJson);
    Set<Long> fingerprints = new HashSet<>(List.of(SchemaNormalization.parsingFingerprint64(schema),
        ROLLCALL_FINGERPRINT));

    Set<TopicPartition> inputPartitions = new HashSet<>();
    Map<Integer, Long> outputStart = prepareTopics(o, inputPartitions);
    long graceMs = parseDurationMs(o.grace);

    boolean tempState = o.stateDir == null;
    Path stateDir = tempState ? jarDir().resolve("state").resolve(o.appId) : Path.of(o.stateDir);
    Files.createDirectories(stateDir);

    Map<String, String> settings = new HashMap<>();
    settings.put("state.backend.type", "rocksdb");
    settings.put("process.taskmanager.working-dir", stateDir.resolve("tm").toString());
    settings.put("execution.checkpointing.dir", stateDir.resolve("checkpoints").toUri().toString());
    settings.put("execution.checkpointing.savepoint-dir", stateDir.resolve("savepoints").toUri().toString());
    settings.put("execution.checkpointing.interval", o.commitIntervalMs + " ms");
    settings.put("execution.checkpointing.mode", "EXACTLY_ONCE");
    settings.put("restart-strategy.type", "none");
    settings.put("io.tmp.dirs", stateDir.resolve("tmp").toString());
    Configuration conf = Configuration.fromMap(settings);
    StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(o.parallelism, conf);

    KafkaSource<Tuple3<String, Long, Boolean>> source = KafkaSource.<Tuple3<String, Long, Boolean>>builder()
        .setBootstrapServers(o.brokers)
        .setPartitions(inputPartitions)
        .setGroupId(o.appId)
        .setStartingOffsets(OffsetsInitializer.earliest())
        .setDeserializer(new ActivityDeserializer(schemaJson, fingerprints, new LocalTime(o.tz), o.engagement))
        .setProperty("isolation.level", "read_committed")
        .setProperty("commit.offsets.on.checkpoint", "true")
        .build();
    // Per input partition, the watermark is the largest event time seen minus
    // the grace (DayClose); a day's window [start, start + 1 day) fires once it
    // reaches the day's end, that is once event time passes the day's end plus
    // the grace, on every partition (Flink takes the minimum over them).
    WatermarkStrategy<Tuple3<String, Long, Boolean>> eventTime = WatermarkStrategy
        .<Tuple3<String, Long, Boolean>>forGenerator(ctx -> new DayClose(graceMs))
        .withTimestampAssigner((e, ts) -> e.f1);
    // No more source subtasks than partitions read: a subtask without a
    // partition would hold the watermark back for good.
    int sourceParallelism = Math.min(o.parallelism, inputPartitions.size());

    OutputTag<Tuple3<String, Long, Boolean>> lateTag = new OutputTag<>("late", eventType());
    SingleOutputStreamOperator<Tuple2<String, String>> days = env
        .fromSource(source, eventTime, "input")
        .setParallelism(sourceParallelism)
        .map(new Progress(o.expected))
        .returns(eventType())
        .setParallelism(sourceParallelism)
        .name("progress")
        .filter(e -> e.f2)
        .setParallelism(sourceParallelism)
        .name("engagement")
        .keyBy(e -> e.f0, Types.STRING)
        .window(TumblingEventTimeWindows.of(Duration.ofMillis(DAY_MS)))
        .sideOutputLateData(lateTag)
        .aggregate(new Count(), new Present(), Types.LONG, Types.LONG,
            Types.TUPLE(Types.STRING, Types.STRING))
        .name("daily-engagement");

    days.sinkTo(KafkaSink.<Tuple2<String, String>>builder()
            .setBootstrapServers(o.brokers)
            .setRecordSerializer(new Output(o.output))
            .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
            .setTransactionalIdPrefix(o.appId)
            .setProperty("transaction.timeout.ms", "60000")
            .build())
        .name("output");
    DataStream<Tuple3<String, Long, Boolean>> late = days.getSideOutput(lateTag);
    late.map(e -> {
      Stats.LATE.incrementAndGet();
      return e;
    }).returns(eventType()).name("late").sinkTo(new DiscardingSink<>()).name("late-count");

    System.out.printf("flink: app id %s, %s -> %s, tz %s, grace %d ms, engagement %s, parallelism %d "
        + "(source %d), checkpoint interval %d ms, RocksDB in %s%n", o.appId, o.input, o.output, o.tz, graceMs,
        o.engagement, o.parallelism, sourceParallelism, o.commitIntervalMs, stateDir);
    System.out.flush();

    JobClient job = env.executeAsync("daily-engagement-flink");
    long endNanos;
    try {
      while (!Stats.DONE.await(100, TimeUnit.MILLISECONDS)) {
        JobStatus s = job.getJobStatus().get();
        if (s.isGloballyTerminalState()) {
          job.getJobExecutionResult().get(); // throws the job's failure
          throw new IllegalStateException("the job ended (" + s + ") before processing " + o.expected + " records");
        }
      }
      endNanos = Stats.END_NANOS.get();
      // Stop without draining (no final watermark, so open days stay open);
      // the savepoint's completion commits anything still pending.
      job.stopWithSavepoint(false, stateDir.resolve("savepoints").toUri().toString(), SavepointFormatType.NATIVE)
          .get(120, TimeUnit.SECONDS);
      job.getJobExecutionResult().get(120, TimeUnit.SECONDS);
    } finally {
      if (tempState) {
        deleteTree(stateDir);
      }
    }

    long out = countCommittedOutput(o, outputStart);
    long n = Stats.PROCESSED.get();
    long first = Stats.FIRST_NANOS.get() == 0 ? startNanos : Stats.FIRST_NANOS.get();
    double secs = (endNanos - first) / 1e9;
    System.out.printf("flink: startup %.2f s; checkpoint %d covers all %d records; %d late events dropped; "
        + "%d present days emitted, %d read back from %s (read_committed)%n",
        (first - startNanos) / 1e9, Stats.COVERING_CHECKPOINT.get(), n, Stats.LATE.get(), Stats.EMITTED.get(), out,
        o.output);
    System.out.printf(Locale.ROOT, "flink: %d events in %.2f s = %.0f events/s%n", n, secs, n / secs);
    System.out.flush();
    System.exit(0);
  }

  static Path jarDir() {
    try {
      return Path.of(DailyEngagementFlink.class.getProtectionDomain().getCodeSource().getLocation().toURI())
          .getParent();
    } catch (Exception e) {
      return Path.of(".");
    }
  }

  static Properties adminProps(String brokers) {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    return p;
  }

  /**
   * Checks the input topic and notes its partitions that hold records, creates the output topic (as many partitions as the
   * input) if missing, and returns the output's end offsets now, so that only
   * this run's records are counted at the end.
   */
  static Map<Integer, Long> prepareTopics(Options o, Set<TopicPartition> inputPartitions) throws Exception {
    try (Admin admin = Admin.create(adminProps(o.brokers))) {
      Set<String> names = admin.listTopics().names().get();
      if (!names.contains(o.input)) {
        System.err.println("flink: input topic " + o.input + " does not exist");
        System.exit(1);
      }
      TopicDescription in = admin.describeTopics(List.of(o.input)).allTopicNames().get().get(o.input);
      // The partitions to read: those holding records now. An empty partition
      // would hold Flink's watermark (the minimum over the partitions) back
      // for good, and no day would ever close.
      List<TopicPartition> inParts = new ArrayList<>();
      in.partitions().forEach(pi -> inParts.add(new TopicPartition(o.input, pi.partition())));
      try (KafkaConsumer<byte[], byte[]> c = consumer(o.brokers)) {
        Map<TopicPartition, Long> begin = c.beginningOffsets(inParts);
        c.endOffsets(inParts).forEach((tp, end) -> {
          if (end > begin.get(tp)) {
            inputPartitions.add(tp);
          }
        });
      }
      if (inputPartitions.isEmpty()) {
        inputPartitions.addAll(inParts);
      } else if (inputPartitions.size() < inParts.size()) {
        System.out.printf("flink: reading %d of %d input partitions (the others are empty)%n",
            inputPartitions.size(), inParts.size());
      }
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

  /**
   * Removes the peer's temporary state. The MiniCluster may still be removing
   * directories of its own under it as it shuts down, so a file that vanishes
   * during the walk is walked again, and what cannot be removed is only named:
   * the run's figure does not depend on it.
   */
  static void deleteTree(Path dir) {
    for (int attempt = 1; attempt <= 5 && Files.exists(dir); attempt++) {
      try (Stream<Path> walk = Files.walk(dir)) {
        for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      } catch (IOException | java.io.UncheckedIOException e) {
        if (attempt == 5) {
          System.out.printf("flink: could not remove %s: %s%n", dir, e);
        }
      }
    }
  }
}
