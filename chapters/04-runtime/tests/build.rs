//! `kthw build` as a library: Dockerfiles built into the chapter 3 store, steps run in
//! our own runtime, the cache, and what a failed build leaves behind (nothing).
//!
//! The base image is a busybox root filesystem imported as one layer. Every test has
//! its own `TestHome`, so its store, rootfses, runtime state and cgroups are its own.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use kthw_lab::require;
use kthw_lab::systest::{Need, TestHome};
use kthw_rootfs::rootfs::Rootfs;
use kthw_rootfs::{Image, Store};
use kthw_runtime::build::{self, Built, Options};
use kthw_runtime::lifecycle::{CreateOptions, Runtime};
use kthw_runtime::spec;

/// A test's home, its store with `busybox:latest`, and a build context folder.
struct Env {
    home: TestHome,
    store: Store,
    context: PathBuf,
}

impl Env {
    fn new() -> Env {
        let home = TestHome::new();
        let store = Store::open(home.paths.images()).unwrap();
        let root = home.path().join("busybox");
        spec::busybox_rootfs(&root).unwrap();
        kthw_rootfs::import::import_dir(&store, &root, "busybox").unwrap();
        let context = home.path().join("context");
        fs::create_dir_all(&context).unwrap();
        Env { home, store, context }
    }

    /// Writes a file of the build context.
    fn file(&self, name: &str, text: &str) {
        let path = self.context.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// Builds `dockerfile` (written into the context) as `tag`; returns the result and
    /// what the build printed.
    fn build(&self, dockerfile: &str, tag: &str, no_cache: bool) -> (kthw_runtime::Result<Built>, String) {
        self.file("Dockerfile", dockerfile);
        let mut out = Vec::new();
        let result = build::build(
            &self.home.paths,
            &self.store,
            &self.context,
            &self.context.join("Dockerfile"),
            tag,
            &Options { no_cache },
            &mut out,
        );
        (result, String::from_utf8_lossy(&out).into_owned())
    }

    /// Runs `image` (its entrypoint and cmd) with the low-level runtime; the exit code
    /// and what it printed.
    fn run(&self, image: &str) -> (i32, String) {
        let image = self.store.image(image).unwrap();
        let config = image.config.config().clone().unwrap_or_default();
        let mut argv = config.entrypoint().clone().unwrap_or_default();
        argv.extend(config.cmd().clone().unwrap_or_default());
        let bundle = self.home.paths.run.join("test-run");
        let mut rootfs = Rootfs::create(&self.home.paths, &self.store, &image.name, "test-run", None, vec![]).unwrap();
        rootfs.mount(&self.store, &bundle.join("rootfs")).unwrap();
        let spec = build::run_spec(&argv, &config, "test-run", (0, 0)).unwrap();
        spec.save(bundle.join("config.json")).unwrap();
        let log = self.home.path().join("run.log");
        let out: OwnedFd = fs::File::create(&log).unwrap().into();
        let err = out.try_clone().unwrap();
        let opts = CreateOptions { stdio: [None, Some(out), Some(err)], ..Default::default() };
        let code = Runtime::for_paths(&self.home.paths).run("test-run", &bundle, opts);
        rootfs.remove(&self.store).unwrap();
        (code.unwrap(), fs::read_to_string(&log).unwrap())
    }

    /// What a build must not leave: mounts under the home, rootfses, holds on images,
    /// runtime state, cgroups of ours.
    fn assert_nothing_left(&self) {
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let home = self.home.path().to_str().unwrap();
        assert!(!mounts.contains(home), "a mount is left under {home}");
        let rootfses = Rootfs::list(&self.home.paths).unwrap();
        assert!(rootfses.is_empty(), "rootfses left: {:?}", rootfses.iter().map(|r| &r.meta.name).collect::<Vec<_>>());
        assert!(self.store.holds().unwrap().is_empty(), "holds left: {:?}", self.store.holds().unwrap());
        let runtime = Runtime::for_paths(&self.home.paths);
        let states: Vec<PathBuf> =
            fs::read_dir(runtime.root()).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(states.is_empty(), "runtime state left: {states:?}");
        let layout = kthw_lab::host::CgroupLayout::detect().unwrap();
        for mount in &layout.mounts {
            let ours = mount.path.join(self.home.paths.cgroup_root());
            let children: Vec<PathBuf> = fs::read_dir(&ours)
                .map(|d| d.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()).collect())
                .unwrap_or_default();
            assert!(children.is_empty(), "cgroups left: {children:?}");
        }
    }

