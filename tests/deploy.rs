//! The deployment files (docker-compose.yml, deploy/) fit together and fit
//! the program: services and volumes wired as documented, the Kubernetes
//! manifests complete, every metric a dashboard or an alert names is one the
//! processor exports (rollcall_kafka::metrics::METRIC_NAMES), every ROLLCALL_*
//! variable and command-line flag is one rollcall reads. promtool checks the
//! Prometheus files when it is installed (it must be under CI), and
//! `docker compose config` checks the compose file when a Docker engine
//! answers.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use rollcall_kafka::metrics::METRIC_NAMES;
use rollcall_kafka::ProcessorConfig;
use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use crate::support::harness::Area;
use crate::support::skip;

/// The processor's state directory in the image and in every deployment.
const STATE_DIR: &str = "/var/lib/rollcall";
/// Where `rollcall run --metrics-addr` serves in a container.
const METRICS_PORT: u64 = 9464;
/// The histogram families: only these may carry `_bucket`, `_sum`, `_count`.
const HISTOGRAMS: &[&str] =
    &["rollcall_event_to_output_seconds", "rollcall_event_delivery_delay_seconds", "rollcall_transaction_commit_seconds"];
const ALERTS: &[&str] = &[
    "RollcallConsumerLagGrowing",
    "RollcallDeadLettersHigh",
    "RollcallNoDeterminationsOnInstructionalDay",
    "RollcallStateRestoreStuck",
    "RollcallTransactionsAborting",
    "RollcallProcessorDown",
];
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every document of a YAML file, with `<<` merge keys applied.
fn yaml_docs(rel: &str) -> Vec<Yaml> {
    let text = read(rel);
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let mut v = Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: document {i}: {e}"));
        // One pass merges one level: an anchor that itself merges another
        // (`<<: *processor` where processor has `<<: *rollcall`) takes more.
        loop {
            let before = v.clone();
            v.apply_merge().unwrap_or_else(|e| panic!("{rel}: document {i}: {e}"));
            if v == before {
                break;
            }
        }
        if !v.is_null() {
            docs.push(v);
        }
    }
    docs
}

fn yaml(rel: &str) -> Yaml {
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "{rel}: expected one YAML document");
    docs.remove(0)
}

