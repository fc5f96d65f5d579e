//! The final image config: the base's config (unknown fields kept), the frontend's stage
//! config written over it, `--label`s, the layers' diffIDs and the history.

use rbuild_frontend::ImageConfig as StageConfig;
use rbuild_image::config::{Healthcheck, History, ImageConfig};
use rbuild_image::{Digest, Platform};
use std::collections::BTreeMap;

/// RFC 3339 (seconds, UTC) of a Unix time.
pub fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Now, or SOURCE_DATE_EPOCH.
pub fn now_or(epoch: Option<i64>) -> String {
    match epoch {
        Some(e) => rfc3339(e),
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            rfc3339(now)
        }
    }
}

/// Everything the final config is made of.
pub struct Parts<'a> {
    /// The base image's config (`None` for scratch).
    pub base: Option<&'a ImageConfig>,
    /// The stage's config after its last step.
    pub stage: &'a StageConfig,
    /// `--label`s, applied last.
    pub labels: &'a BTreeMap<String, String>,
    /// The platform.
    pub platform: &'a Platform,
    /// Every layer's diffID, base first.
    pub diff_ids: Vec<Digest>,
    /// Every history entry, base first.
    pub history: Vec<History>,
    /// `created`: SOURCE_DATE_EPOCH, else the newest history entry.
    pub created: Option<String>,
}

/// Assemble the config.
pub fn assemble(p: Parts) -> ImageConfig {
    let mut c = p.base.cloned().unwrap_or_default();
    c.architecture = p.platform.architecture.clone();
    c.os = p.platform.os.clone();
    c.variant = p.platform.variant.clone();
    c.created = p.created;
    if let Some(a) = &p.stage.author {
        c.author = Some(a.clone());
    }
    let s = p.stage;
    let cc = c.config_mut();
    cc.env = s.env.clone();
    cc.cmd = s.cmd.clone();
    cc.entrypoint = s.entrypoint.clone();
    cc.working_dir = (!s.working_dir.is_empty()).then(|| s.working_dir.clone());
    cc.user = (!s.user.is_empty()).then(|| s.user.clone());
    let mut labels = s.labels.clone();
    labels.extend(p.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    cc.labels = labels;
    cc.exposed_ports = s.exposed_ports.iter().map(|k| (k.clone(), serde_json::json!({}))).collect();
    cc.volumes = s.volumes.iter().map(|k| (k.clone(), serde_json::json!({}))).collect();
    cc.stop_signal = s.stop_signal.clone();
    cc.healthcheck = s.healthcheck.as_ref().map(|h| Healthcheck {
        test: h.test.clone(),
        interval: (h.interval != 0).then_some(h.interval),
        timeout: (h.timeout != 0).then_some(h.timeout),
        start_period: (h.start_period != 0).then_some(h.start_period),
        start_interval: (h.start_interval != 0).then_some(h.start_interval),
        retries: (h.retries != 0).then_some(h.retries),
        extra: Default::default(),
    });
    cc.on_build = (!s.onbuild.is_empty()).then(|| s.onbuild.clone());
    cc.shell = s.shell.clone();
    c.rootfs.kind = "layers".into();
    c.rootfs.diff_ids = p.diff_ids;
    c.history = p.history;
    c
}

/// A history entry the way BuildKit writes them.
pub fn history(created_by: String, created: &str, empty_layer: bool) -> History {
    History {
        created: Some(created.to_string()),
        created_by: Some(created_by),
        comment: Some("buildkit.dockerfile.v0".into()),
        empty_layer,
        ..Default::default()
    }
}
