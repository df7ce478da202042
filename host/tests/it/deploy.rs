//! Deployment: the Helm chart, rendered and linted with Helm's own Go SDK
//! and every object checked against the Kubernetes API schema
//! (helm/tests/render.py), then what matters about each values file; and
//! the scripts, through shellcheck, `--help` and `--dry-run`.

use std::process::Command;

use serde_json::Value as Json;

use crate::pipeline_support::{tool, tools_dir};
use crate::support::repo_root;

/// Runs a checking script of the repository with the tools venv's Python
/// and parses the JSON it prints.
fn python_json(script: &str, args: &[String]) -> Json {
    let out = Command::new(tool(tools_dir().join("python/bin/python")))
        .arg(repo_root().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} JSON: {e}"))
}

/// values file → its lint report and rendered objects; `a.yaml+b.yaml`
/// layers b over a, keyed by b.
fn render(values: &[&str]) -> Json {
    let chart = repo_root().join("helm/lineage");
    let args: Vec<String> = std::iter::once(chart.display().to_string())
        .chain(values.iter().map(|v| {
            if *v == "-" {
                "-".to_owned()
            } else {
                v.split('+')
                    .map(|part| chart.join(part).display().to_string())
                    .collect::<Vec<_>>()
                    .join("+")
            }
        }))
        .collect();
    let rendered = python_json("helm/tests/render.py", &args);
    // Keyed by file name only, whatever path was passed.
    let mut by_name = serde_json::Map::new();
    for (k, v) in rendered.as_object().unwrap() {
        let name = k.rsplit('/').next().unwrap().to_owned();
        by_name.insert(name, v.clone());
    }
    Json::Object(by_name)
}

fn objects<'a>(release: &'a Json, kind: &str) -> Vec<&'a Json> {
    release["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["object"])
        .filter(|o| o["kind"] == kind)
        .collect()
}

fn one<'a>(release: &'a Json, kind: &str, name: &str) -> &'a Json {
    objects(release, kind)
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The entry of a Kubernetes list (env, volumes, volumeMounts) by its name.
fn named<'a>(list: &'a Json, name: &str) -> Option<&'a Json> {
    list.as_array()?.iter().find(|e| e["name"] == name)
}

fn env<'a>(container: &'a Json, name: &str) -> Option<&'a Json> {
    named(&container["env"], name)
}

fn value(container: &Json, name: &str) -> String {
    env(container, name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("no value for {name}"))
        .to_owned()
}

fn lineage_container(release: &Json) -> &Json {
    &one(release, "StatefulSet", "lineage")["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn every_values_file_lints_and_validates_against_the_kubernetes_schemas() {
    let rendered = render(&[
        "-",
        "values-local.yaml",
        "values-aws.yaml",
        "values-aws.yaml+values-aws-iam.yaml",
    ]);
    assert_eq!(rendered.as_object().unwrap().len(), 4);
    for (file, release) in rendered.as_object().unwrap() {
        let lint = &release["lint"];
        assert!(
            lint["errors"].as_array().is_none_or(|e| e.is_empty()),
            "{file}: lint errors {lint}"
        );
        let findings: Vec<&Json> = lint["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter(|m| m["severity"].as_i64() >= Some(2))
                    .collect()
            })
            .unwrap_or_default();
        assert!(findings.is_empty(), "{file}: lint findings {findings:?}");
        for doc in release["docs"].as_array().unwrap() {
            let errors = doc["errors"].as_array().unwrap();
            // The ServiceMonitor is a CRD of the Prometheus operator: the
            // Kubernetes schemas do not know it.
            if doc["object"]["kind"] == "ServiceMonitor" {
                continue;
            }
            assert!(errors.is_empty(), "{file}: {} {errors:?}", doc["template"]);
        }
    }
}

