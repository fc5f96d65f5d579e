//! What the Dockerfile frontend's semantics look like in a built image: ARG history
//! entries, WORKDIR as written, RUN --device refused clearly, and `rbuild check` using
//! the local store for base images.

mod common;

use common::Env;

fn ctx(e: &Env, dockerfile: &str) -> String {
    let dir = e.path("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir.to_str().unwrap().to_string()
}

/// The image config blob of a build, from the store (an OCI layout).
fn config_blob(e: &Env, meta: &serde_json::Value) -> serde_json::Value {
    let d = meta["containerimage.config.digest"].as_str().unwrap();
    let hex = d.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&std::fs::read(e.root().join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

#[test]
fn arg_is_in_the_history_and_workdir_keeps_its_slash() {
    let e = Env::new();
    let c = ctx(&e, "FROM busybox\nARG A=1\nARG B C=${A}x\nWORKDIR /tmp/\n");
    let (_, meta) = e.build(&["--build-arg", "B=cli", "-t", "args", &c]);
    let cfg = config_blob(&e, &meta);
    assert_eq!(cfg["config"]["WorkingDir"], "/tmp/");
    let hist: Vec<(String, bool)> = cfg["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["created_by"].as_str().unwrap_or("").to_string(), h["empty_layer"].as_bool().unwrap_or(false)))
        .collect();
    let tail = &hist[hist.len() - 3..];
    assert_eq!(tail[0], ("ARG A=1".to_string(), true), "{hist:?}");
    assert_eq!(tail[1], ("ARG B=cli C=1x".to_string(), true), "{hist:?}");
    assert!(tail[2].0.starts_with("WORKDIR /tmp/"), "{hist:?}");
    // Another value: the ARG step is cached (its identity is the names), its history is not.
    let (_, meta) = e.build(&["--build-arg", "B=other", "-t", "args", &c]);
    let cfg = config_blob(&e, &meta);
    let hist = cfg["history"].as_array().unwrap();
    assert_eq!(hist[hist.len() - 2]["created_by"], "ARG B=other C=1x", "{hist:?}");
}

#[test]
fn run_device_is_refused_as_not_supported_yet() {
    let e = Env::new();
    let c = ctx(&e, "FROM busybox\nRUN --device=vendor.com/gpu=0 true\n");
    let (ok, err) = e.try_build(&["-t", "dev", &c]);
    assert!(!ok, "{err}");
    assert!(err.contains("RUN --device=vendor.com/gpu=0: CDI devices are not supported yet"), "{err}");
    // The flag itself parses: check has nothing to say about it.
    let out = e.rb(&["check", &c]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("unknown flag"), "{text}");
}

#[test]
fn check_reads_base_images_from_the_local_store() {
    let e = Env::new();
    // busybox is in the store; nothing-here is not.
    let c = ctx(&e, "FROM busybox\nENV X=$PATH\nFROM nothing-here\nENV Y=$HOME\n");
    let out = e.rb(&["check", &c]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("\"busybox\" could not be resolved"), "{text}");
    assert!(text.contains("note: base image \"nothing-here\" could not be resolved offline"), "{text}");
    assert!(text.contains("note: Usage of variable '$HOME' could not be checked"), "{text}");
    assert!(text.contains("Check complete, no warnings found (2 notes)."), "{text}");
}