    fn layers(&self, image: &Image) -> usize {
        image.manifest.layers().len()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // If a test failed half-way: unmount what is left under the home, drop our cgroups.
        if let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") {
            let home = self.home.path().to_string_lossy().into_owned();
            let mut points: Vec<&str> =
                mounts.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&home)).collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        if let Ok(layout) = kthw_lab::host::CgroupLayout::detect() {
            if let Ok(cg) = kthw_cgroups::Cgroup::open(&layout, self.home.paths.cgroup_root()) {
                let _ = cg.delete();
            }
        }
    }
}

fn needs() -> [Need; 2] {
    [Need::Root, Need::Overlayfs]
}

const DEMO: &str = r#"# A small image: a file of the context, one built in a RUN, env and workdir.
FROM busybox
ENV GREETING=hello DIR=/app
WORKDIR $DIR
COPY index.html ./
RUN echo built > /built && \
    mkdir -p /app/data
CMD ["sh", "-c", "cat /built index.html; echo $GREETING from $(pwd); ls /app"]
"#;

// A Dockerfile with FROM, ENV, WORKDIR, COPY, RUN and CMD builds; one layer per COPY
// and RUN on top of the base; the image runs and shows the files and the environment.
#[test]
fn dockerfile_builds_and_the_image_runs() {
    let [a, b] = needs();
    require!(a, b);
    let env = Env::new();
    env.file("index.html", "<h1>hi</h1>\n");
    let (built, out) = env.build(DEMO, "demo", false);
    let built = built.unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert!(out.starts_with("Step 1/6 : FROM busybox\n"), "{out}");
    assert!(
        out.contains("Step 5/6 : RUN echo built > /built &&     mkdir -p /app/data\n ---> Running in build-"),
        "{out}"
    );
    assert!(out.ends_with("Successfully tagged demo:latest\n"), "{out}");
    assert_eq!(built.image.name, "demo:latest");
    assert_eq!(env.layers(&built.image), 1 + 2, "the base's layer, COPY's and RUN's");
    let history = built.image.config.history().clone().unwrap();
    let created_by: Vec<String> = history.iter().map(|h| h.created_by().clone().unwrap_or_default()).collect();
    assert!(
        created_by.contains(&"/bin/sh -c echo built > /built &&     mkdir -p /app/data".to_string()),
        "{created_by:?}"
    );
    assert_eq!(history.iter().filter(|h| h.empty_layer() == Some(true)).count(), 3, "ENV, WORKDIR, CMD");
    env.assert_nothing_left();

    let (code, printed) = env.run("demo");
    assert_eq!((code, printed.as_str()), (0, "built\n<h1>hi</h1>\nhello from /app\ndata\nindex.html\n"));
}