#[test]
fn the_defaults_run_a_statefulset_whose_ordinal_is_the_subtask_with_probes_and_the_plugin_mounted()
{
    let rendered = render(&["-"]);
    let release = &rendered["-"];
    let set = one(release, "StatefulSet", "lineage");
    let pod = &set["spec"]["template"]["spec"];
    let c = lineage_container(release);
    assert_eq!(c["args"][0], "run");
    assert_eq!(
        env(c, "SUBTASK_INDEX").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    // PLUGIN_PATH names a file inside the volume the plugin is mounted on.
    let plugin_path = value(c, "PLUGIN_PATH");
    let mount = named(&c["volumeMounts"], "plugin").expect("plugin volume mounted");
    assert_eq!(
        plugin_path,
        format!("{}/plugin.wasm", mount["mountPath"].as_str().unwrap())
    );
    let volume = named(&pod["volumes"], "plugin").expect("plugin volume");
    assert_eq!(volume["configMap"]["items"][0]["path"], "plugin.wasm");
    assert_eq!(volume["configMap"]["name"], "lineage-plugin");
    // A ConfigMap mounted whole, not by subPath, is updated in the running
    // pod, and the pod looks for it: a new plugin needs no restart.
    assert!(mount.get("subPath").is_none(), "{mount}");
    assert_eq!(value(c, "PLUGIN_WATCH_INTERVAL"), "10s");
    // Probes on the endpoints `lineage run` serves, where it serves them.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(value(c, "METRICS_ADDRESS"), "0.0.0.0:9464");
    assert_eq!(c["ports"][0]["containerPort"], 9464);
    // Long enough for the final checkpoint (SHUTDOWN_TIMEOUT 30s).
    assert_eq!(value(c, "SHUTDOWN_TIMEOUT"), "30s");
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap() > 30);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let pdb = one(release, "PodDisruptionBudget", "lineage");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        one(release, "Service", "lineage")["spec"]["ports"][0]["port"],
        9464
    );
    assert!(objects(release, "ServiceMonitor").is_empty());
    assert!(
        objects(release, "Deployment").is_empty(),
        "no generator, no MinIO"
    );
}

#[test]
fn the_local_values_bring_kafka_minio_a_bucket_and_the_generator() {
    let rendered = render(&["values-local.yaml"]);
    let release = &rendered["values-local.yaml"];
    let kafka = one(release, "StatefulSet", "lineage-kafka");
    let broker = &kafka["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(value(broker, "KAFKA_PROCESS_ROLES"), "broker,controller");
    one(release, "Deployment", "lineage-minio");
    let job = one(release, "Job", "lineage-minio-bucket");
    assert!(
        job["spec"]["template"]["spec"]["containers"][0]["args"][0]
            .as_str()
            .unwrap()
            .contains("mc mb --ignore-existing local/lineage")
    );
    let c = lineage_container(release);
    assert_eq!(value(c, "KAFKA_BOOTSTRAP_SERVERS"), "lineage-kafka:9092");
    assert_eq!(value(c, "AWS_ENDPOINT_URL"), "http://lineage-minio:9000");
    assert_eq!(
        env(c, "AWS_SECRET_ACCESS_KEY").unwrap()["valueFrom"]["secretKeyRef"]["name"],
        "lineage-minio"
    );
    assert!(value(c, "OUTPUT_PATH").starts_with("s3://lineage/"));
    let generator = one(release, "Deployment", "lineage-generator");
    let g = &generator["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(g["args"][0], "generate");
    assert_eq!(value(g, "KAFKA_BOOTSTRAP_SERVERS"), "lineage-kafka:9092");
}

#[test]
fn the_aws_values_give_tls_to_msk_and_irsa_without_static_keys() {
    let rendered = render(&["values-aws.yaml"]);
    let release = &rendered["values-aws.yaml"];
    let c = lineage_container(release);
    assert_eq!(value(c, "KAFKA_SECURITY_PROTOCOL"), "SSL");
    assert!(
        value(c, "KAFKA_BOOTSTRAP_SERVERS")
            .split(',')
            .all(|b| b.ends_with(":9094"))
    );
    assert!(
        env(c, "AWS_ACCESS_KEY_ID").is_none(),
        "credentials come from IRSA"
    );
    assert!(env(c, "AWS_ENDPOINT_URL").is_none(), "AWS S3 itself");
    let account = one(release, "ServiceAccount", "lineage");
    assert!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:iam::")
    );
    let set = one(release, "StatefulSet", "lineage");
    assert_eq!(set["spec"]["replicas"], 3);
    assert_eq!(
        set["spec"]["template"]["spec"]["serviceAccountName"],
        "lineage"
    );
    assert_eq!(objects(release, "ServiceMonitor").len(), 1);
    assert!(objects(release, "Deployment").is_empty());
}

#[test]
fn the_aws_iam_variant_signs_in_to_msk_with_the_pods_role() {
    let rendered = render(&["values-aws.yaml+values-aws-iam.yaml"]);
    let release = &rendered["values-aws-iam.yaml"];
    let c = lineage_container(release);
    assert_eq!(value(c, "KAFKA_SASL_MECHANISM"), "AWS_MSK_IAM");
    assert_eq!(value(c, "KAFKA_SECURITY_PROTOCOL"), "SASL_SSL");
    assert!(
        value(c, "KAFKA_BOOTSTRAP_SERVERS")
            .split(',')
            .all(|b| b.ends_with(":9098")),
        "MSK's IAM listener"
    );
    assert!(env(c, "AWS_ACCESS_KEY_ID").is_none(), "IRSA, not keys");
    let account = one(release, "ServiceAccount", "lineage");
    let role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        .as_str()
        .unwrap();
    assert!(role.starts_with("arn:aws:iam::"), "{role}");
    // What it does not override stays as values-aws.yaml has it.
    assert_eq!(
        one(release, "StatefulSet", "lineage")["spec"]["replicas"],
        3
    );
    let plain = &render(&["values-aws.yaml"])["values-aws.yaml"];
    assert!(env(lineage_container(plain), "KAFKA_SASL_MECHANISM").is_none());
}

#[test]
fn a_plugin_from_an_image_is_copied_in_by_an_init_container_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("values-image.yaml");
    std::fs::write(
        &image,
        "plugin:\n  source: image\n  image:\n    repository: registry.example/plugins/enrich\n    tag: \"2\"\n    path: /enrich.wasm\n",
    )
    .unwrap();
    let bad = dir.path().join("values-bad.yaml");
    std::fs::write(&bad, "kafka:\n  securityProtocol: TLS\n").unwrap();
    let rendered = render(&[image.to_str().unwrap(), bad.to_str().unwrap()]);

    let release = &rendered["values-image.yaml"];
    let pod = &one(release, "StatefulSet", "lineage")["spec"]["template"]["spec"];
    let init = &pod["initContainers"][0];
    assert_eq!(init["image"], "registry.example/plugins/enrich:2");
    assert_eq!(init["command"][1], "/enrich.wasm");
    assert_eq!(
        init["command"][2].as_str().unwrap(),
        value(&pod["containers"][0], "PLUGIN_PATH")
    );
    let volume = named(&pod["volumes"], "plugin").expect("plugin volume");
    assert!(volume.get("emptyDir").is_some());

    let error = rendered["values-bad.yaml"]["schema_error"]
        .as_str()
        .expect("the schema refuses an unknown security protocol");
    assert!(error.contains("securityProtocol"), "{error}");
}

