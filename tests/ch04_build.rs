//! Chapter 4's `kthw build` end to end: the real commands, whose output the book shows.
//! Each snapshot is a short terminal session in a fresh KTHW_HOME (the working directory
//! is that home, so paths print short); ids, digests and container names are redacted.
//! The snapshots live beside the chapter's crate, in `chapters/04-runtime/tests/snapshots/`.
//!
//! What a build does inside (layers, cache keys, cleanup) is proven by the chapter's
//! own tests (`chapters/04-runtime/tests/build.rs`); these check the CLI around it.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};

mod transcript;

const KTHW: &str = env!("CARGO_BIN_EXE_kthw");

/// A terminal session in one test's home, with `busybox:latest` imported and a context `web/`.
struct Session {
    home: TestHome,
    text: String,
}

impl Session {
    fn new() -> Session {
        let home = TestHome::new();
        let root = home.path().join("busybox");
        kthw_runtime::spec::busybox_rootfs(&root).unwrap();
        let mut s = Session { home, text: String::new() };
        let out = s.kthw(&["image", "import", "busybox", "busybox"]);
        assert!(out.status.success());
        s
    }

    /// Runs `kthw ARGS` in the home and records it.
    fn kthw(&mut self, args: &[&str]) -> Output {
        let mut command = Command::new(KTHW);
        command.args(args).env("KTHW_HOME", self.home.path()).current_dir(self.home.path());
        transcript::record(&mut self.text, &mut command, &args.join(" "))
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.home.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    fn snapshot(&self, name: &str) {
        let mut settings = kthw_lab::snapshot::settings();
        settings.add_filter(r"\bbuild-\d+-\d+-\d+\b", "build-[N]");
        settings.add_filter(r"build-cache:[0-9a-f]{16}", "build-cache:[KEY]");
        settings.add_filter(r"\b[0-9a-f]{12}\b", "[ID]");
        settings.set_snapshot_path("../chapters/04-runtime/tests/snapshots");
        settings.bind(|| insta::assert_snapshot!(name, &self.text));
    }

    /// No mount is left under the home, and no rootfs.
    fn assert_nothing_left(&self) {
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(self.home.path().to_str().unwrap()), "a mount is left");
        let rootfs = self.home.paths.state.join("rootfs");
        let left: Vec<_> = fs::read_dir(&rootfs).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "rootfses left: {left:?}");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Whatever a failed test left: its containers (`kthw rm -f`), mounts and cgroups.
        let _ = Command::new(KTHW).args(["reset", "--force"]).env("KTHW_HOME", self.home.path()).output();
    }
}

const WEB: &str = r#"# A small web site on busybox httpd
FROM busybox
ENV GREETING=hello
WORKDIR /www
COPY index.html ./
RUN echo "built at step 5" > /built && \
    mkdir -p /www/data
EXPOSE 80
CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
"#;

// `kthw build` prints each step and the image it made; a second build takes every step
// from the cache and ends with the same id; a changed file rebuilds from its COPY on.
#[test]
fn build_then_rebuild_from_cache() {
    require!(Need::Root, Need::Overlayfs);
    let mut s = Session::new();
    s.file("web/Dockerfile", WEB);
    s.file("web/index.html", "<h1>hello from kthw</h1>\n");
    let first = s.kthw(&["build", "-t", "web", "web"]);
    assert!(first.status.success());
    let second = s.kthw(&["build", "-t", "web", "web"]);
    assert!(second.status.success());
    let id = |out: &Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Successfully built ").map(String::from))
    };
    assert_eq!(id(&first), id(&second), "the same image id");
    assert_eq!(String::from_utf8_lossy(&second.stdout).matches("Using cache").count(), 6);
    s.file("web/index.html", "<h1>changed</h1>\n");
    let third = s.kthw(&["build", "-t", "web", "web"]);
    assert_eq!(String::from_utf8_lossy(&third.stdout).matches("Using cache").count(), 2, "ENV and WORKDIR");
    assert_ne!(id(&third), id(&first));
    s.assert_nothing_left();
    s.snapshot("build_cache");
}

// A broken Dockerfile fails before any step runs, naming the file and line; a failing
// RUN fails the build with the step and exit code; COPY of ../x is refused.
#[test]
fn build_errors_name_the_line() {
    require!(Need::Root, Need::Overlayfs);
    let mut s = Session::new();
    s.file("bad/Dockerfile", "FROM busybox\nRUN echo one\nCMD ['sh']\n");
    let out = s.kthw(&["build", "-t", "bad", "bad"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing ran");
    s.file("bad/Dockerfile", "FROM busybox\nRUN echo checking; test -f /etc/missing\n");
    let out = s.kthw(&["build", "-t", "bad", "bad"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("returned a non-zero code: 1"));
    s.file("secret.txt", "s3cret\n");
    s.file("bad/Dockerfile", "FROM busybox\nCOPY ../secret.txt /\n");
    let out = s.kthw(&["build", "-t", "bad", "-f", "bad/Dockerfile", "bad"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the build context"));
    s.assert_nothing_left();
    s.snapshot("build_errors");
}