// The second build of an unchanged Dockerfile takes every step from the cache and
// gives the same image id; a changed COPY source invalidates that step and all after it;
// --no-cache runs everything again.
#[test]
fn cache_reuses_unchanged_steps() {
    let [a, b] = needs();
    require!(a, b);
    let env = Env::new();
    env.file("index.html", "<h1>hi</h1>\n");
    let (first, _) = env.build(DEMO, "demo", false);
    let first = first.unwrap();
    assert_eq!(first.cached, 0);

    let (second, out) = env.build(DEMO, "demo", false);
    let second = second.unwrap();
    assert_eq!(second.cached, 5, "every step but FROM:\n{out}");
    assert_eq!(out.matches(" ---> Using cache\n").count(), 5, "{out}");
    assert!(!out.contains("Running in"), "{out}");
    assert_eq!(second.image.id(), first.image.id());

    env.file("index.html", "<h1>changed</h1>\n");
    let (third, out) = env.build(DEMO, "demo", false);
    let third = third.unwrap();
    assert_eq!(third.cached, 2, "ENV and WORKDIR only:\n{out}");
    let after_copy = out.split("Step 4/6").nth(1).unwrap();
    assert!(!after_copy.contains("Using cache"), "{out}");
    assert_ne!(third.image.id(), first.image.id());

    let (fourth, out) = env.build(DEMO, "demo", true);
    assert_eq!(fourth.unwrap().cached, 0);
    assert!(!out.contains("Using cache"), "{out}");
    env.assert_nothing_left();

    // The cache's images can be pruned; the tagged image stays whole.
    build::prune_cache(&env.store).unwrap();
    assert!(env.store.refs().unwrap().keys().all(|n| !n.starts_with("build-cache:")));
    assert_eq!(env.run("demo").0, 0);
}

// A failing RUN fails the build naming the file, line, step and exit code; nothing is
// committed or tagged, and no mount, rootfs, container or cgroup is left.
#[test]
fn failing_run_fails_the_build_and_leaves_nothing() {
    let [a, b] = needs();
    require!(a, b);
    let env = Env::new();
    let (built, out) = env.build("FROM busybox\nRUN echo about to fail\nRUN echo no >&2; exit 3\n", "bad", false);
    let err = built.unwrap_err().to_string();
    assert!(err.contains("Dockerfile:3: step 3/3 (RUN echo no >&2; exit 3): "), "{err}");
    assert!(err.contains("the command '/bin/sh -c echo no >&2; exit 3' returned a non-zero code: 3"), "{err}");
    assert!(out.contains("about to fail\n"), "RUN's output is shown:\n{out}");
    assert!(out.contains("\nno\n"), "stderr too:\n{out}");
    assert!(env.store.image("bad").is_err(), "nothing is tagged");
    env.assert_nothing_left();
}

// RUN has no network: only a loopback interface in a namespace of its own.
#[test]
fn run_has_no_network() {
    let [a, b] = needs();
    require!(a, b);
    let env = Env::new();
    let (built, out) = env.build("FROM busybox\nRUN ls /sys/class/net\n", "net", false);
    built.unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert!(out.contains("Running in build-") && out.contains("\nlo\nRemoving intermediate container build-"), "{out}");
    env.assert_nothing_left();
}

// An ENTRYPOINT in shell form ignores CMD: `sh -c SCRIPT` takes the CMD words as $0...
#[test]
fn shell_entrypoint_ignores_cmd() {
    let [a, b] = needs();
    require!(a, b);
    let env = Env::new();
    let (built, out) = env.build("FROM busybox\nCMD [\"ignored\"]\nENTRYPOINT echo entry $0\n", "ep", false);
    built.unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(env.run("ep"), (0, "entry ignored\n".to_string()), "the CMD word arrives as $0, unused as a command");
}

// COPY of a path outside the context is refused, by `..` and by a symlink pointing out.
#[test]
fn copy_outside_the_context_is_refused() {
    let [a, b] = needs();
    require!(a, b);
    let env = Env::new();
    fs::write(env.home.path().join("secret"), "s3cret").unwrap();
    let (built, _) = env.build("FROM busybox\nCOPY ../secret /\n", "x", false);
    let err = built.unwrap_err().to_string();
    let file = env.context.join("Dockerfile");
    let expected = format!("{}:2: step 2/2 (COPY ../secret /): ../secret is outside the build context", file.display());
    assert!(err.starts_with(&expected), "{err}");
    std::os::unix::fs::symlink(env.home.path().join("secret"), env.context.join("link")).unwrap();
    let (built, _) = env.build("FROM busybox\nCOPY link /\n", "x", false);
    let err = built.unwrap_err().to_string();
    assert!(err.contains("link is a symbolic link to") && err.contains("outside the build context"), "{err}");
    env.assert_nothing_left();
}

