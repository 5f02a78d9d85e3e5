//! A real kube-apiserver with its etcd on free loopback ports, for benchmarks and tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// The admin's bearer token: a static credential in the `system:masters` group.
/// How long etcd, then kube-apiserver, may take to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A kube-apiserver and its etcd, built by `scripts/kube-apiserver` and started on free
/// loopback ports in a private directory (0700; the credentials in it and the kubeconfigs
/// written are 0600), with RBAC authorization on, a static admin token (random, new at each
/// start, in the admin's kubeconfig only) and service-account
/// token issuing. Both processes are killed, and the directory removed, on drop; they also end
/// by themselves when the process that started them ends.
#[derive(Debug)]
pub struct KubeApiserver {
    bin: PathBuf,
    dir: PathBuf,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    etcd_port: u16,
    port: u16,
    fsync: bool,
    admin_token: String,
}

impl KubeApiserver {
    /// Starts etcd, syncing to disk as it does by default, waits until it is healthy, then
    /// starts kube-apiserver and waits until `/readyz` answers; panics with a hint when the
    /// binaries cannot be built or found.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// Starts them with etcd's fsync off (`--unsafe-no-fsync`), for benchmarks that say so.
    pub fn start_without_fsync() -> Self {
        Self::start_with(false)
    }

    fn start_with(fsync: bool) -> Self {
        let bin = binaries();
        remove_stale_dirs();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("knactor-kube-{}-{port}", std::process::id()));
        // Made here, not found: a directory someone else made under that name is refused.
        new_private_dir(&dir);
        new_private_dir(&dir.join("certs"));
        let admin_token = write_credentials(&dir);
        let mut server = KubeApiserver {
            bin,
            dir,
            etcd: None,
            apiserver: None,
            etcd_port: free_port(),
            port,
            fsync,
            admin_token,
        };
        server.spawn_etcd();
        server.spawn_apiserver();
        server
    }

    /// The apiserver's URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// A kubeconfig file for the admin, as kubectl reads it.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Writes a kubeconfig that authenticates with `token` (a ServiceAccount's, say) to `path`
    /// (0600), with `namespace` as its default.
    pub fn write_kubeconfig(&self, path: &Path, token: &str, namespace: &str) {
        let ca = self.dir.join("certs/apiserver.crt");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: knactor\n\
             clusters:\n- name: knactor\n  cluster:\n    server: {url}\n    certificate-authority: {ca}\n\
             users:\n- name: knactor\n  user:\n    token: {token}\n\
             contexts:\n- name: knactor\n  context:\n    cluster: knactor\n    user: knactor\n    namespace: {namespace}\n",
            url = self.url(),
            ca = ca.display(),
        );
        write_private(path, text.as_bytes());
    }

    /// Stops kube-apiserver (etcd keeps running), as an outage of the apiserver would.
    pub fn stop_apiserver(&mut self) {
        stop(&mut self.apiserver);
    }

    /// Starts kube-apiserver again on the same port and etcd, and waits until it is ready.
    pub fn restart_apiserver(&mut self) {
        self.stop_apiserver();
        self.spawn_apiserver();
    }

    fn spawn_etcd(&mut self) {
        let peer = free_port();
        let client_url = format!("http://127.0.0.1:{}", self.etcd_port);
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut etcd = Command::new(self.bin.join("etcd"));
        etcd.arg("--data-dir")
            .arg(self.dir.join("etcd"))
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .args(["--log-level", "error", "--log-outputs", "stderr"]);
        if !self.fsync {
            etcd.arg("--unsafe-no-fsync");
        }
        let log = self.dir.join("etcd.log");
        self.etcd = Some(spawn(etcd, &log));
        let health = format!("{client_url}/health");
        wait_for("etcd", &mut self.etcd, &log, || {
            curl(&[&health]).is_some_and(|body| body.starts_with(br#"{"health":"true""#))
        });
    }

    fn spawn_apiserver(&mut self) {
        let dir = &self.dir;
        let path = |name: &str| dir.join(name).display().to_string();
        let mut apiserver = Command::new(self.bin.join("kube-apiserver"));
        apiserver
            .arg(format!("--etcd-servers=http://127.0.0.1:{}", self.etcd_port))
            .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
            .arg(format!("--secure-port={}", self.port))
            .arg(format!("--cert-dir={}", path("certs")))
            .arg(format!("--token-auth-file={}", path("tokens.csv")))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!("--service-account-key-file={}", path("sa.pub")))
            .arg(format!("--service-account-signing-key-file={}", path("sa.key")))
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            .args(["--enable-priority-and-fairness=false", "--profiling=false"])
            // No Service points at a loopback apiserver.
            .arg("--endpoint-reconciler-type=none");
        let log = dir.join("kube-apiserver.log");
        self.apiserver = Some(spawn(apiserver, &log));
        self.write_kubeconfig(&self.kubeconfig(), &self.admin_token, "default");
        self.wait_ready(&log);
    }

    /// Polls `/readyz` until it answers `ok`. It asks anonymously, as the default RBAC lets
    /// anyone (`system:public-info-viewer`), so that no credential is on a command line.
    fn wait_ready(&mut self, log: &Path) {
        let ca = self.dir.join("certs/apiserver.crt");
        let ca_arg = ca.display().to_string();
        let readyz = format!("{}/readyz", self.url());
        wait_for("kube-apiserver", &mut self.apiserver, log, || {
            ca.exists() && curl(&["--cacert", &ca_arg, &readyz]).is_some_and(|body| body == b"ok")
        });
    }
}