/// Every script passes shellcheck, and the benchmark scripts answer
/// `--help` without starting anything.
#[test]
fn the_scripts_pass_shellcheck_and_answer_help() {
    let scripts: Vec<std::path::PathBuf> = std::fs::read_dir(repo_root().join("scripts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .chain([repo_root().join(".ci/run")])
        .collect();
    assert!(scripts.len() >= 6, "{scripts:?}");
    let out = Command::new("shellcheck")
        .arg("--external-sources")
        .current_dir(repo_root())
        .args(&scripts)
        .output()
        .expect("shellcheck (installed by scripts/install.sh)");
    assert!(
        out.status.success(),
        "shellcheck:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for script in [
        "bench-scale.sh",
        "bench-stores.sh",
        "build-and-run.sh",
        "deploy.sh",
        "kind-setup.sh",
    ] {
        let out = Command::new(repo_root().join("scripts").join(script))
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{script} --help: {text}");
        assert!(
            text.contains(script),
            "{script} --help names itself: {text}"
        );
    }
}

fn script(name: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(repo_root().join("scripts").join(name))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn deploy_dry_runs_show_the_image_the_plugin_and_the_release_for_each_target() {
    let (ok, local, err) = script("deploy.sh", &["--dry-run", "local"], &[]);
    assert!(ok, "{err}");
    assert!(local.contains("+ docker build -t lineage:"), "{local}");
    assert!(
        local.contains("+ kind load docker-image lineage:"),
        "{local}"
    );
    assert!(
        local.contains("kubectl create configmap lineage-plugin")
            && local.contains("plugin.wasm=plugins/enrich.wasm"),
        "{local}"
    );
    assert!(
        local.contains("+ helm upgrade --install lineage helm/lineage --namespace lineage -f helm/lineage/values-local.yaml"),
        "{local}"
    );
    assert!(err.contains("nothing was changed"), "{err}");

    let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com/lineage";
    let (ok, aws, err) = script(
        "deploy.sh",
        &["--dry-run", "aws"],
        &[("ECR_REPOSITORY", ecr), ("AWS_REGION", "us-east-1")],
    );
    assert!(ok, "{err}");
    assert!(aws.contains(&format!("+ docker push {ecr}:")), "{aws}");
    assert!(aws.contains("docker login --username AWS --password-stdin 123456789012.dkr.ecr.us-east-1.amazonaws.com"), "{aws}");
    assert!(aws.contains("-f helm/lineage/values-aws.yaml"), "{aws}");
    assert!(
        aws.contains(&format!("--set image.repository={ecr}")),
        "{aws}"
    );

    // aws without a repository, or without a target: refused, saying why.
    let (ok, _, err) = script(
        "deploy.sh",
        &["--dry-run", "aws"],
        &[("ECR_REPOSITORY", ""), ("AWS_REGION", "")],
    );
    assert!(!ok && err.contains("ECR_REPOSITORY"), "{err}");
    let (ok, _, err) = script("deploy.sh", &[], &[]);
    assert!(!ok && err.contains("local or aws"), "{err}");
}

#[test]
fn scripts_without_their_tools_say_which_are_missing() {
    // A PATH with nothing but what the scripts need to get that far.
    let bin = tempfile::tempdir().unwrap();
    for tool in ["bash", "dirname", "git", "sed"] {
        let found = Command::new("bash")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
        std::os::unix::fs::symlink(path, bin.path().join(tool)).unwrap();
    }
    let path = bin.path().display().to_string();
    let (ok, _, err) = script("deploy.sh", &["local"], &[("PATH", &path)]);
    assert!(!ok, "{err}");
    assert!(err.contains("missing: docker kind kubectl helm"), "{err}");
    let (ok, _, err) = script("kind-setup.sh", &[], &[("PATH", &path)]);
    assert!(!ok, "{err}");
    assert!(err.contains("missing: docker kind kubectl"), "{err}");
}

#[test]
fn build_and_run_without_docker_starts_the_broker_the_store_the_generator_and_the_pipeline() {
    let (ok, plan, err) = script("build-and-run.sh", &["--dry-run", "--processes"], &[]);
    assert!(ok, "{err}");
    for step in [
        "+ scripts/install.sh",
        "+ cargo build --release --locked -p lineage",
        "tansu broker --listener-url tcp://127.0.0.1:",
        "moto_server -H 127.0.0.1 -p ",
        "tansu topic create events",
        "+ target/release/lineage generate --rate 100",
        "+ target/release/lineage run",
    ] {
        assert!(plan.contains(step), "no {step:?} in:\n{plan}");
    }
}

/// `[env: NAME=…]` names in a subcommand's `--help`.
fn env_names(subcommand: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args([subcommand, "--help"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    help.split("[env: ")
        .skip(1)
        .map(|s| s.split(['=', ']']).next().unwrap().to_owned())
        .collect()
}

/// No Docker engine runs here, so the compose file is checked against the
/// Compose specification's schema, and what it passes to `lineage` against
/// the settings `lineage` reads.
#[test]
fn the_compose_file_follows_the_compose_spec_and_sets_only_real_settings() {
    let checked = python_json(
        "host/tests/it/check_compose.py",
        &[repo_root().join("docker-compose.yml").display().to_string()],
    );
    assert_eq!(
        checked["errors"],
        serde_json::json!([]),
        "compose-spec errors"
    );
    let services = &checked["compose"]["services"];

    // The credentials are object_store's own AWS_* variables, not flags.
    let credentials = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];
    for (service, subcommand) in [("lineage", "run"), ("generator", "generate")] {
        let known = env_names(subcommand);
        assert!(known.len() > 5, "{known:?}");
        let command = &services[service]["command"][0];
        assert_eq!(command, subcommand, "{service} runs `lineage {subcommand}`");
        for name in services[service]["environment"].as_object().unwrap().keys() {
            assert!(
                known.contains(name) || credentials.contains(&name.as_str()),
                "{service} sets {name}, which `lineage {subcommand}` does not read ({known:?})"
            );
        }
    }
    let lineage = &services["lineage"];
    let generator = &services["generator"];
    assert_eq!(
        lineage["environment"]["KAFKA_TOPIC"],
        generator["environment"]["KAFKA_TOPIC"]
    );
    // The bucket the Job creates holds all three paths.
    let bucket_command = services["bucket"]["command"][0].as_str().unwrap();
    for path in ["OUTPUT_PATH", "DROPPED_PATH", "WRITE_AHEAD_COMMIT_LOG_PATH"] {
        let url = lineage["environment"][path].as_str().unwrap();
        let bucket = url
            .strip_prefix("s3://")
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        assert!(
            bucket_command.contains(&format!("local/{bucket}")),
            "{path}={url}: {bucket_command}"
        );
    }
    assert_eq!(
        lineage["depends_on"]["bucket"]["condition"],
        "service_completed_successfully"
    );
    assert_eq!(
        lineage["depends_on"]["kafka"]["condition"],
        "service_healthy"
    );
    // The image built once (by the generator's `build`) runs the pipeline.
    assert_eq!(generator["build"], ".");
    assert_eq!(lineage["image"], generator["image"]);
    assert!(lineage["ports"][0].as_str().unwrap().ends_with(":9464"));
    // Long enough for SHUTDOWN_TIMEOUT's default (30 s): the final checkpoint.
    let grace = lineage["stop_grace_period"].as_str().unwrap();
    let grace: u64 = grace.strip_suffix('s').unwrap().parse().unwrap();
    assert!(grace > 30, "stop_grace_period {grace}s");
}

/// The runtime stage installs a package for every shared library the
/// binary links directly, other than those every Debian image has.
#[test]
fn the_runtime_image_installs_every_library_the_binary_links() {
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let runtime = dockerfile.split("\nFROM ").last().expect("a runtime stage");
    assert!(runtime.starts_with("debian:bookworm-slim"), "{runtime}");
    assert!(runtime.contains("USER 10001:10001"), "runs as non-root");
    let base = ["libc6", "libgcc-s1"];
    let binary = env!("CARGO_BIN_EXE_lineage");
    let readelf = Command::new("readelf")
        .args(["-d", binary])
        .output()
        .unwrap();
    let ldd = Command::new("ldd").arg(binary).output().unwrap();
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    let mut checked = 0;
    for line in String::from_utf8_lossy(&readelf.stdout).lines() {
        let Some(lib) = line.split("Shared library: [").nth(1) else {
            continue;
        };
        let lib = lib.trim_end_matches(']');
        let Some(path) = ldd
            .lines()
            .find(|l| l.trim_start().starts_with(lib))
            .and_then(|l| l.split("=> ").nth(1))
            .and_then(|p| p.split(' ').next())
        else {
            continue; // the dynamic loader itself
        };
        let path = std::fs::canonicalize(path).unwrap();
        // By file name: with merged /usr, dpkg may record /lib rather than /usr/lib.
        let name = path.file_name().unwrap();
        let owner = Command::new("dpkg").arg("-S").arg(name).output().unwrap();
        let owner = String::from_utf8_lossy(&owner.stdout);
        let ending = format!("/{}", name.to_string_lossy());
        let package = owner
            .lines()
            .find(|l| l.ends_with(&ending))
            .and_then(|l| l.split(':').next())
            .unwrap_or_default()
            .trim();
        assert!(!package.is_empty(), "no package owns {}", path.display());
        assert!(
            base.contains(&package) || runtime.contains(&format!(" {package}")),
            "{lib} comes from {package}, which the runtime stage does not install"
        );
        checked += 1;
    }
    assert!(checked >= 5, "{checked} libraries checked");
}

/// The README's configuration tables list every setting `lineage run`
/// reads and nothing it does not, and its commands name scripts and
/// Kubernetes objects that exist.
#[test]
fn the_readme_matches_the_settings_the_scripts_and_the_chart() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let known = env_names("run");
    for name in &known {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README's configuration does not list {name}"
        );
    }
    let tabled: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .filter_map(|l| l.split('|').nth(2))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .collect();
    assert!(tabled.len() >= 20, "{tabled:?}");
    for name in tabled {
        assert!(
            known.iter().any(|k| k == name),
            "README lists {name}, which `lineage run` does not read"
        );
    }
    for word in readme.split(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == ')') {
        if let Some(script) = word.strip_prefix("scripts/").filter(|s| s.ends_with(".sh")) {
            assert!(
                repo_root().join("scripts").join(script).is_file(),
                "README runs scripts/{script}, which does not exist"
            );
        }
    }
    let local = &render(&["values-local.yaml"])["values-local.yaml"];
    for word in readme.split_whitespace() {
        if let Some(service) = word.strip_prefix("svc/") {
            one(local, "Service", service);
        }
    }
}
