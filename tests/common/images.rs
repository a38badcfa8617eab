//! A local busybox image for the Docker tests: no registry is reachable from
//! the test machines, so the image is made from the host's static busybox
//! with `docker import` instead of being pulled.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The image the Docker tests run.
pub const BUSYBOX_IMAGE: &str = "shoal-test/busybox:latest";

/// Where Debian's busybox-static puts its binary.
const BUSYBOX_BIN: &str = "/bin/busybox";

/// Applets linked in the image's /bin.
const APPLETS: &[&str] = &[
    "sh", "sleep", "httpd", "nc", "wget", "cat", "echo", "true", "false", "env", "ls", "head",
    "dd", "yes", "tail", "tar", "mkdir",
];

/// The image's label naming its applets: an image made from an older list
/// is made again rather than lacking one a test now runs.
const APPLETS_LABEL: &str = "shoal.test.applets";

/// Serialises builds across test processes (each test file is one process).
const LOCK_FILE: &str = "/tmp/shoal-test-busybox-image.lock";

/// Panics with the message every Docker test gives when the engine is missing,
/// so a machine without dockerd fails the tests instead of skipping them.
pub fn require_docker() {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "Docker engine not reachable: start dockerd");
}

fn image_present() -> bool {
    let format = format!("{{{{index .Config.Labels \"{APPLETS_LABEL}\"}}}}");
    Command::new("docker")
        .args(["image", "inspect", "--format", &format, BUSYBOX_IMAGE])
        .output()
        .map(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == APPLETS.join(",")
        })
        .unwrap_or(false)
}

/// Returns the name of a local busybox image, importing it first if the
/// engine does not have it. Safe to call from many threads and processes.
pub fn ensure_busybox_image() -> String {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        require_docker();
        if image_present() {
            return;
        }
        // Another test process may be importing right now: wait for it, then
        // look again before doing the work twice.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_FILE)
            .expect("open the image lock file");
        lock.lock().expect("take the image lock");
        if !image_present() {
            build_image();
        }
        assert!(image_present(), "{BUSYBOX_IMAGE} missing after import");
        // The lock is released when `lock` is dropped here.
    });
    BUSYBOX_IMAGE.to_string()
}

fn build_image() {
    assert!(
        Path::new(BUSYBOX_BIN).exists(),
        "{BUSYBOX_BIN} missing: install Debian's busybox-static"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("rootfs");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    std::fs::copy(BUSYBOX_BIN, bin.join("busybox")).expect("copy busybox");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink applet");
    }
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).expect("mkdir tmp");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).expect("chmod tmp");
    let tarball = dir.path().join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar of the busybox rootfs failed");
    let out = Command::new("docker")
        .args(["import", "--change", "ENV PATH=/bin", "--change"])
        .arg(format!("LABEL {APPLETS_LABEL}={}", APPLETS.join(",")))
        .arg(&tarball)
        .arg(BUSYBOX_IMAGE)
        .output()
        .expect("run docker import");
    assert!(
        out.status.success(),
        "docker import of {BUSYBOX_IMAGE} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