impl Drop for KubeApiserver {
    fn drop(&mut self) {
        stop(&mut self.apiserver);
        stop(&mut self.etcd);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The directory holding `kube-apiserver` and `etcd`: `$KNACTOR_KUBE_BIN`, or what
/// `scripts/kube-apiserver` builds (once) and prints.
fn binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("KNACTOR_KUBE_BIN") {
        return PathBuf::from(dir);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kube-apiserver");
    let out = Command::new(&script).stderr(Stdio::inherit()).output().unwrap_or_else(|e| {
        panic!("cannot run {} ({e}): run scripts/setup, or set KNACTOR_KUBE_BIN", script.display())
    });
    assert!(out.status.success(), "{} failed: see its output above", script.display());
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Removes the directories of servers whose test process has ended: a server shared by a
/// whole test process is never dropped (its processes end with it, its directory stays).
fn remove_stale_dirs() {
    if !Path::new("/proc/self").exists() {
        return; // No way to tell a live process here: leave them.
    }
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("knactor-kube-")) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The admin's static token, random (returned), and the key pair that signs ServiceAccount
/// tokens; the token file and the private key 0600.
fn write_credentials(dir: &Path) -> String {
    let openssl = |args: &[&str]| {
        let out =
            Command::new("openssl").args(args).stderr(Stdio::null()).output().unwrap_or_else(|e| {
                panic!("cannot run openssl ({e}): install it with scripts/setup")
            });
        assert!(out.status.success(), "openssl {args:?} failed");
        out.stdout
    };
    // The key comes through a pipe, so that it is in no file but the private one.
    let key = dir.join("sa.key");
    write_private(&key, &openssl(&["genrsa", "2048"]));
    let key_path = key.display().to_string();
    let pub_path = dir.join("sa.pub").display().to_string();
    openssl(&["rsa", "-in", &key_path, "-pubout", "-out", &pub_path]);
    let admin_token = String::from_utf8(openssl(&["rand", "-hex", "32"])).expect("hex digits");
    let admin_token = admin_token.trim().to_owned();
    let tokens = format!("{admin_token},admin,admin,\"system:masters\"\n");
    write_private(&dir.join("tokens.csv"), tokens.as_bytes());
    admin_token
}

/// Creates `dir`, which must not exist yet, readable by the owner only.
fn new_private_dir(dir: &Path) {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).unwrap_or_else(|e| panic!("cannot create {} ({e})", dir.display()));
}

/// Writes `contents` to `path`, readable and writable by the owner only (0600), a file that
/// was there before included, before anything is written to it.
fn write_private(path: &Path, contents: &[u8]) {
    let written = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        std::io::Write::write_all(&mut file, contents)
    })();
    written.unwrap_or_else(|e| panic!("cannot write {} ({e})", path.display()));
}

/// The body of a successful `curl` of `args` (a URL last), or `None`.
fn curl(args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("curl").args(["-sf", "--max-time", "2"]).args(args).output().ok()?;
    out.status.success().then_some(out.stdout)
}

/// Polls `ready` until it holds; panics with the log's end when `child` exits first or
/// [`START_TIMEOUT`] passes.
fn wait_for(what: &str, child: &mut Option<Child>, log: &Path, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(child) = child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("{what} exited ({status}); its log:\n{}", tail(log));
        }
        if ready() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not ready in {START_TIMEOUT:?}; its log:\n{}",
            tail(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn(mut command: Command, log: &Path) -> Child {
    let log = fs::File::create(log).expect("create a log file");
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?} ({e})", command.get_program()))
}

fn stop(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The last lines of a log file, for a failure message.
fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn credentials_are_the_owners_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("server");
        new_private_dir(&dir);
        new_private_dir(&dir.join("certs"));
        assert_eq!((mode(&dir), mode(&dir.join("certs"))), (0o700, 0o700));
        let again = std::panic::catch_unwind(|| new_private_dir(&dir));
        assert!(again.is_err(), "a directory found there already is refused");
        let kubeconfig = dir.join("kubeconfig");
        fs::write(&kubeconfig, "old").unwrap();
        fs::set_permissions(&kubeconfig, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&kubeconfig, b"new");
        assert_eq!(mode(&kubeconfig), 0o600, "a file that was there is made private too");
        assert_eq!(fs::read(&kubeconfig).unwrap(), b"new");
        let token = write_credentials(&dir);
        assert_eq!(token.len(), 64, "{token}");
        assert_ne!(token, write_credentials(&dir), "a new token at each start");
        assert_eq!((mode(&dir.join("tokens.csv")), mode(&dir.join("sa.key"))), (0o600, 0o600));
        assert!(fs::read_to_string(dir.join("sa.pub")).unwrap().contains("PUBLIC KEY"));
    }
}