fn json(rel: &str) -> Json {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn s(v: &Yaml) -> String {
    match v {
        Yaml::String(x) => x.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

fn seq(v: &Yaml) -> &[Yaml] {
    v.as_sequence().map(|x| x.as_slice()).unwrap_or(&[])
}

fn files_in(dir: &str, ext: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| ext.iter().any(|x| n.ends_with(x)))
        .collect();
    out.sort();
    out
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(program)).find(|p| p.is_file())
}

/// The `ROLLCALL_*` variables the processor's configuration reads, asked of
/// `ProcessorConfig::apply_env` itself.
fn config_env_vars() -> BTreeSet<String> {
    let seen = RefCell::new(BTreeSet::new());
    ProcessorConfig::default()
        .apply_env(|k| {
            seen.borrow_mut().insert(k.to_string());
            None
        })
        .unwrap();
    seen.into_inner()
}

/// Applies `env` to the default configuration as a process would see it and
/// checks the result.
fn config_from_env(what: &str, env: &BTreeMap<String, String>) -> ProcessorConfig {
    let known = config_env_vars();
    for k in env.keys().filter(|k| k.starts_with("ROLLCALL_")) {
        assert!(known.contains(k), "{what}: {k} is not a variable rollcall reads (it reads {known:?})");
    }
    let mut cfg = ProcessorConfig::default();
    cfg.apply_env(|k| env.get(k).cloned()).unwrap_or_else(|e| panic!("{what}: {e}"));
    cfg.validate().unwrap_or_else(|e| panic!("{what}: {e}"));
    cfg
}

/// The value of `--flag` in an argument list (`--flag value` or `--flag=value`).
fn flag(args: &[String], name: &str) -> Option<String> {
    let eq = format!("{name}=");
    args.iter()
        .enumerate()
        .find_map(|(i, a)| if a == name { args.get(i + 1).cloned() } else { a.strip_prefix(&eq).map(str::to_string) })
}

// ---------------------------------------------------------------- compose

struct Compose {
    services: serde_yaml::Mapping,
    volumes: BTreeSet<String>,
}

fn compose() -> Compose {
    let c = yaml("docker-compose.yml");
    let services = c["services"].as_mapping().expect("docker-compose.yml: no services").clone();
    let volumes = c["volumes"].as_mapping().map(|m| m.keys().map(s).collect()).unwrap_or_default();
    Compose { services, volumes }
}

impl Compose {
    fn names(&self) -> BTreeSet<String> {
        self.services.keys().map(s).collect()
    }
    fn service(&self, name: &str) -> &Yaml {
        self.services.get(name).unwrap_or_else(|| panic!("docker-compose.yml: no service `{name}`"))
    }
}

fn env_of(svc: &Yaml) -> BTreeMap<String, String> {
    match &svc["environment"] {
        Yaml::Mapping(m) => m.iter().map(|(k, v)| (s(k), if v.is_null() { String::new() } else { s(v) })).collect(),
        Yaml::Sequence(l) => l
            .iter()
            .map(|e| {
                let e = s(e);
                let (k, v) = e.split_once('=').unwrap_or((&e, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn command_of(svc: &Yaml) -> Vec<String> {
    match &svc["command"] {
        Yaml::Sequence(l) => l.iter().map(s).collect(),
        Yaml::String(x) => x.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// (source, target) of each mount, in short or long syntax.
fn mounts_of(svc: &Yaml) -> Vec<(String, String)> {
    seq(&svc["volumes"])
        .iter()
        .map(|v| match v {
            Yaml::String(x) => {
                let mut parts = x.split(':');
                let src = parts.next().unwrap().to_string();
                let dst = parts.next().unwrap_or_else(|| panic!("mount `{x}` has no target")).to_string();
                (src, dst)
            }
            m => (s(&m["source"]), s(&m["target"])),
        })
        .collect()
}

fn is_host_path(src: &str) -> bool {
    src.starts_with('.') || src.starts_with('/') || src.starts_with('~')
}

fn depends_on(svc: &Yaml) -> Vec<String> {
    match &svc["depends_on"] {
        Yaml::Sequence(l) => l.iter().map(s).collect(),
        Yaml::Mapping(m) => m.keys().map(s).collect(),
        _ => Vec::new(),
    }
}

fn runs_rollcall(svc: &Yaml) -> bool {
    !svc["build"].is_null() || svc["image"].as_str().is_some_and(|i| i.starts_with("rollcall"))
}

fn compose_has_every_service_wired_together() {
    let c = compose();
    let names = c.names();
    for want in ["kafka", "topics", "rollcall-1", "rollcall-2", "simulator", "prometheus", "grafana"] {
        assert!(names.contains(want), "docker-compose.yml: no service `{want}` (has {names:?})");
    }

    // Kafka: the official image, KRaft, one node that can hold transactions.
    let kafka = c.service("kafka");
    let image = kafka["image"].as_str().unwrap_or_default();
    assert!(image.starts_with("apache/kafka:"), "kafka: image `{image}` is not apache/kafka");
    let env = env_of(kafka);
    let roles: BTreeSet<&str> = env.get("KAFKA_PROCESS_ROLES").map(|r| r.split(',').collect()).unwrap_or_default();
    assert_eq!(roles, BTreeSet::from(["broker", "controller"]), "kafka: KAFKA_PROCESS_ROLES");
    for (k, v) in [
        ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1"),
        ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1"),
        ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
    ] {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "kafka: {k}");
    }
    for k in ["KAFKA_NODE_ID", "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS", "KAFKA_CONTROLLER_QUORUM_VOTERS"] {
        assert!(env.contains_key(k), "kafka: {k} is not set");
    }
    let advertised = &env["KAFKA_ADVERTISED_LISTENERS"];
    assert!(advertised.contains("://kafka:9092"), "kafka: containers reach it as kafka:9092, advertised: {advertised}");
    let health = format!("{:?}", kafka["healthcheck"]["test"]);
    assert!(health.contains("/opt/kafka/bin/kafka-broker-api-versions.sh"), "kafka: healthcheck {health}");

    // Everything that runs rollcall is built from deploy/Dockerfile and talks to the kafka service.
    let mut rollcall_services = 0;
    for (name, svc) in c.services.iter().map(|(k, v)| (s(k), v)) {
        if !runs_rollcall(svc) {
            continue;
        }
        rollcall_services += 1;
        let build = &svc["build"];
        assert_eq!(build["context"].as_str(), Some("."), "{name}: build context");
        let dockerfile = build["dockerfile"].as_str().unwrap_or_default();
        assert_eq!(dockerfile, "deploy/Dockerfile", "{name}: dockerfile");
        let env = env_of(svc);
        let brokers = flag(&command_of(svc), "--brokers")
            .or_else(|| env.get("ROLLCALL_BROKERS").cloned())
            .unwrap_or_else(|| panic!("{name}: no --brokers and no ROLLCALL_BROKERS"));
        for b in brokers.split(',') {
            let host = b.rsplit_once(':').map(|(h, _)| h).unwrap_or(b);
            assert!(names.contains(host), "{name}: broker `{b}` is not a service");
        }
    }
    assert!(rollcall_services >= 4, "expected topics, two processors and the simulator to run rollcall");

    let topics = command_of(c.service("topics"));
    assert_eq!(topics.get(..2), Some(&["topics".to_string(), "create".to_string()][..]), "topics: {topics:?}");
    let simulate = command_of(c.service("simulator"));
    assert_eq!(simulate.first().map(String::as_str), Some("simulate"), "simulator: {simulate:?}");

    // Two processors: one group, distinct instance ids, distinct state volumes.
    let mut groups = BTreeSet::new();
    let mut ids = BTreeSet::new();
    let mut state_volumes = BTreeSet::new();
    for name in ["rollcall-1", "rollcall-2"] {
        let svc = c.service(name);
        let args = command_of(svc);
        assert_eq!(args.first().map(String::as_str), Some("run"), "{name}: command {args:?}");
        let mut env = env_of(svc);
        for (f, var) in
            [("--group", "ROLLCALL_GROUP"), ("--instance-id", "ROLLCALL_INSTANCE_ID"), ("--state-dir", "ROLLCALL_STATE_DIR")]
        {
            if let Some(v) = flag(&args, f) {
                env.insert(var.into(), v);
            }
        }
        let cfg = config_from_env(name, &env);
        assert!(env.contains_key("ROLLCALL_GROUP"), "{name}: the group must be set, not defaulted");
        assert!(env.contains_key("ROLLCALL_INSTANCE_ID"), "{name}: the instance id must be set, not defaulted");
        groups.insert(cfg.group.clone());
        ids.insert(cfg.instance_id.clone());
        let metrics = flag(&args, "--metrics-addr");
        assert_eq!(metrics.as_deref(), Some("0.0.0.0:9464"), "{name}: --metrics-addr");
        let state = cfg.state_dir.to_string_lossy().into_owned();
        let vol = mounts_of(svc)
            .into_iter()
            .find(|(_, dst)| *dst == state)
            .unwrap_or_else(|| panic!("{name}: nothing is mounted at its state dir {state}"));
        assert!(!is_host_path(&vol.0), "{name}: state should be a named volume, not {}", vol.0);
        state_volumes.insert(vol.0);
    }
    assert_eq!(groups.len(), 1, "the processors must share one group: {groups:?}");
    assert_eq!(ids.len(), 2, "the processors need distinct instance ids: {ids:?}");
    assert_eq!(state_volumes.len(), 2, "the processors need distinct state volumes: {state_volumes:?}");

    // Prometheus and Grafana get their files from deploy/.
    let prom = mounts_of(c.service("prometheus"));
    assert!(
        prom.iter().any(|(src, _)| src.trim_start_matches("./").trim_end_matches('/') == "deploy/prometheus"),
        "prometheus does not mount deploy/prometheus: {prom:?}"
    );
    let grafana = c.service("grafana");
    let gmounts = mounts_of(grafana);
    for (src, dst) in [
        ("deploy/grafana/provisioning", "/etc/grafana/provisioning"),
        ("deploy/grafana/dashboards", "/var/lib/grafana/dashboards"),
    ] {
        assert!(
            gmounts.iter().any(|(s, d)| s.trim_start_matches("./").trim_end_matches('/') == src && d == dst),
            "grafana: {src} is not mounted at {dst}: {gmounts:?}"
        );
    }
    assert_eq!(env_of(grafana).get("GF_AUTH_ANONYMOUS_ENABLED").map(String::as_str), Some("true"), "grafana: anonymous access");

    // References: depends_on, host paths, named volumes.
    for (name, svc) in c.services.iter().map(|(k, v)| (s(k), v)) {
        for dep in depends_on(svc) {
            assert!(names.contains(&dep), "{name}: depends_on `{dep}`, which is not a service");
            assert_ne!(dep, name, "{name} depends on itself");
        }
        for (src, _) in mounts_of(svc) {
            if is_host_path(&src) {
                assert!(repo().join(&src).exists(), "{name}: mounts `{src}`, which is not in the repository");
            } else {
                assert!(c.volumes.contains(&src), "{name}: volume `{src}` is not declared under volumes:");
            }
        }
    }
}

/// Every flag given to `rollcall` in docker-compose.yml and deploy/k8s is
/// one its subcommand accepts.
fn deployments_give_rollcall_only_flags_it_has() {
    let mut commands: Vec<(String, Vec<String>)> = Vec::new();
    let c = compose();
    for (name, svc) in c.services.iter().map(|(k, v)| (s(k), v)) {
        if runs_rollcall(svc) {
            commands.push((format!("docker-compose.yml: {name}"), command_of(svc)));
        }
    }
    for (file, doc) in k8s_docs() {
        for ctr in containers(&doc) {
            if ctr["image"].as_str().is_some_and(|i| i.starts_with("rollcall")) {
                commands.push((format!("deploy/k8s/{file}: {}", s(&ctr["name"])), seq(&ctr["args"]).iter().map(s).collect()));
            }
        }
    }
    assert!(commands.len() >= 6, "{commands:?}");
    let mut help_cache: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for (what, args) in commands {
        let sub: Vec<String> = args.iter().take_while(|a| !a.starts_with('-')).cloned().collect();
        assert!(!sub.is_empty(), "{what}: no subcommand in {args:?}");
        let help = help_cache.entry(sub.clone()).or_insert_with(|| {
            let out = Command::new(env!("CARGO_BIN_EXE_rollcall")).args(&sub).arg("--help").output().unwrap();
            assert!(
                out.status.success(),
                "{what}: `rollcall {} --help` failed: {}",
                sub.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        });
        for a in args.iter().filter(|a| a.starts_with("--")) {
            let f = a.split('=').next().unwrap();
            let listed = [" ", "\n", "="].iter().any(|end| help.contains(&format!("{f}{end}")));
            assert!(listed, "{what}: `rollcall {}` has no flag {f}", sub.join(" "));
        }
    }
}

// ---------------------------------------------------------------- kubernetes

fn k8s_docs() -> Vec<(String, Yaml)> {
    files_in("deploy/k8s", &[".yaml", ".yml"])
        .into_iter()
        .flat_map(|f| yaml_docs(&format!("deploy/k8s/{f}")).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

fn containers(doc: &Yaml) -> Vec<Yaml> {
    let spec = &doc["spec"]["template"]["spec"];
    let spec = if spec.is_null() { &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"] } else { spec };
    seq(&spec["containers"]).iter().chain(seq(&spec["initContainers"])).cloned().collect()
}

fn labels_match(selector: &Yaml, labels: &Yaml) -> bool {
    let sel = selector.as_mapping().expect("selector labels");
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn k8s_manifests_are_complete() {
    let files = files_in("deploy/k8s", &[".yaml", ".yml"]);
    let docs = k8s_docs();
    for (file, doc) in &docs {
        for key in ["apiVersion", "kind"] {
            assert!(doc[key].as_str().is_some_and(|v| !v.is_empty()), "deploy/k8s/{file}: no {key}");
        }
        assert!(
            doc["metadata"]["name"].as_str().is_some_and(|v| !v.is_empty()),
            "deploy/k8s/{file}: a {} has no metadata.name",
            s(&doc["kind"])
        );
    }
    let of_kind = |kind: &str| -> Vec<&Yaml> { docs.iter().filter(|(_, d)| d["kind"] == kind).map(|(_, d)| d).collect() };

    // kustomization.yaml lists exactly the other files.
    let kust = of_kind("Kustomization");
    assert_eq!(kust.len(), 1, "deploy/k8s: one Kustomization");
    let listed: BTreeSet<String> = seq(&kust[0]["resources"]).iter().map(s).collect();
    let present: BTreeSet<String> = files.iter().filter(|f| !f.starts_with("kustomization.")).cloned().collect();
    assert_eq!(listed, present, "deploy/k8s/kustomization.yaml resources vs the files present");
    let ns = s(&kust[0]["namespace"]);
    assert!(of_kind("Namespace").iter().any(|d| s(&d["metadata"]["name"]) == ns), "no Namespace `{ns}`");

    // The configuration file in the ConfigMap is one rollcall accepts.
    let cms = of_kind("ConfigMap");
    assert_eq!(cms.len(), 1, "deploy/k8s: one ConfigMap");
    let cm = cms[0];
    let cm_name = s(&cm["metadata"]["name"]);
    let toml_text = cm["data"]["rollcall.toml"].as_str().expect("configmap: data.rollcall.toml");
    let file_cfg: ProcessorConfig =
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("deploy/k8s/configmap.yaml rollcall.toml: {e}"));
    file_cfg.validate().unwrap_or_else(|e| panic!("deploy/k8s/configmap.yaml rollcall.toml: {e}"));
    assert_eq!(file_cfg.state_dir, Path::new(STATE_DIR), "configmap: state_dir");

    // The StatefulSet.
    let sts = of_kind("StatefulSet");
    assert_eq!(sts.len(), 1, "deploy/k8s: one StatefulSet");
    let sts = sts[0];
    assert_eq!(s(&sts["metadata"]["name"]), "rollcall");
    let replicas = sts["spec"]["replicas"].as_u64().unwrap_or(1);
    assert!(replicas >= 2, "statefulset: {replicas} replica(s)");
    let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
    assert!(
        labels_match(&sts["spec"]["selector"]["matchLabels"], pod_labels),
        "statefulset: selector does not match the pod labels"
    );
    let pod = &sts["spec"]["template"]["spec"];
    let sc = &pod["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true), "statefulset: runAsNonRoot");
    assert!(sc["runAsUser"].as_u64().is_some_and(|u| u > 0), "statefulset: runAsUser");
    let ctrs = seq(&pod["containers"]);
    assert_eq!(ctrs.len(), 1, "statefulset: one container");
    let ctr = &ctrs[0];
    let args: Vec<String> = seq(&ctr["args"]).iter().map(s).collect();
    assert_eq!(args.first().map(String::as_str), Some("run"), "statefulset: args {args:?}");
    assert_eq!(flag(&args, "--metrics-addr").as_deref(), Some("0.0.0.0:9464"), "statefulset: --metrics-addr");

    // Environment: only variables rollcall reads; the instance id from the pod name.
    let env = seq(&ctr["env"]);
    let known = config_env_vars();
    let mut values = BTreeMap::new();
    for e in env {
        let name = s(&e["name"]);
        if name.starts_with("ROLLCALL_") {
            assert!(known.contains(&name), "statefulset: {name} is not a variable rollcall reads");
        }
        let r = &e["valueFrom"]["configMapKeyRef"];
        if !r.is_null() {
            let key = s(&r["key"]);
            assert_eq!(s(&r["name"]), cm_name, "statefulset: {name} refers to another ConfigMap");
            assert!(cm["data"][key.as_str()].as_str().is_some(), "statefulset: {name}: ConfigMap has no key `{key}`");
            values.insert(name.clone(), s(&cm["data"][key.as_str()]));
        } else if !e["value"].is_null() {
            values.insert(name.clone(), s(&e["value"]));
        }
    }
    let instance = env.iter().find(|e| e["name"] == "ROLLCALL_INSTANCE_ID").expect("statefulset: no ROLLCALL_INSTANCE_ID");
    assert_eq!(
        instance["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.name"),
        "statefulset: the instance id comes from the pod name"
    );
    for v in ["ROLLCALL_BROKERS", "ROLLCALL_GROUP"] {
        assert!(values.contains_key(v), "statefulset: {v} is not set");
    }
    values.insert("ROLLCALL_INSTANCE_ID".into(), "rollcall-0".into());
    let cfg = config_from_env("statefulset", &values);
    let state_dir =
        values.get("ROLLCALL_STATE_DIR").cloned().unwrap_or_else(|| file_cfg.state_dir.to_string_lossy().into_owned());
    assert_eq!(cfg.transactional_id(), format!("rollcall-{}-rollcall-0", cfg.group));

    // State on a claim per pod, mounted at the state dir; config mounted where --config says.
    let claims: BTreeSet<String> = seq(&sts["spec"]["volumeClaimTemplates"]).iter().map(|c| s(&c["metadata"]["name"])).collect();
    assert!(!claims.is_empty(), "statefulset: no volumeClaimTemplates");
    let mounts = seq(&ctr["volumeMounts"]);
    let state_mount = mounts
        .iter()
        .find(|m| s(&m["mountPath"]) == state_dir)
        .unwrap_or_else(|| panic!("statefulset: nothing mounted at the state dir {state_dir}"));
    assert!(claims.contains(&s(&state_mount["name"])), "statefulset: the state dir is not on a volumeClaimTemplate");
    let config = flag(&args, "--config").expect("statefulset: --config");
    let config_dir = Path::new(&config).parent().unwrap().to_string_lossy().into_owned();
    let config_mount =
        mounts.iter().find(|m| s(&m["mountPath"]) == config_dir).expect("statefulset: --config's directory is not mounted");
    let config_vol = seq(&pod["volumes"]).iter().find(|v| v["name"] == config_mount["name"]).expect("statefulset: config volume");
    assert_eq!(s(&config_vol["configMap"]["name"]), cm_name, "statefulset: config volume");

    // Port and probes.
    let ports = seq(&ctr["ports"]);
    let metrics = ports
        .iter()
        .find(|p| p["containerPort"].as_u64() == Some(METRICS_PORT))
        .unwrap_or_else(|| panic!("statefulset: no container port {METRICS_PORT}"));
    assert_eq!(metrics["name"].as_str(), Some("metrics"), "statefulset: port {METRICS_PORT} name");
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &ctr[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "statefulset: {probe} path");
        let port = &get["port"];
        assert!(
            port.as_u64() == Some(METRICS_PORT) || port.as_str() == Some("metrics"),
            "statefulset: {probe} port {port:?} is not the metrics port"
        );
    }
    for k in ["requests", "limits"] {
        let r = &ctr["resources"][k];
        assert!(!r["memory"].is_null(), "statefulset: resources.{k}.memory");
    }
    assert!(!ctr["resources"]["requests"]["cpu"].is_null(), "statefulset: resources.requests.cpu");

    // Services: the headless one the StatefulSet names, and one for scraping.
    let services = of_kind("Service");
    let governing = s(&sts["spec"]["serviceName"]);
    let headless = services
        .iter()
        .find(|d| s(&d["metadata"]["name"]) == governing)
        .unwrap_or_else(|| panic!("no Service `{governing}` (the StatefulSet's serviceName)"));
    assert_eq!(headless["spec"]["clusterIP"].as_str(), Some("None"), "{governing} must be headless");
    let scraped: Vec<_> =
        services.iter().filter(|d| d["metadata"]["annotations"]["prometheus.io/scrape"].as_str() == Some("true")).collect();
    assert_eq!(scraped.len(), 1, "one Service with prometheus.io/scrape: \"true\"");
    let svc = scraped[0];
    assert_eq!(svc["metadata"]["annotations"]["prometheus.io/port"].as_str(), Some("9464"), "metrics Service port annotation");
    for d in [*headless, *svc] {
        assert!(
            labels_match(&d["spec"]["selector"], pod_labels),
            "Service {} does not select the processors",
            s(&d["metadata"]["name"])
        );
    }

    // The topics Job.
    let jobs = of_kind("Job");
    assert_eq!(jobs.len(), 1, "deploy/k8s: one Job");
    let job_args: Vec<String> = seq(&containers(jobs[0])[0]["args"]).iter().map(s).collect();
    assert_eq!(job_args.get(..2), Some(&["topics".to_string(), "create".to_string()][..]), "topics Job: {job_args:?}");
}

// ---------------------------------------------------------------- metrics

/// Every `rollcall_…` identifier in a PromQL expression.
fn metric_identifiers(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = expr[i..].find("rollcall_") {
        let start = i + off;
        let mut end = start + "rollcall_".len();
        while end < b.len() && (b[end].is_ascii_lowercase() || b[end].is_ascii_digit() || b[end] == b'_') {
            end += 1;
        }
        if (start == 0 || !word(b[start - 1])) && end > start + "rollcall_".len() {
            out.push(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

/// Names `name`'s family, or says why it is not one the processor exports.
fn family(name: &str) -> Result<&'static str, String> {
    if let Some(f) = METRIC_NAMES.iter().find(|m| **m == name) {
        return Ok(f);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(f) = METRIC_NAMES.iter().find(|m| **m == base) {
                return if HISTOGRAMS.contains(f) {
                    Ok(f)
                } else {
                    Err(format!("{base} is not a histogram, it has no {suffix}"))
                };
            }
        }
    }
    Err("not in rollcall_kafka::metrics::METRIC_NAMES".into())
}

fn check_names(file: &str, exprs: &[String]) -> BTreeSet<&'static str> {
    assert!(!exprs.is_empty(), "{file}: no expressions found");
    let mut used = BTreeSet::new();
    let mut bad = Vec::new();
    for e in exprs {
        for name in metric_identifiers(e) {
            match family(&name) {
                Ok(f) => {
                    used.insert(f);
                }
                Err(why) => bad.push(format!("{file}: `{name}`: {why}")),
            }
        }
    }
    assert!(bad.is_empty(), "unknown metric names:\n{}", bad.join("\n"));
    used
}

fn metric_identifiers_are_found() {
    let ids = metric_identifiers(
        r#"histogram_quantile(0.9, sum by (le) (rate(rollcall_event_to_output_seconds_bucket{job="rollcall"}[5m]))) / xrollcall_no + rollcall_x"#,
    );
    assert_eq!(ids, ["rollcall_event_to_output_seconds_bucket", "rollcall_x"]);
    assert!(family("rollcall_transaction_commit_seconds_count").is_ok());
    assert!(family("rollcall_transactions_total_count").is_err());
    assert!(family("rollcall_events_consumed").is_err());
}

fn rule_exprs(doc: &Yaml) -> Vec<(String, Yaml)> {
    seq(&doc["groups"]).iter().flat_map(|g| seq(&g["rules"]).iter().map(|r| (s(&r["expr"]), r.clone()))).collect()
}

fn alert_rules_use_exported_metrics_and_say_what_to_do() {
    let mut names = BTreeSet::new();
    let mut rule_files = 0;
    for f in files_in("deploy/prometheus", &[".yml", ".yaml"]) {
        let rel = format!("deploy/prometheus/{f}");
        let doc = yaml(&rel);
        if doc["groups"].is_null() {
            continue;
        }
        rule_files += 1;
        let rules = rule_exprs(&doc);
        check_names(&rel, &rules.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>());
        for (_, r) in rules {
            let Some(alert) = r["alert"].as_str() else { continue };
            assert!(names.insert(alert.to_string()), "{rel}: alert {alert} is defined twice");
            assert!(r["for"].as_str().is_some_and(|v| !v.is_empty()), "{rel}: {alert} has no `for`");
            let sev = r["labels"]["severity"].as_str().unwrap_or_default();
            assert!(["critical", "warning", "info"].contains(&sev), "{rel}: {alert}: severity `{sev}`");
            for a in ["summary", "description"] {
                let text = r["annotations"][a].as_str().unwrap_or_default();
                assert!(text.trim().len() >= 20, "{rel}: {alert}: annotations.{a} is missing or says nothing");
            }
        }
    }
    assert!(rule_files >= 1, "deploy/prometheus: no rule file");
    for a in ALERTS {
        assert!(names.contains(*a), "deploy/prometheus: no alert {a} (has {names:?})");
    }

    // The unit tests of the rules name only exported metrics too.
    let t = yaml("deploy/prometheus/alerts_test.yml");
    let mut exprs = Vec::new();
    for case in seq(&t["tests"]) {
        exprs.extend(seq(&case["input_series"]).iter().map(|x| s(&x["series"])));
        exprs.extend(seq(&case["promql_expr_test"]).iter().map(|x| s(&x["expr"])));
    }
    check_names("deploy/prometheus/alerts_test.yml", &exprs);

    // deploy/README.md explains every alert.
    let readme = read("deploy/README.md");
    for a in &names {
        assert!(readme.contains(a.as_str()), "deploy/README.md does not explain {a}");
    }
}

fn prometheus_scrapes_the_processors() {
    let c = compose();
    for (file, want) in
        [("prometheus.yml", vec!["rollcall-1:9464", "rollcall-2:9464"]), ("prometheus-local.yml", vec!["127.0.0.1:9464"])]
    {
        let rel = format!("deploy/prometheus/{file}");
        let p = yaml(&rel);
        let jobs = seq(&p["scrape_configs"]);
        let job = jobs.iter().find(|j| j["job_name"] == "rollcall").unwrap_or_else(|| panic!("{rel}: no job `rollcall`"));
        let targets: Vec<String> = seq(&job["static_configs"]).iter().flat_map(|sc| seq(&sc["targets"]).iter().map(s)).collect();
        assert_eq!(targets, want, "{rel}: targets");
        if file == "prometheus.yml" {
            for t in &targets {
                let host = t.split(':').next().unwrap();
                assert!(c.names().contains(host), "{rel}: target {t} is not a compose service");
            }
        }
        let interval = s(&p["global"]["scrape_interval"]);
        assert_eq!(interval, "15s", "{rel}: scrape_interval");
        let rules: Vec<String> = seq(&p["rule_files"]).iter().map(s).collect();
        assert_eq!(rules, ["alerts.yml"], "{rel}: rule_files");
    }
    // The PostgreSQL sink's /metrics, on the port its compose command serves.
    let sink_cmd = command_of(c.service("sink"));
    let sink_addr = flag(&sink_cmd, "--metrics-addr").expect("the compose sink has --metrics-addr");
    let sink_port = sink_addr.rsplit(':').next().unwrap().to_string();
    assert!(sink_cmd.starts_with(&["sink".to_string(), "postgres".to_string()]), "compose sink: {sink_cmd:?}");
    for (file, want) in [("prometheus.yml", format!("sink:{sink_port}")), ("prometheus-local.yml", "127.0.0.1:9466".to_string())]
    {
        let rel = format!("deploy/prometheus/{file}");
        let p = yaml(&rel);
        let jobs = seq(&p["scrape_configs"]);
        let job =
            jobs.iter().find(|j| j["job_name"] == "rollcall-sink").unwrap_or_else(|| panic!("{rel}: no job `rollcall-sink`"));
        assert_eq!(s(&job["metrics_path"]), "/metrics", "{rel}: rollcall-sink metrics_path");
        let targets: Vec<String> = seq(&job["static_configs"]).iter().flat_map(|sc| seq(&sc["targets"]).iter().map(s)).collect();
        assert_eq!(targets, [want], "{rel}: rollcall-sink targets");
    }
    assert!(depends_on(c.service("prometheus")).contains(&"sink".to_string()), "prometheus does not wait for the sink");
    // `up` is asked of the job the configs define.
    let alerts = yaml("deploy/prometheus/alerts.yml");
    let down = rule_exprs(&alerts).into_iter().find(|(_, r)| r["alert"] == "RollcallProcessorDown").unwrap().0;
    assert!(down.contains(r#"up{job="rollcall"}"#), "RollcallProcessorDown: {down}");
}

// ---------------------------------------------------------------- grafana

fn all_panels(panels: &Json, out: &mut Vec<Json>) {
    for p in panels.as_array().into_iter().flatten() {
        out.push(p.clone());
        all_panels(&p["panels"], out);
    }
}

fn dashboard_shows_every_family_from_the_prometheus_datasource() {
    let rel = "deploy/grafana/dashboards/rollcall.json";
    let d = json(rel);
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()), "{rel}: uid");
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "{rel}: schemaVersion {}", d["schemaVersion"]);
    let mut panels = Vec::new();
    all_panels(&d["panels"], &mut panels);
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for p in &panels {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "{rel}: panel id {} twice", p["id"]);
        let kind = p["type"].as_str().unwrap_or_default();
        assert!(["timeseries", "stat", "row"].contains(&kind), "{rel}: panel `{title}` of type {kind}");
        if kind == "row" {
            continue;
        }
        assert!(!title.is_empty(), "{rel}: a panel without a title");
        assert_eq!(p["datasource"]["uid"], "prometheus", "{rel}: panel `{title}` datasource");
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        assert!(!targets.is_empty(), "{rel}: panel `{title}` has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "prometheus", "{rel}: panel `{title}` query {} datasource", t["refId"]);
            let e = t["expr"].as_str().unwrap_or_default();
            assert!(!e.is_empty(), "{rel}: panel `{title}` query {} has no expr", t["refId"]);
            exprs.push(e.to_string());
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            assert_eq!(v["datasource"]["uid"], "prometheus", "{rel}: variable {} datasource", v["name"]);
            exprs.push(v["definition"].as_str().unwrap_or_default().to_string());
        }
    }
    let used = check_names(rel, &exprs);
    let missing: Vec<_> = METRIC_NAMES.iter().filter(|m| !used.contains(*m)).collect();
    assert!(missing.is_empty(), "{rel}: no panel shows {missing:?}");
    for q in ["0.5", "0.95", "0.99"] {
        let want = format!("histogram_quantile({q}, sum by (le) (rate(rollcall_event_to_output_seconds_bucket");
        assert!(exprs.iter().any(|e| e.contains(&want)), "{rel}: no p{} of event-to-output latency", &q[2..]);
    }

    // Provisioning: the datasource the dashboard names, the folder compose mounts.
    let ds = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    let sources = seq(&ds["datasources"]);
    let prom = sources.iter().find(|x| x["uid"] == "prometheus").expect("no datasource with uid prometheus");
    assert_eq!(prom["type"].as_str(), Some("prometheus"));
    assert_eq!(prom["url"].as_str(), Some("http://prometheus:9090"));
    let dp = yaml("deploy/grafana/provisioning/dashboards/rollcall.yml");
    let providers = seq(&dp["providers"]);
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["type"].as_str(), Some("file"));
    let path = s(&providers[0]["options"]["path"]);
    let c = compose();
    let mounted = mounts_of(c.service("grafana"));
    let src = mounted
        .iter()
        .find(|(_, dst)| *dst == path)
        .unwrap_or_else(|| panic!("grafana: the dashboards provider reads {path}, which compose does not mount"));
    assert!(repo().join(&src.0).join("rollcall.json").is_file(), "{} has no rollcall.json", src.0);
}

// ---------------------------------------------------------------- image

fn dockerfile_builds_and_runs_rollcall_as_a_user() {
    let df = read("deploy/Dockerfile");
    let lines: Vec<&str> = df.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let froms: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "deploy/Dockerfile: a builder and a runtime stage: {froms:?}");
    assert!(froms[0].contains("rust:") && froms[0].contains("bookworm"), "builder: {}", froms[0]);
    assert!(froms[1].starts_with("FROM debian:bookworm-slim"), "runtime: {}", froms[1]);
    assert!(
        df.contains("cargo build --release") && df.contains("-p rollcall-cli"),
        "deploy/Dockerfile: no release build of rollcall-cli"
    );
    for pkg in ["cmake", "g++", "libclang-dev", "libcurl4-openssl-dev", "pkg-config", "ca-certificates"] {
        assert!(df.split_whitespace().any(|w| w == pkg), "deploy/Dockerfile: does not install {pkg}");
    }
    let last = |prefix: &str| lines.iter().rev().find(|l| l.starts_with(prefix)).map(|l| l[prefix.len()..].trim().to_string());
    assert_eq!(last("ENTRYPOINT ").as_deref(), Some(r#"["rollcall"]"#), "ENTRYPOINT");
    assert_eq!(last("EXPOSE ").as_deref(), Some("9464"), "EXPOSE");
    assert!(last("VOLUME ").is_some_and(|v| v.contains(STATE_DIR)), "VOLUME");
    let user = last("USER ").expect("deploy/Dockerfile: no USER: it would run as root");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "deploy/Dockerfile: USER {user}");

    let ignore: BTreeSet<String> = read(".dockerignore")
        .lines()
        .map(|l| l.trim().trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in ["target", ".git"] {
        assert!(ignore.contains(must), ".dockerignore does not ignore {must}");
    }
    // What the build needs stays in the context.
    for need in ["crates", "tests", "schemas", "Cargo.toml", "Cargo.lock"] {
        assert!(!ignore.contains(need), ".dockerignore drops {need}, which the build needs");
    }
}

// ---------------------------------------------------------------- tools

fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(program).args(args).current_dir(repo()).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn promtool_accepts_the_configs_and_the_rules_pass_their_tests() {
    let Some(promtool) = on_path("promtool") else {
        panic!("promtool is not on PATH: scripts/setup.sh installs it (Debian package `prometheus`)");
    };
    for args in [
        &["check", "config", "deploy/prometheus/prometheus.yml"][..],
        &["check", "config", "deploy/prometheus/prometheus-local.yml"],
        &["check", "rules", "deploy/prometheus/alerts.yml"],
        &["test", "rules", "deploy/prometheus/alerts_test.yml"],
    ] {
        let (ok, out) = run(&promtool, args);
        assert!(ok, "promtool {}:\n{out}", args.join(" "));
    }
    // And it does fail on a bad rule, so the passes above mean something.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(rollcall_dlq_records_total[5m] > 0\n",
    )
    .unwrap();
    let (ok, _) = run(&promtool, &["check", "rules", bad.to_str().unwrap()]);
    assert!(!ok, "promtool accepted a rule with unbalanced parentheses");
}

fn docker_compose_accepts_the_compose_file() {
    // `config` validates the file on the client: no Docker engine is needed.
    // The compose plugin where there is one, else Debian's docker-compose
    // (scripts/setup.sh installs it).
    let plugin = on_path("docker").filter(|d| run(d, &["compose", "version"]).0);
    let (program, pre): (PathBuf, &[&str]) = match (plugin, on_path("docker-compose")) {
        (Some(d), _) => (d, &["compose"]),
        (None, Some(c)) => (c, &[]),
        (None, None) => {
            skip::skip(
                "docker_compose_accepts_the_compose_file",
                "neither `docker compose` nor `docker-compose` is on PATH (scripts/setup.sh installs docker-compose)",
            );
            return;
        }
    };
    let compose = |more: &[&str]| {
        let all: Vec<&str> = pre.iter().chain(more).copied().collect();
        run(&program, &all)
    };
    let (ok, out) = compose(&["config", "-q"]);
    assert!(ok, "{} config -q:\n{out}", program.display());
    // And it does refuse a wrong file, so the pass above means something.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("docker-compose.yml");
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap().replacen("image:", "imagez:", 1);
    std::fs::write(&bad, text).unwrap();
    let (ok, _) = compose(&["-f", bad.to_str().unwrap(), "config", "-q"]);
    assert!(!ok, "{} accepted a service with an unknown key", program.display());
}

/// Nothing to set up: these run on the runner's thread pool.
pub fn area() -> Area {
    Area::plain(
        "deploy",
        plain_tests![
            compose_has_every_service_wired_together,
            deployments_give_rollcall_only_flags_it_has,
            k8s_manifests_are_complete,
            metric_identifiers_are_found,
            alert_rules_use_exported_metrics_and_say_what_to_do,
            prometheus_scrapes_the_processors,
            dashboard_shows_every_family_from_the_prometheus_datasource,
            dockerfile_builds_and_runs_rollcall_as_a_user,
            promtool_accepts_the_configs_and_the_rules_pass_their_tests,
            docker_compose_accepts_the_compose_file,
        ],
    )
}