// COPY, ADD and the config instructions need no container: files land in layers (an
// ADDed tar.gz unpacked), and ENV, WORKDIR, EXPOSE, LABEL, USER, ENTRYPOINT and CMD only
// change the config.
#[test]
fn copy_add_and_config_steps() {
    let [a, b] = needs();
    require!(a, b);
    let env = Env::new();
    env.file("site/index.html", "<h1>site</h1>\n");
    env.file("site/css/a.css", "a\n");
    let archive = env.context.join("pkg.tar.gz");
    let gz = flate2::write::GzEncoder::new(fs::File::create(&archive).unwrap(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all("pkg", env.context.join("site")).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let dockerfile = "FROM busybox\n\
        ENV WWW=/var/www\n\
        WORKDIR $WWW\n\
        COPY site ./\n\
        ADD pkg.tar.gz /opt/\n\
        COPY --chown=1000:1000 --chmod=600 site/index.html /home/user/\n\
        EXPOSE 80 53/udp\n\
        LABEL org.example.title=\"demo site\"\n\
        USER 1000\n\
        ENTRYPOINT [\"httpd\", \"-f\"]\n\
        CMD [\"-p\", \"80\"]\n";
    let (built, out) = env.build(dockerfile, "site", false);
    let built = built.unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert!(!out.contains("Running in"), "no container was needed:\n{out}");
    assert_eq!(env.layers(&built.image), 1 + 3);
    let config = built.image.config.config().clone().unwrap();
    assert!(config.env().clone().unwrap().contains(&"WWW=/var/www".to_string()));
    assert_eq!(config.working_dir().as_deref(), Some("/var/www"));
    let mut ports = config.exposed_ports().clone().unwrap();
    ports.sort(); // stored as a JSON object, read back in any order
    assert_eq!(ports, ["53/udp", "80/tcp"]);
    assert_eq!(config.labels().clone().unwrap()["org.example.title"], "demo site");
    assert_eq!(config.user().as_deref(), Some("1000"));
    assert_eq!(config.entrypoint().as_deref().unwrap(), ["httpd", "-f"]);
    assert_eq!(config.cmd().as_deref().unwrap(), ["-p", "80"]);

    let dirs = env.store.layer_dirs(&built.image).unwrap();
    assert_eq!(fs::read_to_string(dirs[1].join("var/www/index.html")).unwrap(), "<h1>site</h1>\n");
    assert!(dirs[1].join("var/www/css/a.css").is_file(), "the directory's contents, not the directory");
    assert!(dirs[2].join("opt/pkg/css/a.css").is_file(), "ADD unpacked the archive");
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(dirs[3].join("home/user/index.html")).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (1000, 1000, 0o600));
    let home = fs::metadata(dirs[3].join("home")).unwrap();
    assert_eq!(home.mode() & 0o7777, 0o755, "a parent keeps the image's mode");
}

// FROM scratch gives an image with no layers; COPY adds the only one.
#[test]
fn from_scratch() {
    let [a, b] = needs();
    require!(a, b);
    let env = Env::new();
    env.file("hello.txt", "hello\n");
    let (built, out) = env.build("FROM scratch\nCOPY hello.txt /\n", "tiny", false);
    let built = built.unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(env.layers(&built.image), 1);
    let dirs = env.store.layer_dirs(&built.image).unwrap();
    assert_eq!(fs::read_to_string(dirs[0].join("hello.txt")).unwrap(), "hello\n");
}
