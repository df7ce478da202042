//! Real S3 servers on loopback ports, each with one bucket, stopped on
//! drop: moto (enforces conditional writes as AWS does) and garage (a
//! self-hosted store that ignores them). Both come from scripts/install.sh.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::pipeline_support::{free_port, tool, tools_dir, wait_for};

pub const GARAGE: &str = "garage-2.5.0/bin/garage";

/// Known test credentials; the secret is grepped for in logs.
pub const ACCESS_KEY_ID: &str = "GK0123456789abcdef01234567";
pub const SECRET_ACCESS_KEY: &str =
    "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7aaaa";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Moto,
    Garage,
}

pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
    region: &'static str,
    /// garage's configuration, data and log.
    _dir: Option<tempfile::TempDir>,
}

impl S3Server {
    pub fn start(kind: Kind) -> Self {
        match kind {
            Kind::Moto => Self::moto(),
            Kind::Garage => Self::garage(),
        }
    }

    fn moto() -> Self {
        let moto = tool(tools_dir().join("python/bin/moto_server"));
        let port = free_port();
        let child = Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Small parts, so that test files have several.
            .env("S3_UPLOAD_PART_MIN_SIZE", "16384")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let address = format!("127.0.0.1:{port}");
        let server = Self {
            child,
            endpoint: format!("http://{address}"),
            bucket: "lineage".into(),
            region: "us-east-1",
            _dir: None,
        };
        wait_for("moto to listen", Duration::from_secs(60), || {
            std::net::TcpStream::connect(&address).is_ok()
        });
        // moto checks no signature: a plain PUT makes the bucket.
        let reply = http_request(&address, "PUT", "/lineage");
        assert!(reply.starts_with("HTTP/1.1 200"), "create bucket: {reply}");
        server
    }

    /// A single-node garage: sqlite metadata, replication factor 1, a
    /// layout of one 1 GB node, a bucket and a key with known secrets.
    fn garage() -> Self {
        let garage = tool(tools_dir().join(GARAGE));
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{root}/meta"
data_dir = "{root}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
                root = dir.path().display(),
                secret = "ab".repeat(32),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
        let child = Command::new(&garage)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start garage");
        let cli = |args: &[&str]| -> String {
            let out = Command::new(&garage)
                .arg("-c")
                .arg(&config)
                .args(args)
                .output()
                .expect("run the garage CLI");
            assert!(
                out.status.success(),
                "garage {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: "lineage".into(),
            region: "garage",
            _dir: Some(dir),
        };
        // `node id` reads the key from disk and answers before the server
        // listens: wait for its RPC and S3 ports first.
        wait_for("garage to listen", Duration::from_secs(60), || {
            [rpc, s3]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
        });
        let mut node = String::new();
        wait_for("garage to answer", Duration::from_secs(60), || {
            let out = Command::new(&garage)
                .arg("-c")
                .arg(&config)
                .args(["node", "id", "-q"])
                .output()
                .expect("run the garage CLI");
            node = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            out.status.success() && !node.is_empty()
        });
        let node_id = node.split('@').next().unwrap().to_owned();
        cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node_id]);
        cli(&["layout", "apply", "--version", "1"]);
        cli(&["bucket", "create", "lineage"]);
        cli(&[
            "key",
            "import",
            "--yes",
            "-n",
            "lineage-test",
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
        ]);
        cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "lineage",
            "--key",
            "lineage-test",
        ]);
        server
    }

    /// The AWS environment a client needs for this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_REGION", self.region),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // A stopped server must be continued to die.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGCONT) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One plain HTTP/1.1 request; the whole reply.
fn http_request(address: &str, method: &str, target: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}
